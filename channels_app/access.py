"""Who may see a channel: the one place that decides it.

Group and dm channels: their active members. Standard channels: every signed-in user, unless
``is_private``, then members only. Admins see everything.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Role

from .models import Channel, ChannelType


def readable_channels(user) -> QuerySet[Channel]:
    if user.role == Role.ADMIN:
        return Channel.objects.all()
    member = Q(members__user=user, members__is_active=True)
    public = Q(type=ChannelType.STANDARD, is_private=False)
    return Channel.objects.filter(member | public).distinct()

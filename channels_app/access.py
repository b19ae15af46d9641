"""Who may see a channel: the one place that decides it.

Group and dm channels: their active members. Standard channels: every signed-in user, unless
``is_private``, then members only. Admins see everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q, QuerySet

from accounts.models import Role, User
from config import rows

from .models import Channel, ChannelMember, ChannelType


def readable_channels(user) -> QuerySet[Channel]:
    if user.role == Role.ADMIN:
        return Channel.objects.all()
    member = Q(members__user=user, members__is_active=True)
    public = Q(type=ChannelType.STANDARD, is_private=False)
    return Channel.objects.filter(member | public).distinct()


def active_memberships(user_ids: Sequence[str]) -> list[tuple[str, str, datetime | None]]:
    """``(user id, channel id, the user's last_active_at)`` for each active membership of a
    channel that is not archived — the channel rooms the users' sockets belong in. One
    hand-written statement per 500 users (``config.rows``): every socket's ``user-join`` and
    every batch of presence changes run it."""
    if not user_ids:
        return []
    m, u, c = (rows.table(model) for model in (ChannelMember, User, Channel))
    member_user, member_channel = (rows.column(ChannelMember, f) for f in ("user", "channel"))
    fields = [
        ChannelMember._meta.get_field("user"),
        ChannelMember._meta.get_field("channel"),
        User._meta.get_field("last_active_at"),
    ]
    found = []
    for chunk in rows.chunks(list(user_ids)):
        sql = (
            f"SELECT m.{member_user}, m.{member_channel}, u.{rows.column(User, 'last_active_at')}"
            f" FROM {m} m"
            f" JOIN {u} u ON u.{rows.column(User, 'id')} = m.{member_user}"
            f" JOIN {c} c ON c.{rows.column(Channel, 'id')} = m.{member_channel}"
            f" WHERE m.{rows.column(ChannelMember, 'is_active')} = %s"
            f" AND c.{rows.column(Channel, 'archived_at')} IS NULL"
            f" AND m.{member_user} IN ({rows.placeholders(len(chunk))})"
            f" ORDER BY m.{rows.column(ChannelMember, 'joined_at')}"
        )
        params = [True, *rows.db_values(User._meta.pk, chunk)]
        found.extend(rows.select(sql, params, fields))
    return [(str(user_id), str(channel_id), seen) for user_id, channel_id, seen in found]

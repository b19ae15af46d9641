"""Channel REST endpoints."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.shortcuts import get_object_or_404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from realtime.sessions import presence_of

from .access import readable_channels


class ChannelPresenceView(APIView):
    """GET: the channel's members that are online now, with ``last_active_at``."""

    def get(self, request, channel_id):
        channel = get_object_or_404(readable_channels(request.user), pk=channel_id)
        if (
            channel.archived_at is not None
            and not channel.members.filter(user=request.user, is_active=True).exists()
        ):
            raise exceptions.NotFound()
        members = list(
            User.objects.filter(
                channel_memberships__channel=channel, channel_memberships__is_active=True
            ).only("id", "name", "username", "role", "last_active_at")
        )
        online = async_to_sync(presence_of)([str(m.pk) for m in members])
        return Response(
            {
                "channel_id": str(channel.pk),
                "online": [
                    {
                        **member.public_profile(),
                        "sessions": online[str(member.pk)].sessions,
                        "last_active_at": member.last_active_at,
                    }
                    for member in members
                    if str(member.pk) in online
                ],
            }
        )

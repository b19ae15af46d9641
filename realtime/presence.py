"""Presence announcements: ``events:channel`` type ``presence`` to each of the user's channels
when their first session anywhere opens and when their last one closes or expires.

The payload is public only: user id, name, status, ``last_active_at``.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from . import push
from .sessions import Change


@database_sync_to_async
def _channels_and_last_active(user_id: str) -> tuple[list[str], str | None]:
    from accounts.models import User
    from channels_app.models import ChannelMember

    channel_ids = [
        str(cid)
        for cid in ChannelMember.objects.filter(user_id=user_id, is_active=True).values_list(
            "channel_id", flat=True
        )
    ]
    last_active = User.objects.filter(pk=user_id).values_list("last_active_at", flat=True).first()
    return channel_ids, last_active.isoformat() if last_active else None


async def announce(changes: list[Change]) -> None:
    """Tell each affected user's channels that the user came online or went offline."""
    for change in changes:
        channel_ids, last_active_at = await _channels_and_last_active(change.user_id)
        user = change.record.user
        for channel_id in channel_ids:
            await push.aemit_to_channel(
                channel_id,
                "events:channel",
                {
                    "channel_id": channel_id,
                    "data": {
                        "type": "presence",
                        "data": {
                            "user_id": change.user_id,
                            "status": "online" if change.online else "offline",
                            "last_active_at": last_active_at,
                        },
                    },
                    "user": {"id": user.get("id"), "name": user.get("name")},
                },
            )

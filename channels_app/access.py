"""Who may see a channel: the one place that decides it.

Group and dm channels: their active members. Standard channels: every signed-in user, unless
``is_private``, then members only. Admins see everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q, QuerySet

import sqlrows
from accounts.models import Role, User

from .models import Channel, ChannelMember, ChannelType


def readable_channels(user) -> QuerySet[Channel]:
    if user.role == Role.ADMIN:
        return Channel.objects.all()
    member = Q(members__user=user, members__is_active=True)
    public = Q(type=ChannelType.STANDARD, is_private=False)
    return Channel.objects.filter(member | public).distinct()


def active_memberships(user_ids: Sequence[str]) -> list[tuple[str, str, datetime | None]]:
    """``(user id, channel id, the user's last_active_at)`` for each active membership of a
    channel that is not archived, each user's in the order joined — the channel rooms the
    users' sockets belong in.

    Replaces ``ChannelMember.objects.filter(user_id__in=user_ids, is_active=True,
    channel__archived_at=None).order_by("joined_at").values_list("user_id", "channel_id",
    "user__last_active_at")`` (ids as strings), one statement per ``sqlrows.IN_LIST_MAX``
    users. Hand-written because every socket's ``user-join`` and every batch of presence
    changes run it, and as a QuerySet it costs more than the database takes to run it
    (docs/benchmarks.md: the table of session 3's changes under the run of 2026-11-26 18:44 UTC).
    tests/channels/test_access.py compares the two on SQLite and PostgreSQL."""
    if not user_ids:
        return []
    col = sqlrows.column
    member_user, member_channel = col(ChannelMember, "user"), col(ChannelMember, "channel")
    fields = [
        ChannelMember._meta.get_field("user"),
        ChannelMember._meta.get_field("channel"),
        User._meta.get_field("last_active_at"),
    ]
    found = []
    for chunk in sqlrows.chunks(list(user_ids)):
        sql = (
            f"SELECT m.{member_user}, m.{member_channel}, u.{col(User, 'last_active_at')}"
            f" FROM {sqlrows.table(ChannelMember)} m"
            f" JOIN {sqlrows.table(User)} u ON u.{col(User, 'id')} = m.{member_user}"
            f" JOIN {sqlrows.table(Channel)} c ON c.{col(Channel, 'id')} = m.{member_channel}"
            f" WHERE m.{col(ChannelMember, 'is_active')} = %s"
            f" AND c.{col(Channel, 'archived_at')} IS NULL"
            f" AND m.{member_user} IN ({sqlrows.placeholders(len(chunk))})"
            f" ORDER BY m.{col(ChannelMember, 'joined_at')}"
        )
        params = [True, *sqlrows.db_values(User._meta.pk, chunk)]
        found.extend(sqlrows.select(sql, params, fields))
    return [(str(user_id), str(channel_id), seen) for user_id, channel_id, seen in found]

"""Who may see a channel and who is in it: the one place that answers both.

Visibility (``readable_channels``): group and dm channels are for their active members;
standard channels for every signed-in user, unless ``is_private``, then members only. Admins
see everything. (``permissions.channel_access`` adds the REST rules on top.)

Membership is an active ``ChannelMember`` row (a removed member keeps an inactive one):

- is user U a member of channel C: ``membership`` (REST: the row, archived channels too) and
  ``is_open_channel_member`` (sockets: only while C is open, i.e. not archived);
- which channels is U in: ``memberships_of`` (rows), ``open_channel_ids`` (the channel rooms
  U's sockets belong in), ``active_memberships`` (the same for many users at once);
- who is in C: ``memberships_in`` (rows), ``member_ids``, ``members`` (users).

Every caller — REST views and permissions, services, the socket events, presence — asks here.
``active_memberships`` runs on every socket's ``user-join`` and every batch of presence
changes, so it is a hand-written statement (``sqlrows``); the rest use the ORM.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from django.db.models import Field, OuterRef, Q, QuerySet

from accounts.models import Role, User
from lib import sqlrows

from .models import Channel, ChannelMember, ChannelType

#: A user or its primary key.
UserRef = User | uuid.UUID | str
#: A channel, its primary key, or an ``OuterRef`` to one (in a subquery).
ChannelRef = Channel | uuid.UUID | str | OuterRef


def _user_pk(user: UserRef) -> uuid.UUID | str:
    """``user``'s primary key, for a ``user_id`` lookup (the same SQL as ``user=``; the
    stubs refuse a str there, Django takes one)."""
    return user.pk if isinstance(user, User) else user


def _channel_pk(channel: ChannelRef) -> uuid.UUID | str | OuterRef:
    """``channel``'s primary key (or the ``OuterRef``), for a ``channel_id`` lookup."""
    return channel.pk if isinstance(channel, Channel) else channel


def readable_channels(user: User) -> QuerySet[Channel]:
    """The channels ``user`` may see (archived ones included; see the module docstring)."""
    if user.role == Role.ADMIN:
        return Channel.objects.all()
    member = Q(members__user=user, members__is_active=True)
    public = Q(type=ChannelType.STANDARD, is_private=False)
    return Channel.objects.filter(member | public).distinct()


# --- which channels a user is in -----------------------------------------------------------


def memberships_of(user: UserRef) -> QuerySet[ChannelMember]:
    """The active memberships of ``user``, archived channels included."""
    return ChannelMember.objects.filter(user_id=_user_pk(user), is_active=True)


def membership(user: UserRef, channel: ChannelRef) -> ChannelMember | None:
    """The active membership of ``user`` in ``channel`` (archived or not), or None."""
    return memberships_of(user).filter(channel_id=_channel_pk(channel)).first()


def is_open_channel_member(user_id: UserRef, channel_id: ChannelRef) -> bool:
    """Whether the user is an active member of the channel and the channel is not archived:
    whether the user's sockets belong in its room."""
    return (
        memberships_of(user_id)
        .filter(channel_id=_channel_pk(channel_id), channel__archived_at=None)
        .exists()
    )


def open_channel_ids(user_id: UserRef) -> list[str]:
    """The channels (ids) not archived that the user is an active member of, in the order
    joined: the channel rooms the user's sockets belong in."""
    return [channel_id for _, channel_id, _ in active_memberships([str(user_id)])]


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
    fields: list[Field] = [
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


# --- who is in a channel ---------------------------------------------------------------------


def memberships_in(channel: ChannelRef) -> QuerySet[ChannelMember]:
    """The active memberships of ``channel``."""
    return ChannelMember.objects.filter(channel_id=_channel_pk(channel), is_active=True)


def member_ids(channel: ChannelRef) -> list[uuid.UUID]:
    """The ids of ``channel``'s active members."""
    return list(memberships_in(channel).values_list("user_id", flat=True))


def members(channel: ChannelRef) -> QuerySet[User]:
    """The users with an active membership of ``channel``."""
    return User.objects.filter(
        channel_memberships__channel_id=_channel_pk(channel), channel_memberships__is_active=True
    )

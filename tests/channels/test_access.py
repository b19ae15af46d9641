"""channels_app.access: the hand-written membership statement returns what the ORM query it
replaces returns, and the socket's two membership checks (many users at once, hand-written;
one channel, ORM) agree.

The data is built through the ORM: users (some inactive, some deleted, some never active),
open, private, group, dm and archived channels, memberships active and left, and more users
than one ``IN (…)`` list holds. Runs on SQLite (pass 1) and PostgreSQL (pass 2).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from channels_app.access import (
    active_memberships,
    is_open_channel_member,
    member_ids,
    membership,
    open_channel_ids,
)
from channels_app.models import Channel, ChannelMember, ChannelType
from lib import sqlrows

pytestmark = pytest.mark.django_db

#: More than one ``IN (…)`` list: the statement runs in two chunks.
MANY = sqlrows.IN_LIST_MAX + 10


def build_world(user_count: int) -> tuple[list[User], list[Channel]]:
    """Users, channels and memberships through the ORM; every membership joined at its own
    instant (the statement orders by it), in an order unlike the users' own."""
    now = timezone.now()
    users = User.objects.bulk_create(
        User(
            username=f"m-{index:04d}",
            is_active=index % 9 != 0,
            last_active_at=now - timedelta(seconds=index, microseconds=index)
            if index % 2
            else None,
        )
        for index in range(user_count)
    )
    standard, private, group, dm, archived = Channel.objects.bulk_create(
        [
            Channel(name="open", type=ChannelType.STANDARD),
            Channel(name="private", type=ChannelType.STANDARD, is_private=True),
            Channel(name="group", type=ChannelType.GROUP, is_private=True),
            Channel(name="dm", type=ChannelType.DM, is_private=True),
            Channel(name="archived", type=ChannelType.GROUP, archived_at=now),
        ]
    )
    memberships = []
    for index, user in enumerate(users):
        memberships.append(ChannelMember(channel=standard, user=user))
        if index % 3 == 0:
            memberships.append(ChannelMember(channel=group, user=user, is_active=index % 6 != 0))
        if index % 4 == 0:
            memberships.append(ChannelMember(channel=archived, user=user))
        if index % 5 == 0:
            memberships.append(ChannelMember(channel=private, user=user))
        if index < 2:
            memberships.append(ChannelMember(channel=dm, user=user))
    memberships = ChannelMember.objects.bulk_create(memberships)
    for position, member in enumerate(reversed(memberships)):
        member.joined_at = now - timedelta(hours=1) + timedelta(milliseconds=position)
    ChannelMember.objects.bulk_update(memberships, ["joined_at"], batch_size=200)
    return users, [standard, private, group, dm, archived]


def orm_memberships(user_ids: list[str]) -> list[tuple[str, str, object]]:
    """The ORM query ``active_memberships`` replaces."""
    found = (
        ChannelMember.objects.filter(
            user_id__in=user_ids, is_active=True, channel__archived_at=None
        )
        .order_by("joined_at")
        .values_list("user_id", "channel_id", "user__last_active_at")
    )
    return [(str(user_id), str(channel_id), seen) for user_id, channel_id, seen in found]


def by_user(found: list[tuple[str, str, object]]) -> dict[str, list[tuple[str, object]]]:
    """Each user's ``(channel, last_active_at)`` in the order found."""
    grouped: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for user_id, channel_id, seen in found:
        grouped[user_id].append((channel_id, seen))
    return dict(grouped)


def test_active_memberships_equals_the_orm_query_past_one_in_list():
    users, _ = build_world(MANY)
    deleted = users[-3:]
    User.objects.filter(pk__in=[u.pk for u in deleted]).delete()
    user_ids = [str(u.pk) for u in users] + [str(uuid.uuid4()) for _ in range(5)]
    assert len(user_ids) > sqlrows.IN_LIST_MAX

    found = active_memberships(user_ids)

    expected = orm_memberships(user_ids)
    assert len(expected) > MANY  # several channels per user
    # One statement per chunk of users: each user's rows in the order joined, all the rows.
    assert by_user(found) == by_user(expected)
    assert sorted(found, key=str) == sorted(expected, key=str)
    assert {type(seen) for _, _, seen in found} == {type(seen) for _, _, seen in expected}


def test_active_memberships_in_one_statement_is_in_the_order_joined():
    users, _ = build_world(40)
    user_ids = [str(u.pk) for u in users]

    assert active_memberships(user_ids) == orm_memberships(user_ids)
    assert active_memberships([]) == []


def test_the_socket_membership_checks_agree():
    users, channels = build_world(30)
    for user in users:
        in_rooms = set(open_channel_ids(user.pk))
        for channel in channels:
            open_member = is_open_channel_member(user.pk, channel.pk)
            assert open_member == (str(channel.pk) in in_rooms)
            # REST's membership is the same row, and still there while the channel is archived.
            assert open_member == (
                membership(user, channel) is not None and channel.archived_at is None
            )


def test_who_is_in_a_channel_agrees_with_the_hand_written_statement():
    users, channels = build_world(30)
    found = active_memberships([str(u.pk) for u in users])
    for channel in channels:
        in_room = {user_id for user_id, channel_id, _ in found if channel_id == str(channel.pk)}
        members = {str(user_id) for user_id in member_ids(channel)}
        assert members  # every channel of the world has active members
        # An archived channel keeps its members; its room is empty.
        assert in_room == (set() if channel.archived_at else members)

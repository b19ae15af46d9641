"""lib/sqlrows.py: column names for hand-written statements (the statements themselves are
tested against the ORM queries they replace: tests/accounts/test_queries.py,
tests/channels/test_access.py)."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import User
from channels_app.models import ChannelMember
from lib import sqlrows


def test_a_field_gives_its_column_a_foreign_key_its_id_column() -> None:
    assert sqlrows.column_name(ChannelMember._meta.get_field("joined_at")) == "joined_at"
    assert sqlrows.column_name(ChannelMember._meta.get_field("user")) == "user_id"
    assert sqlrows.column(ChannelMember, "user") == connection.ops.quote_name("user_id")


def test_a_field_without_a_column_of_its_own_is_refused_by_name() -> None:
    reverse = User._meta.get_field("channel_memberships")  # ChannelMember.user's other side
    with pytest.raises(ValueError, match="has no column of its own"):
        sqlrows.column_name(reverse)
    with pytest.raises(ValueError, match="has no column of its own"):
        sqlrows.column(User, "channel_memberships")

"""The Socket.IO event registry is the event table of docs/protocol.md, both ways: an event
the server handles is documented, and a documented event is handled. The registry is built
from the families ``realtime.events`` lists, not by import side effects."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from realtime import events
from realtime.events.registry import Payload, collect, on

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
TABLE_HEADER = "| event | payload | does | success ack |"


def documented_client_events() -> set[str]:
    """The first column of the client → server event table."""
    lines = PROTOCOL.read_text().splitlines()
    start = lines.index(TABLE_HEADER) + 2  # the header and its separator
    names = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        names.add(re.match(r"\| `([^`]+)` \|", line).group(1))
    return names


def test_the_registry_is_the_documented_event_table():
    assert set(events.HANDLERS) == documented_client_events()


def test_every_family_contributes_its_events():
    assert {"user-join", "heartbeat", "join-channels", "events:channel"} <= set(
        collect(events.chat)
    )
    assert set(collect(events.notes)) == {"join-note"}
    assert {name for name in collect(events.documents)} == {
        name for name in events.HANDLERS if name.startswith("ydoc:")
    }


def test_two_handlers_for_one_event_are_refused():
    first, second = types.ModuleType("first"), types.ModuleType("second")

    @on("x", Payload)
    async def one(conn, payload):  # pragma: no cover - never run
        return {}

    @on("x", Payload)
    async def other(conn, payload):  # pragma: no cover - never run
        return {}

    first.one, second.other = one, other
    with pytest.raises(RuntimeError, match="'x' has two handlers"):
        collect(first, second)
    assert set(collect(first, first)) == {"x"}  # the same handler seen twice is one

"""The session keeper's round, on one process (in-memory layer and registry): no Redis, and
the registry's clock moved by the test instead of waiting for deadlines."""

from __future__ import annotations

import pytest

from realtime.sessions import Change, SessionRecord, get_registry
from tests.realtime.fakes import FakeClock, FakeConnection

TTL = 60.0


class RecordedPresence:
    """Stands in for the hub's presence queue: keeps what the keeper queues."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, changes: list[Change]) -> None:
        self.changes += changes


@pytest.fixture
def clock(one_process, settings) -> FakeClock:
    settings.CHORUS = {"SESSION_TTL": TTL, "GROUP_REFRESH_INTERVAL": 0}
    clock = FakeClock()
    get_registry().clock = clock
    return clock


async def test_a_round_keeps_local_sessions_and_sweeps_the_dead_ones(hub, clock):
    registry, presence = get_registry(), RecordedPresence()
    hub.presence = presence
    local = FakeConnection("local", user_id="u1")
    await hub.register(local)
    await hub.join(local, "doc.note.1")
    await registry.add(local.session_record())
    dead = SessionRecord("dead", "u2", "killed-instance", 0.0, {"id": "u2"})
    await registry.add(dead)  # another instance's, which stopped refreshing it

    clock.advance(TTL * 0.9)
    await hub.keeper.keep()
    assert presence.changes == []
    clock.advance(TTL * 0.2)  # past both first deadlines; the local one was pushed forward
    await hub.keeper.keep()

    assert await registry.count("u1") == 1 and await registry.count("u2") == 0
    assert [(c.user_id, c.online) for c in presence.changes] == [("u2", False)]
    assert await registry.group_members("doc.note.1") == ["local"]
    assert len(local.stalled_checks) == 2  # every round asks each socket


async def test_a_swept_local_session_comes_back_online(hub, clock):
    """A socket alive after all (its process was too slow to refresh) is re-added and its user
    announced online again."""
    presence = RecordedPresence()
    hub.presence = presence
    local = FakeConnection("local", user_id="u1")
    await hub.register(local)
    await get_registry().add(local.session_record())
    clock.advance(TTL * 1.1)
    await get_registry().sweep()  # as another instance's keeper would
    await hub.keeper.keep()
    assert [(c.user_id, c.online) for c in presence.changes] == [("u1", True)]


async def test_a_round_restores_room_subscriptions_the_layer_forgot(hub, clock):
    local = FakeConnection("local")
    await hub.register(local)
    await hub.join(local, "user.u1")
    await hub.layer.group_discard("user.u1", hub.channel_name)  # group_expiry, a restart
    await hub.keeper.keep()
    await hub.publish("user.u1", {"type": "chorus.emit", "frame": "back"})
    assert await local.next() == "back"

"""One contract, both session registry backends (in-process and Redis).

Time is the registries' injected clock: a test moves it forward instead of sleeping."""

from __future__ import annotations

import time
import uuid

import pytest

from realtime.sessions import MemorySessionRegistry, RedisSessionRegistry, SessionRecord
from tests.realtime.fakes import FakeClock

TTL = 60.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def registry(request, settings, clock):
    settings.CHORUS = {"SESSION_TTL": TTL}
    if request.param == "memory":
        yield MemorySessionRegistry(clock=clock)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"chorus:test:{uuid.uuid4().hex}:"
    registry = RedisSessionRegistry(url, prefix=prefix, clock=clock)
    yield registry
    keys = [key async for key in registry.client.scan_iter(match=f"{prefix}*")]
    if keys:
        await registry.client.delete(*keys)
    await registry.close()


def record(user: str, sid: str | None = None) -> SessionRecord:
    return SessionRecord(
        sid=sid or uuid.uuid4().hex,
        user_id=user,
        instance="i1",
        connected_at=time.time(),
        user={"id": user, "name": "N", "role": "user"},
    )


async def test_first_and_last_session_of_a_user(registry):
    a1, a2 = record("a"), record("a")
    assert await registry.add(a1) == 1  # the user came online
    assert await registry.add(a2) == 2
    assert await registry.count("a") == 2
    assert await registry.remove(a1.sid, "a") is False
    assert await registry.remove(a2.sid, "a") is True
    assert await registry.count("a") == 0
    assert await registry.remove(a2.sid, "a") is False  # twice is harmless


async def test_records_keep_only_what_was_stored(registry, clock):
    rec = record("a")
    await registry.add(rec)
    [stored] = await registry.get([rec.sid, "unknown"])
    assert (stored.sid, stored.user_id, stored.instance, stored.user) == (
        rec.sid,
        "a",
        "i1",
        rec.user,
    )
    assert stored.last_seen == pytest.approx(clock.now, abs=0.001)


async def test_expired_sessions_are_swept_once_with_an_offline_change(registry, clock):
    a, b1, b2 = record("a"), record("b"), record("b")
    for rec in (a, b1):
        await registry.add(rec)
    clock.advance(TTL * 0.6)
    await registry.add(b2)  # b has a fresh session
    clock.advance(TTL * 0.3)
    assert await registry.sweep() == []  # nothing expired yet
    clock.advance(TTL * 0.2)  # a and b1 expired
    changes = await registry.sweep()
    assert [(c.user_id, c.online) for c in changes] == [("a", False)]
    assert await registry.sweep() == []  # nothing is announced twice
    assert await registry.count("a") == 0 and await registry.count("b") == 1
    presence = await registry.presence(["a", "b"])
    assert list(presence) == ["b"] and presence["b"].sessions == 1


async def test_refresh_keeps_sessions_alive_and_reports_re_added_users(registry, clock):
    a = record("a")
    await registry.add(a)
    for _ in range(3):
        clock.advance(TTL * 0.9)
        assert await registry.refresh([a]) == []
    clock.advance(TTL * 0.9)  # 3.6 TTLs after the add: alive, thanks to the refreshes
    assert await registry.sweep() == []
    clock.advance(TTL * 0.2)
    assert [c.user_id for c in await registry.sweep()] == ["a"]
    back = await registry.refresh([a])  # the socket was alive after all
    assert [(c.user_id, c.online) for c in back] == [("a", True)]
    assert await registry.count("a") == 1


async def test_presence_reports_session_count_and_last_seen(registry, clock):
    await registry.add(record("a"))
    clock.advance(5)
    await registry.add(record("a"))
    presence = await registry.presence(["a", "nobody"])
    assert set(presence) == {"a"}
    assert presence["a"].sessions == 2
    assert presence["a"].last_seen == pytest.approx(clock.now, abs=0.001)  # the latest session's


async def test_group_members_expire_with_their_deadline_unless_refreshed(registry, clock):
    await registry.join_group("doc.note.1", ["s1", "s2"])
    await registry.join_group("doc.note.2", ["s3"])
    clock.advance(TTL * 0.6)
    await registry.join_group("doc.note.1", ["s2"])  # refreshed (the keeper does this)
    await registry.leave_group("doc.note.2", "s3")
    assert await registry.group_members("doc.note.1") == ["s1", "s2"]
    assert await registry.group_members("doc.note.2") == []
    clock.advance(TTL * 0.6)
    assert await registry.group_members("doc.note.1") == ["s2"]
    clock.advance(TTL * 0.6)
    assert await registry.group_members("doc.note.1") == []


async def test_all_sessions_lists_live_ones_with_every_field_bounded_by_limit(registry, clock):
    old, new = record("a"), record("b")
    old.endpoint, old.transport, old.address = "y-websocket", "websocket", "192.0.2.7"
    await registry.add(old)
    clock.advance(TTL * 0.6)
    await registry.add(new)
    listed = await registry.all_sessions(10)
    assert [r.sid for r in listed] == [old.sid, new.sid]  # oldest deadline first
    assert (listed[0].endpoint, listed[0].transport, listed[0].address) == (
        "y-websocket",
        "websocket",
        "192.0.2.7",
    )
    assert [r.sid for r in await registry.all_sessions(1)] == [old.sid]
    clock.advance(TTL * 0.6)  # old expired (not swept yet): not listed
    assert [r.sid for r in await registry.all_sessions(10)] == [new.sid]


async def test_groups_lists_a_kind_with_live_members(registry, clock):
    await registry.join_groups({"doc.note.1": ["s1"], "doc.note.2": ["s2"], "channel.c": ["s3"]})
    clock.advance(TTL * 0.6)
    await registry.join_group("doc.note.3", ["s4"])
    await registry.leave_group("doc.note.2", "s2")
    assert await registry.groups("doc.", 10) == ["doc.note.1", "doc.note.3"]
    assert await registry.groups("doc.", 1) == ["doc.note.1"]
    clock.advance(TTL * 0.6)  # doc.note.1's membership expired
    assert await registry.groups("doc.", 10) == ["doc.note.3"]


def test_a_record_from_a_newer_version_loses_only_unknown_fields():
    raw = record("a").to_json()[:-1] + ',"added_later":1}'
    restored = SessionRecord.from_json(raw, time.time())
    assert restored.user_id == "a" and not hasattr(restored, "added_later")


@pytest.mark.services
async def test_redis_group_keys_carry_their_own_ttl(redis_url, settings):
    """A document group's key expires in Redis itself (2 x SESSION_TTL, docs/operations.md),
    so a group no instance refreshes any more is not kept for good."""
    settings.CHORUS = {"SESSION_TTL": TTL}
    prefix = f"chorus:test:{uuid.uuid4().hex}:"
    registry = RedisSessionRegistry(redis_url, prefix=prefix)
    try:
        await registry.join_group("doc.note.1", ["s1"])
        ttl = await registry.client.ttl(f"{prefix}group:doc.note.1")
        assert TTL * 2 - 5 < ttl <= TTL * 2 + 1
    finally:
        await registry.client.delete(f"{prefix}group:doc.note.1")
        await registry.close()

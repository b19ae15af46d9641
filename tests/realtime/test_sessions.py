"""One contract, both session registry backends (in-process and Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from realtime.sessions import MemorySessionRegistry, RedisSessionRegistry, SessionRecord


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def registry(request, settings):
    settings.CHORUS = {"SESSION_TTL": 1.2}  # windows wide enough for a loaded machine
    if request.param == "memory":
        yield MemorySessionRegistry()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"chorus:test:{uuid.uuid4().hex}:"
    registry = RedisSessionRegistry(url, prefix=prefix)
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


async def test_records_keep_only_what_was_stored(registry):
    rec = record("a")
    await registry.add(rec)
    [stored] = await registry.get([rec.sid, "unknown"])
    assert (stored.sid, stored.user_id, stored.instance, stored.user) == (
        rec.sid,
        "a",
        "i1",
        rec.user,
    )
    assert abs(stored.last_seen - time.time()) < 1


async def test_expired_sessions_are_swept_once_with_an_offline_change(registry):
    a, b1, b2 = record("a"), record("b"), record("b")
    for rec in (a, b1):
        await registry.add(rec)
    await asyncio.sleep(0.75)
    await registry.add(b2)  # b has a fresh session
    await asyncio.sleep(0.75)  # a and b1 expired
    changes = await registry.sweep()
    assert [(c.user_id, c.online) for c in changes] == [("a", False)]
    assert await registry.sweep() == []  # nothing is announced twice
    assert await registry.count("a") == 0 and await registry.count("b") == 1
    presence = await registry.presence(["a", "b"])
    assert list(presence) == ["b"] and presence["b"].sessions == 1


async def test_refresh_keeps_sessions_alive_and_reports_re_added_users(registry):
    a = record("a")
    await registry.add(a)
    for _ in range(3):
        await asyncio.sleep(0.4)
        assert await registry.refresh([a]) == []
    assert await registry.sweep() == []
    await asyncio.sleep(1.5)
    assert [c.user_id for c in await registry.sweep()] == ["a"]
    back = await registry.refresh([a])  # the socket was alive after all
    assert [(c.user_id, c.online) for c in back] == [("a", True)]
    assert await registry.count("a") == 1


async def test_presence_reports_session_count_and_last_seen(registry):
    await registry.add(record("a"))
    await registry.add(record("a"))
    presence = await registry.presence(["a", "nobody"])
    assert set(presence) == {"a"}
    assert presence["a"].sessions == 2
    assert abs(presence["a"].last_seen - time.time()) < 1

"""Every Redis pool Chorus creates waits for a free connection instead of failing.

redis-py's default pool raises ``MaxConnectionsError`` once ``max_connections`` are in use: a
burst bigger than the pool (a thousand sockets closing at once) failed. Each pool here is
given two connections and twenty concurrent users; all of them must succeed.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import caches
from django.test import override_settings

from accounts.tickets import Grant, RedisTicketStore
from realtime.layers import RedisLayer
from realtime.sessions import RedisSessionRegistry, SessionRecord

pytestmark = [pytest.mark.services]

SMALL = {"REDIS_MAX_CONNECTIONS": 2, "REDIS_POOL_TIMEOUT": 20.0}


async def test_channel_layer_pool_waits(redis_url):
    layer = RedisLayer(
        hosts=[{"address": redis_url, "max_connections": 2, "timeout": 20}],
        prefix="chorus:test-pool:",
    )
    channels = [await layer.new_channel() for _ in range(20)]
    await asyncio.gather(
        *(layer.send(name, {"type": "x", "n": i}) for i, name in enumerate(channels))
    )
    received = await asyncio.gather(*(layer.receive(name) for name in channels))
    assert [message["n"] for message in received] == list(range(20))
    await layer.flush()


async def test_session_registry_pool_waits(redis_url):
    with override_settings(**SMALL):
        registry = RedisSessionRegistry(redis_url, prefix="chorus:test-pool:")
    try:
        records = [SessionRecord(f"sid{i}", f"user{i % 3}", "here", 0.0) for i in range(20)]
        await asyncio.gather(*(registry.add(record) for record in records))
        removed = await asyncio.gather(*(registry.remove(r.sid, r.user_id) for r in records))
        assert removed.count(True) == 3  # each user's last session
        assert [await registry.count(f"user{i}") for i in range(3)] == [0, 0, 0]
    finally:
        await registry.close()


def test_cache_pool_waits(redis_url, settings):
    """The project's own cache settings (REDIS_URL set), with the pool cut to two."""
    default = settings.CACHES["default"]
    assert default["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    settings.CACHES = {
        "small": {**default, "OPTIONS": {**default["OPTIONS"], "max_connections": 2}}
    }
    cache = caches["small"]

    def touch(i: int) -> int:
        cache.set(f"test-pool:{i}", i, 30)
        return cache.get(f"test-pool:{i}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(touch, range(20))) == list(range(20))
    cache.delete_many([f"test-pool:{i}" for i in range(20)])


def test_ticket_store_pool_waits(redis_url):
    with override_settings(**SMALL):
        store = RedisTicketStore(redis_url, prefix="chorus:test-pool:ticket:")
    grant = Grant("3f1a0b6e-0000-4000-8000-000000000001", "jti", 1, 2)

    def put_and_take(i: int) -> Grant | None:
        store.put(f"k{i}", grant, 30)
        return store.take([f"k{i}"])[0]

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            assert list(pool.map(put_and_take, range(20))) == [grant] * 20
    finally:
        store.close()

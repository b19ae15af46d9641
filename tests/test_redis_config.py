"""config/redis.py: the Redis Sentinel settings' shape and the pools built from them (the
failover itself is tests/live/test_sentinel_live.py)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio
import redis.sentinel

from config.redis import (
    AsyncSentinelPool,
    SentinelPool,
    async_pool,
    parse_sentinels,
    sentinel_options,
    sync_pool,
)


def test_sentinels_parse_host_port_with_the_default_port():
    assert parse_sentinels(["10.0.0.1:26380", " sentinel-b ", "[::1]:26379", ""]) == [
        ("10.0.0.1", 26380),
        ("sentinel-b", 26379),
        ("::1", 26379),
    ]


@pytest.mark.parametrize("bad", ["host:port", ":26379", "host:0", "host:70000"])
def test_a_bad_sentinel_entry_is_named(bad):
    with pytest.raises(ValueError, match="REDIS_SENTINELS"):
        parse_sentinels([bad])


def test_without_sentinels_pools_are_plain_blocking_pools(settings):
    settings.REDIS_SENTINELS = []
    pool = sync_pool("redis://127.0.0.1:6390/3", max_connections=7)
    assert type(pool) is redis.BlockingConnectionPool
    assert (pool.max_connections, pool.connection_kwargs["port"]) == (7, 6390)
    assert type(async_pool("redis://127.0.0.1:6390/3")) is redis.asyncio.BlockingConnectionPool


def test_with_sentinels_the_url_gives_credentials_and_database_only(settings):
    settings.REDIS_SENTINELS = [("127.0.0.1", 26390), ("127.0.0.2", 26391)]
    settings.REDIS_SENTINEL_MASTER = "chorus-master"
    settings.REDIS_SENTINEL_PASSWORD = "sentinel-secret"
    settings.REDIS_POOL_TIMEOUT = 3.0
    for build, kind in ((sync_pool, SentinelPool), (async_pool, AsyncSentinelPool)):
        pool = build("redis://:master-secret@ignored-host:1234/5")
        assert type(pool) is kind
        assert pool.service_name == "chorus-master"
        assert pool.timeout == 3.0  # waits for a free connection (BlockingConnectionPool)
        kwargs = pool.connection_kwargs
        assert (kwargs["db"], kwargs["password"]) == (5, "master-secret")
        assert (kwargs.get("host"), kwargs.get("port")) != ("ignored-host", 1234)
        sentinels = pool.sentinel_manager.sentinels
        assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26390, 26391]
        assert sentinels[0].connection_pool.connection_kwargs["password"] == "sentinel-secret"


def test_with_sentinels_rediss_means_tls_to_the_master(settings):
    settings.REDIS_SENTINELS = [("127.0.0.1", 26390)]
    plain = sync_pool("redis://mymaster/0").connection_class
    tls = sync_pool("rediss://mymaster/0").connection_class
    assert (plain, tls) == (
        redis.sentinel.SentinelManagedConnection,
        redis.sentinel.SentinelManagedSSLConnection,
    )
    with pytest.raises(ValueError, match="redis:// or rediss://"):
        sync_pool("unix:///tmp/redis.sock")


def test_sentinel_options_are_empty_without_sentinels():
    assert sentinel_options([], "mymaster") == {}
    assert sentinel_options([("h", 1)], "m")["service_name"] == "m"

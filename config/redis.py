"""The one place Chorus builds Redis connection pools: plain Redis or Redis Sentinel.

Every Redis client of Chorus — the channel layer (``realtime.layers.RedisLayer``), the cache
(``CACHES`` in settings), the session registry and the recovery store (``realtime.sessions``),
the connection tickets (``accounts.tickets``) — gets its pool from here:

- ``sync_pool(url)`` / ``async_pool(url)``: a pool for ``url`` that waits up to ``timeout``
  seconds for a free connection when ``max_connections`` are in use (redis-py's
  ``BlockingConnectionPool``; its default pool fails instead). With ``REDIS_SENTINELS`` set
  the pool asks the sentinels for the address of the master ``REDIS_SENTINEL_MASTER`` and
  asks again after each lost connection (a failover); from ``url`` only the username,
  password, database and TLS choice are used, never its host and port.
- ``SentinelPool`` / ``AsyncSentinelPool``: those pools' classes, with a ``from_url`` that
  takes the sentinel options as keywords (Django's ``RedisCache`` builds its pools by
  ``pool_class.from_url(LOCATION, **OPTIONS)``; settings name ``SentinelPool`` there).
- ``sentinel_options(…)``: the keywords that turn a pool into a sentinel one (empty without
  sentinels), for callers that pass options through a library (channels-redis's hosts).

A pool is bound to the sentinels' answer, not to an address: commands that fail while no
master is known raise ``redis.ConnectionError`` like any lost connection; callers already
retry (docs/operations.md, "Redis Sentinel").
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from django.conf import settings
from redis.connection import parse_url

#: Seconds a connection attempt to a sentinel or a master may take: a master that vanished
#: from the network must not hold a command for the operating system's TCP timeout.
CONNECT_TIMEOUT = 5.0
#: Seconds a sentinel may take to answer "where is the master".
SENTINEL_TIMEOUT = 2.0

_SENTINEL_KEYS = ("sentinels", "service_name", "sentinel_kwargs")


def parse_sentinels(value: list[str]) -> list[tuple[str, int]]:
    """``["host:port", …]`` → ``[(host, port), …]``; port defaults to 26379. Raises
    ``ValueError`` naming the bad entry."""
    out = []
    for entry in (item.strip() for item in value):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep:
            host, port = entry, "26379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_SENTINELS: {entry!r} is not host:port")
        out.append((host, int(port)))
    return out


def sentinel_options(
    sentinels: list[tuple[str, int]], master: str, password: str = ""
) -> dict[str, Any]:
    """The sentinel keywords of a pool (``{}`` without sentinels): settings put them in the
    layer's host and the cache's options; ``sync_pool`` / ``async_pool`` add them from the
    settings (``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``, ``REDIS_SENTINEL_PASSWORD``)."""
    if not sentinels:
        return {}
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SENTINEL_TIMEOUT,
    }
    if password:
        sentinel_kwargs["password"] = password
    return {
        "sentinels": list(sentinels),
        "service_name": master,
        "sentinel_kwargs": sentinel_kwargs,
    }


def _split(url: str, options: dict[str, Any]) -> tuple[dict, dict]:
    """(sentinel keywords, pool keywords): the URL's credentials, database and TLS choice
    with the caller's options; the URL's host and port are dropped (the sentinels name the
    master)."""
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError("with REDIS_SENTINELS, REDIS_URL must be redis:// or rediss://")
    sentinel = {key: options.pop(key) for key in _SENTINEL_KEYS if key in options}
    pool = {k: v for k, v in parse_url(url).items() if k not in ("host", "port", "path")}
    # parse_url says TLS by a connection class; the sentinel pool chooses its own class
    # (plain or TLS) from ``ssl``.
    pool.pop("connection_class", None)
    pool["ssl"] = url.startswith("rediss://")
    pool.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    pool.update(options)
    return sentinel, pool


class SentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """A sentinel pool (master ``service_name``) that waits for a free connection like
    ``BlockingConnectionPool`` (``max_connections``, ``timeout``)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelPool:
        sentinel, pool = _split(url, dict(options))
        manager = redis.sentinel.Sentinel(
            sentinel["sentinels"], sentinel_kwargs=sentinel.get("sentinel_kwargs")
        )
        return cls(sentinel["service_name"], manager, **pool)


class AsyncSentinelPool(
    redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
):
    """``SentinelPool`` for redis.asyncio (one per event loop, as every asyncio pool)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncSentinelPool:
        sentinel, pool = _split(url, dict(options))
        manager = redis.asyncio.sentinel.Sentinel(
            sentinel["sentinels"], sentinel_kwargs=sentinel.get("sentinel_kwargs")
        )
        return cls(sentinel["service_name"], manager, **pool)


def _defaults(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_connections": settings.REDIS_MAX_CONNECTIONS,
        "timeout": settings.REDIS_POOL_TIMEOUT,
        **sentinel_options(
            settings.REDIS_SENTINELS,
            settings.REDIS_SENTINEL_MASTER,
            settings.REDIS_SENTINEL_PASSWORD,
        ),
        **options,
    }


def sync_pool(url: str, **options: Any) -> redis.ConnectionPool:
    """A waiting pool for ``url`` (through the sentinels when they are configured); options
    override ``REDIS_MAX_CONNECTIONS`` / ``REDIS_POOL_TIMEOUT`` and go to the connections."""
    merged = _defaults(options)
    if "sentinels" in merged:
        return SentinelPool.from_url(url, **merged)
    return redis.BlockingConnectionPool.from_url(url, **merged)


def async_pool(url: str, **options: Any) -> redis.asyncio.ConnectionPool:
    """``sync_pool`` for redis.asyncio."""
    merged = _defaults(options)
    if "sentinels" in merged:
        return AsyncSentinelPool.from_url(url, **merged)
    return redis.asyncio.BlockingConnectionPool.from_url(url, **merged)

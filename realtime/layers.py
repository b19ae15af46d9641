"""Chorus's channel layers: Channels' in-memory layer with its housekeeping bounded (the
embedded default), and channels-redis with a pool that waits for a free connection.

``channels.layers.InMemoryChannelLayer`` walks every channel and every group membership to
expire stale entries on each ``receive`` and each ``group_send`` — a large share of the
server's time when documents relay a few thousand updates a second (docs/benchmarks.md).
Chorus's hub keeps one layer channel per process, so that walk buys nothing per message: here
it runs at most once per ``EXPIRY_SWEEP_INTERVAL`` seconds. Expiry semantics are unchanged
(``expiry`` and ``group_expiry`` still apply, up to a sweep interval later), and
``group_send`` delivers without a task per member.

``RedisLayer`` is channels-redis's layer with redis-py's ``BlockingConnectionPool``: the
default pool raises ``MaxConnectionsError`` once ``max_connections`` are in use, so a burst
(a thousand sockets closing at once) failed; this one waits up to ``timeout`` seconds for a
free connection (``REDIS_MAX_CONNECTIONS``, ``REDIS_POOL_TIMEOUT``); its pools come from
``config.redis`` (plain Redis or Redis Sentinel).

``counting_pool`` is such a pool with its connections counting their failures (connect, send,
read: ``chorus_redis_errors_total``); the layer and the session registry use it.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

from config.redis import async_pool
from realtime import metrics


class ProcessChannelLayer(InMemoryChannelLayer):
    """One process's in-memory layer; see the module docstring."""

    #: Seconds between two expiry sweeps.
    EXPIRY_SWEEP_INTERVAL = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.EXPIRY_SWEEP_INTERVAL
            super()._clean_expired()  # type: ignore[misc]  # private: types-channels omits it

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in tuple(self.groups.get(group, ())):
            # As Channels' own layer: a full channel misses a group message.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)


class RedisLayer(RedisChannelLayer):
    """channels-redis with pools that wait for a free connection (module docstring). A host
    is ``{"address": url, "max_connections", "timeout", ...}`` (further keys go to the pool;
    with Redis Sentinel the sentinel keys of ``config.redis``)."""

    def create_pool(self, index: int):
        host = dict(self.hosts[index])
        return counting_pool(host.pop("address"), **host)


class _Counting:
    """Mixed into a redis.asyncio connection class: a failure to connect, send or read
    (``RedisError``, ``OSError``) is counted, then raised as before."""

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().connect(*args, **kwargs)  # type: ignore[misc]  # a mixin
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.inc()
            raise

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]  # a mixin
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.inc()
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]  # a mixin
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.inc()
            raise


#: Connection class -> its counting subclass, made once.
_COUNTING: dict[type, type] = {}


def _counting(connection_class: type) -> type:
    counting = _COUNTING.get(connection_class)
    if counting is None:
        counting = type(f"Counting{connection_class.__name__}", (_Counting, connection_class), {})
        _COUNTING[connection_class] = counting
    return counting


def counting_pool(url: str, **options: Any) -> Any:
    """``config.redis.async_pool(url, **options)`` (plain Redis or Redis Sentinel) whose
    connections count their errors (whatever connection class it chose: TCP, TLS, Unix
    socket, a sentinel-managed one)."""
    pool = async_pool(url, **options)
    pool.connection_class = _counting(pool.connection_class)
    return pool

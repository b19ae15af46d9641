"""Which session registry this process uses: the accessors callers go through.

Owns ``get_registry`` (memory without ``REDIS_URL``, else one Redis registry per event loop),
``presence_of`` (for sync code via ``async_to_sync``) and ``reset_memory_registry`` (tests).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings

from realtime.sessions.base import Presence, SessionRegistry
from realtime.sessions.memory import MemorySessionRegistry
from realtime.sessions.redis import RedisSessionRegistry

_memory_registry = MemorySessionRegistry()
_redis_registries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_registry() -> SessionRegistry:
    """The registry for this process (and, for Redis, this event loop)."""
    if not settings.REDIS_URL:
        return _memory_registry
    loop = asyncio.get_running_loop()
    registry = _redis_registries.get(loop)
    if registry is None:
        registry = _redis_registries[loop] = RedisSessionRegistry(settings.REDIS_URL)
    return registry


async def presence_of(user_ids: list[str]) -> dict[str, Presence]:
    """Presence of ``user_ids`` from this process's registry (callable via async_to_sync)."""
    return await get_registry().presence(user_ids)


def reset_memory_registry() -> None:
    """Forget every in-process session (tests start from an empty registry)."""
    global _memory_registry
    _memory_registry = MemorySessionRegistry()

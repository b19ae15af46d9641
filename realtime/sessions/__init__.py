"""The session registry: which sockets are open, on which instance, for which user.

- ``base``: ``SessionRecord``, ``Change``, ``Presence`` and the ``SessionRegistry`` interface;
- ``memory``: ``MemorySessionRegistry``, the one-process backend (the default);
- ``redis``: ``RedisSessionRegistry``, shared by every instance (``REDIS_URL`` set);
- ``current``: ``get_registry`` / ``presence_of`` / ``reset_memory_registry``, the registry
  this process uses;
- ``keeper``: ``SessionKeeper``, the upkeep task the hub runs (refresh, sweep, presence).

Callers import from here (``from realtime.sessions import get_registry``). Architecture:
docs/realtime.md ("Sessions and presence").
"""

from .base import Change, Clock, Presence, SessionRecord, SessionRegistry
from .current import get_registry, presence_of, reset_memory_registry
from .keeper import SessionKeeper
from .memory import MemorySessionRegistry
from .redis import RedisSessionRegistry

__all__ = [
    "Change",
    "Clock",
    "MemorySessionRegistry",
    "Presence",
    "RedisSessionRegistry",
    "SessionKeeper",
    "SessionRecord",
    "SessionRegistry",
    "get_registry",
    "presence_of",
    "reset_memory_registry",
]

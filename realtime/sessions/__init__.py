"""The session registry: which sockets are open, on which instance, for which user.

- ``base``: ``SessionRecord``, ``Change``, ``Presence`` and the ``SessionRegistry`` interface;
- ``memory``: ``MemorySessionRegistry``, the one-process backend (the default);
- ``redis``: ``RedisSessionRegistry``, shared by every instance (``REDIS_URL`` set);
- ``current``: ``get_registry`` / ``presence_of`` / ``reset_memory_registry``, the registry
  this process uses;
- ``keeper``: ``SessionKeeper``, the upkeep task the hub runs (refresh, sweep, presence), and
  what it needs of the hub and its sockets (``KeptProcess``, ``KeptConnection``).

Callers import from here (``from realtime.sessions import get_registry``). Architecture:
docs/realtime.md ("Sessions and presence").
"""

from realtime.sessions.base import Change, Clock, Presence, SessionRecord, SessionRegistry
from realtime.sessions.current import get_registry, presence_of, reset_memory_registry
from realtime.sessions.keeper import KeptConnection, KeptProcess, SessionKeeper
from realtime.sessions.memory import MemorySessionRegistry
from realtime.sessions.redis import RedisSessionRegistry

__all__ = [
    "Change",
    "Clock",
    "KeptConnection",
    "KeptProcess",
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

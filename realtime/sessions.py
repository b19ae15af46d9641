"""The session registry: which sockets are open, on which instance, for which user.

One interface (``SessionRegistry``), two backends:

- ``MemorySessionRegistry`` (default, one process): dicts under a thread lock; records are
  copied through JSON so it behaves exactly like Redis (no shared mutable state).
- ``RedisSessionRegistry`` (``REDIS_URL`` set): every instance shares it. Each change is one
  Lua script, so "first session of a user" and "last session of a user" are decided
  atomically across instances.

Every record has a deadline (now + ``SESSION_TTL``) that the owning instance pushes forward
while the socket is alive. ``sweep()`` — run by every instance — removes records past their
deadline; a killed instance's sessions therefore vanish within one TTL, and exactly one
instance (the one whose sweep removed the record) announces the user offline.

Records hold the user's public profile only (id, name, role): never the private profile
fields, never a token. ``last_seen`` is derived from the deadline (deadline - TTL).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from django.conf import settings

from realtime.conf import realtime_settings


@dataclass(slots=True)
class SessionRecord:
    """One open Socket.IO session. ``user`` is the public profile (id, name, role)."""

    sid: str
    user_id: str
    instance: str
    connected_at: float
    user: dict = field(default_factory=dict)
    last_seen: float = 0.0

    def to_json(self) -> str:
        """Every field but ``last_seen`` (derived from the deadline). Spelled out rather than
        ``asdict``, which deep-copies the profile first: this runs for every socket CONNECT
        and every keeper refresh."""
        data = {
            "sid": self.sid,
            "user_id": self.user_id,
            "instance": self.instance,
            "connected_at": self.connected_at,
            "user": self.user,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes, deadline: float) -> SessionRecord:
        data = json.loads(raw)
        return cls(**data, last_seen=deadline - realtime_settings.SESSION_TTL)


@dataclass(frozen=True, slots=True)
class Change:
    """A registry change that matters to presence: ``online`` is the user's new state."""

    user_id: str
    online: bool
    record: SessionRecord


@dataclass(frozen=True, slots=True)
class Presence:
    sessions: int
    last_seen: float | None


class SessionRegistry(ABC):
    """Open sessions across all instances. Methods are coroutines; none raises for a sid
    that is unknown (removing twice is harmless)."""

    @abstractmethod
    async def add(self, record: SessionRecord) -> int:
        """Store ``record``; returns the user's live sessions anywhere, this one included
        (1: the user just came online). Decided atomically across instances."""

    @abstractmethod
    async def remove(self, sid: str, user_id: str) -> bool:
        """Drop the session; True when it was the user's last (the user went offline)."""

    @abstractmethod
    async def refresh(self, records: list[SessionRecord]) -> list[Change]:
        """Push the deadlines of live local sessions forward (re-adding any that a sweep
        removed meanwhile); returns users who came back online through a re-add."""

    @abstractmethod
    async def sweep(self) -> list[Change]:
        """Remove expired sessions; returns the users that went offline through it."""

    @abstractmethod
    async def count(self, user_id: str) -> int:
        """Live sessions of one user."""

    @abstractmethod
    async def presence(self, user_ids: list[str]) -> dict[str, Presence]:
        """Online state of each user that has at least one live session."""

    @abstractmethod
    async def get(self, sids: list[str]) -> list[SessionRecord]:
        """The records of the given sids that are still registered."""

    @abstractmethod
    async def join_group(self, group: str, sids: list[str]) -> None:
        """Record (or refresh) ``sids`` as members of ``group`` until the session deadline."""

    @abstractmethod
    async def leave_group(self, group: str, sid: str) -> None:
        """Drop ``sid`` from ``group``."""

    @abstractmethod
    async def group_members(self, group: str) -> list[str]:
        """The sids of ``group`` whose membership has not expired, on every instance."""

    @staticmethod
    def deadline(now: float | None = None) -> float:
        return (now or time.time()) + realtime_settings.SESSION_TTL


class MemorySessionRegistry(SessionRegistry):
    """In-process backend; thread-safe so sync views can read presence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: sid -> the record as given (kept, not copied: callers pass a fresh one; readers get
        #: copies with ``last_seen`` from the deadline, like the Redis backend's decoded ones).
        self._records: dict[str, SessionRecord] = {}
        self._deadlines: dict[str, float] = {}  # sid -> deadline
        self._by_user: dict[str, set[str]] = {}  # user id -> sids
        self._groups: dict[str, dict[str, float]] = {}  # group -> sid -> deadline

    def _store(self, record: SessionRecord, deadline: float) -> int:
        self._records[record.sid] = record
        self._deadlines[record.sid] = deadline
        sids = self._by_user.setdefault(record.user_id, set())
        is_new = record.sid not in sids
        sids.add(record.sid)
        return len(sids) if is_new else 0

    def _drop(self, sid: str, user_id: str) -> int:
        self._records.pop(sid, None)
        self._deadlines.pop(sid, None)
        sids = self._by_user.get(user_id, set())
        sids.discard(sid)
        if not sids:
            self._by_user.pop(user_id, None)
        return len(sids)

    async def add(self, record: SessionRecord) -> int:
        with self._lock:
            self._store(record, self.deadline())
            return len(self._by_user[record.user_id])

    async def remove(self, sid: str, user_id: str) -> bool:
        with self._lock:
            if sid not in self._records:
                return False
            return self._drop(sid, user_id) == 0

    async def refresh(self, records: list[SessionRecord]) -> list[Change]:
        deadline = self.deadline()
        with self._lock:
            return [Change(r.user_id, True, r) for r in records if self._store(r, deadline) == 1]

    async def sweep(self) -> list[Change]:
        now = time.time()
        changes = []
        with self._lock:
            for sid in [s for s, d in self._deadlines.items() if d <= now]:
                record = self._copy(sid)
                if self._drop(sid, record.user_id) == 0:
                    changes.append(Change(record.user_id, False, record))
        return changes

    async def count(self, user_id: str) -> int:
        with self._lock:
            return len(self._by_user.get(user_id, ()))

    async def presence(self, user_ids: list[str]) -> dict[str, Presence]:
        ttl = realtime_settings.SESSION_TTL
        with self._lock:
            result = {}
            for user_id in user_ids:
                sids = self._by_user.get(user_id)
                if sids:
                    seen = max(self._deadlines[s] for s in sids) - ttl
                    result[user_id] = Presence(len(sids), seen)
            return result

    async def join_group(self, group: str, sids: list[str]) -> None:
        deadline = self.deadline()
        with self._lock:
            members = self._groups.setdefault(group, {})
            for sid in sids:
                members[sid] = deadline

    async def leave_group(self, group: str, sid: str) -> None:
        with self._lock:
            members = self._groups.get(group, {})
            members.pop(sid, None)
            if not members:
                self._groups.pop(group, None)

    async def group_members(self, group: str) -> list[str]:
        now = time.time()
        with self._lock:
            members = self._groups.get(group, {})
            for sid in [s for s, d in members.items() if d <= now]:
                del members[sid]
            return sorted(members)

    async def get(self, sids: list[str]) -> list[SessionRecord]:
        with self._lock:
            return [self._copy(s) for s in sids if s in self._records]

    def _copy(self, sid: str) -> SessionRecord:
        """The stored record of ``sid``, copied, with ``last_seen`` from its deadline."""
        last_seen = self._deadlines[sid] - realtime_settings.SESSION_TTL
        return dataclasses.replace(self._records[sid], last_seen=last_seen)


# --- Redis --------------------------------------------------------------------------------------
# Keys: {p}records (hash sid -> record JSON), {p}deadlines (zset sid -> deadline),
# {p}user:<id> (set of sids). Single Redis (not Cluster): scripts compute user keys.

_ADD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return redis.call('SCARD', KEYS[3])
"""

_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return redis.call('SCARD', KEYS[3])
"""

# ARGV: deadline, user key prefix, then (sid, user id, record JSON) triples.
# Returns the indexes (1-based triple numbers) whose re-add made the user online again.
_REFRESH = """
local back = {}
local n = 0
for i = 3, #ARGV, 3 do
  n = n + 1
  local sid, uid, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', KEYS[1], sid, rec)
  redis.call('ZADD', KEYS[2], ARGV[1], sid)
  local ukey = ARGV[2] .. uid
  if redis.call('SADD', ukey, sid) == 1 and redis.call('SCARD', ukey) == 1 then
    table.insert(back, n)
  end
end
return back
"""

# ARGV: now, limit, user key prefix. Returns (record JSON, deadline, remaining) triples.
_SWEEP = """
local out = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES',
                           'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #expired, 2 do
  local sid, deadline = expired[i], expired[i + 1]
  redis.call('ZREM', KEYS[2], sid)
  local rec = redis.call('HGET', KEYS[1], sid)
  if rec then
    redis.call('HDEL', KEYS[1], sid)
    local ukey = ARGV[3] .. cjson.decode(rec)['user_id']
    redis.call('SREM', ukey, sid)
    table.insert(out, rec)
    table.insert(out, deadline)
    table.insert(out, redis.call('SCARD', ukey))
  end
end
return out
"""


class RedisSessionRegistry(SessionRegistry):
    """Shared backend; one instance per event loop (redis.asyncio clients are loop-bound)."""

    SWEEP_BATCH = 500

    def __init__(self, url: str, prefix: str = "chorus:sessions:") -> None:
        import redis.asyncio as aioredis

        # A pool that waits for a free connection (REDIS_POOL_TIMEOUT) instead of failing:
        # a thousand sockets closing at once are a thousand concurrent removes.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=settings.REDIS_MAX_CONNECTIONS, timeout=settings.REDIS_POOL_TIMEOUT
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._records, self._deadlines = f"{prefix}records", f"{prefix}deadlines"
        self._add = self.client.register_script(_ADD)
        self._remove = self.client.register_script(_REMOVE)
        self._refresh = self.client.register_script(_REFRESH)
        self._sweep = self.client.register_script(_SWEEP)

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    async def add(self, record: SessionRecord) -> int:
        keys = [self._records, self._deadlines, self._user_key(record.user_id)]
        return int(await self._add(keys, [record.sid, record.to_json(), self.deadline()]))

    async def remove(self, sid: str, user_id: str) -> bool:
        keys = [self._records, self._deadlines, self._user_key(user_id)]
        return await self._remove(keys, [sid]) == 0

    async def refresh(self, records: list[SessionRecord]) -> list[Change]:
        if not records:
            return []
        args: list = [self.deadline(), f"{self.prefix}user:"]
        for record in records:
            args += [record.sid, record.user_id, record.to_json()]
        back = await self._refresh([self._records, self._deadlines], args)
        return [Change(records[i - 1].user_id, True, records[i - 1]) for i in back]

    async def sweep(self) -> list[Change]:
        args = [time.time(), self.SWEEP_BATCH, f"{self.prefix}user:"]
        out = await self._sweep([self._records, self._deadlines], args)
        changes = []
        for i in range(0, len(out), 3):
            record = SessionRecord.from_json(out[i], float(out[i + 1]))
            if int(out[i + 2]) == 0:
                changes.append(Change(record.user_id, False, record))
        return changes

    async def count(self, user_id: str) -> int:
        return await self.client.scard(self._user_key(user_id))

    async def presence(self, user_ids: list[str]) -> dict[str, Presence]:
        if not user_ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.smembers(self._user_key(user_id))
            members = await pipe.execute()
        result = {}
        ttl = realtime_settings.SESSION_TTL
        for user_id, sids in zip(user_ids, members, strict=True):
            if sids:
                scores = await self.client.zmscore(self._deadlines, list(sids))
                live = [s for s in scores if s is not None]
                if live:
                    result[user_id] = Presence(len(live), max(live) - ttl)
        return result

    def _group_key(self, group: str) -> str:
        return f"{self.prefix}group:{group}"

    async def join_group(self, group: str, sids: list[str]) -> None:
        if not sids:
            return
        key, deadline = self._group_key(group), self.deadline()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, dict.fromkeys(sids, deadline))
            pipe.expire(key, int(realtime_settings.SESSION_TTL * 2) + 1)
            await pipe.execute()

    async def leave_group(self, group: str, sid: str) -> None:
        await self.client.zrem(self._group_key(group), sid)

    async def group_members(self, group: str) -> list[str]:
        key = self._group_key(group)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zrange(key, 0, -1)
            _, members = await pipe.execute()
        return sorted(m.decode() for m in members)

    async def get(self, sids: list[str]) -> list[SessionRecord]:
        if not sids:
            return []
        raws = await self.client.hmget(self._records, sids)
        deadlines = await self.client.zmscore(self._deadlines, sids)
        return [
            SessionRecord.from_json(raw, deadline or self.deadline())
            for raw, deadline in zip(raws, deadlines, strict=True)
            if raw is not None
        ]

    async def close(self) -> None:
        await self.client.aclose()


_memory_registry = MemorySessionRegistry()
_redis_registries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_registry() -> SessionRegistry:
    """The registry for this process (and, for Redis, this event loop)."""
    if not settings.REDIS_URL:
        return _memory_registry
    import asyncio

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

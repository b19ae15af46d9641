"""The Redis session registry: every instance shares it (``REDIS_URL`` set).

Owns ``RedisSessionRegistry`` and its Lua scripts. Each change is one script, so "first session
of a user" and "last session of a user" are decided atomically across instances. Deadlines come
from the registry's clock and reach the scripts as arguments (Redis's own clock is used only for
the key TTL of a document group). The contract is ``SessionRegistry`` in ``base.py``.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import cast

from realtime.conf import realtime_settings
from realtime.layers import counting_pool
from realtime.sessions.base import Change, Clock, Presence, SessionRecord, SessionRegistry

# Keys: {p}records (hash sid -> record JSON), {p}deadlines (zset sid -> deadline),
# {p}user:<id> (set of sids), {p}group:<room> (zset sid -> deadline), {p}groups (zset
# room -> latest deadline: the index of listed groups, expired entries dropped with each
# write). Single Redis (not Cluster): scripts compute user keys.

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

    def __init__(
        self, url: str, prefix: str = "chorus:sessions:", clock: Clock = time.time
    ) -> None:
        import redis.asyncio as aioredis

        super().__init__(clock)

        # A pool that waits for a free connection (REDIS_POOL_TIMEOUT) instead of failing:
        # a thousand sockets closing at once are a thousand concurrent removes.
        # (config.redis: plain Redis or through Redis Sentinel; errors counted.)
        pool = counting_pool(url)
        self.client = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._records, self._deadlines = f"{prefix}records", f"{prefix}deadlines"
        #: Index of the listed groups (zset group -> latest membership deadline): what
        #: ``groups`` lists without scanning the keyspace.
        self._groups = f"{prefix}groups"
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
        args: list[float | str] = [self.clock(), self.SWEEP_BATCH, f"{self.prefix}user:"]
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

    async def sessions_of(self, user_id: str) -> list[SessionRecord]:
        sids = await self.client.smembers(self._user_key(user_id))
        return await self.get(sorted(s.decode() if isinstance(s, bytes) else s for s in sids))

    async def all_sessions(self, limit: int) -> list[SessionRecord]:
        # No WITHSCORES: members only (the stubs' return type allows pairs too).
        sids = cast(
            list[bytes],
            await self.client.zrangebyscore(
                self._deadlines, f"({self.clock()}", "+inf", start=0, num=limit
            ),
        )
        return await self.get([_text(sid) for sid in sids])

    async def groups(self, kind: str, limit: int) -> list[str]:
        # The index holds each group until its last membership's deadline: expired entries
        # are dropped here; a group whose members all left is checked against its members.
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._groups, "-inf", self.clock())
            pipe.zrange(self._groups, 0, -1)
            _, names = await pipe.execute()
        found = []
        for name in sorted(_text(n) for n in names):
            if name.startswith(kind) and await self.group_members(name):
                found.append(name)
                if len(found) >= limit:
                    break
        return found

    async def join_groups(self, groups: Mapping[str, list[str]]) -> None:
        deadline, ttl = self.deadline(), int(realtime_settings.SESSION_TTL * 2) + 1
        async with self.client.pipeline(transaction=False) as pipe:
            for group, sids in groups.items():
                if sids:
                    key = self._group_key(group)
                    pipe.zadd(key, dict.fromkeys(sids, deadline))
                    pipe.expire(key, ttl)
                    pipe.zadd(self._groups, {group: deadline})
            pipe.zremrangebyscore(self._groups, "-inf", self.clock())
            await pipe.execute()

    async def leave_groups(self, memberships: list[tuple[str, str]]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for group, sid in memberships:
                pipe.zrem(self._group_key(group), sid)
            await pipe.execute()

    async def group_members(self, group: str) -> list[str]:
        key = self._group_key(group)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", self.clock())
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


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

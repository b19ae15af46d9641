"""The in-process session registry: one process, no Redis (the default).

Owns ``MemorySessionRegistry``: dicts under a thread lock (sync views read presence from other
threads). Readers get copies, so it behaves like the Redis backend (no shared mutable state).
The contract is ``SessionRegistry`` in ``base.py``.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping

from realtime.conf import realtime_settings
from realtime.sessions.base import Change, Clock, Presence, SessionRecord, SessionRegistry


class MemorySessionRegistry(SessionRegistry):
    """In-process backend; thread-safe so sync views can read presence."""

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
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
        now = self.clock()
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

    async def sessions_of(self, user_id: str) -> list[SessionRecord]:
        with self._lock:
            return [self._copy(s) for s in sorted(self._by_user.get(user_id, ()))]

    async def all_sessions(self, limit: int) -> list[SessionRecord]:
        now = self.clock()
        with self._lock:
            live = sorted((d, s) for s, d in self._deadlines.items() if d > now)
            return [self._copy(sid) for _, sid in live[:limit]]

    async def groups(self, kind: str, limit: int) -> list[str]:
        now = self.clock()
        with self._lock:
            names = sorted(
                group
                for group, members in self._groups.items()
                if group.startswith(kind) and any(d > now for d in members.values())
            )
            return names[:limit]

    async def join_groups(self, groups: Mapping[str, list[str]]) -> None:
        deadline = self.deadline()
        with self._lock:
            for group, sids in groups.items():
                members = self._groups.setdefault(group, {})
                for sid in sids:
                    members[sid] = deadline

    async def leave_groups(self, memberships: list[tuple[str, str]]) -> None:
        with self._lock:
            for group, sid in memberships:
                members = self._groups.get(group, {})
                members.pop(sid, None)
                if not members:
                    self._groups.pop(group, None)

    async def group_members(self, group: str) -> list[str]:
        now = self.clock()
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

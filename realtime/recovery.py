"""Socket.IO connection state recovery: the log of what a client may have missed, and the
sessions a client may resume. Wire rules: docs/protocol.md §4.1; architecture: docs/realtime.md.

One interface (``RecoveryStore``), two backends, like the session registry:

- ``MemoryRecoveryStore`` (one process): a deque and dicts under a thread lock. Lost with the
  process: after a restart every recovery attempt is a normal connect.
- ``RedisRecoveryStore`` (``REDIS_URL`` set): one Redis stream for the log, one key per
  resumable session. Every instance reads and writes the same ones, so a client that was on
  instance A resumes on instance B.

What is kept, and the bounds:

- **The log**: every broadcast published through ``push`` that is not ephemeral (not typing)
  as an ``Entry`` with its offset — an ``emit`` (a frame for a room), a ``join`` or a ``leave``
  (the user's sockets join or leave a room, with an optional notice frame). At most
  ``RECOVERY_LOG_SIZE`` entries (Redis trims approximately: a little more may stay); the
  memory log also drops entries older than twice ``RECOVERY_WINDOW``. Frames are stored
  without the offset, which is appended when they are sent.
- **Sessions**: at a recoverable close, the socket's sid, pid, user, rooms (of the kinds in
  ``RECOVERABLE_KINDS``, at most ``MAX_RECOVERABLE_ROOMS``) and log position, for
  ``RECOVERY_WINDOW`` seconds; at most ``MAX_SOCKETS_PER_USER`` per user (the oldest go).
  ``take`` hands a session out once, and only to its own user.

Offsets are strings ``"<a>-<b>"`` (two decimal integers), ordered as integer pairs: Redis stream
ids, or ``"<process start ms>-<sequence>"`` in memory (an offset of another process never
matches). ``read_after(offset)`` returns the entries after it, or None when any of them has been
dropped (the client cannot be told everything it missed: a normal connect follows).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from django.conf import settings

from realtime.conf import realtime_settings
from realtime.rooms import room_kind

#: Rooms a resumed socket gets back (documents are re-joined by the client: a Yjs sync
#: restores their state anyway).
#: A socket in more rooms than this is not resumable (its session record stays small).
MAX_RECOVERABLE_ROOMS = 1_000
#: Entries read from Redis per round trip while collecting what a client missed.
READ_BATCH = 1_000

_OFFSET = re.compile(r"\A(\d{1,20})-(\d{1,20})\Z")
#: The position of an empty log: before every entry.
ORIGIN = "0-0"


def parse_offset(offset: object) -> tuple[int, int] | None:
    """``"12-3"`` -> ``(12, 3)``; None for anything that is not an offset."""
    if not isinstance(offset, str):
        return None
    match = _OFFSET.match(offset)
    return (int(match[1]), int(match[2])) if match else None


def client_takes_offsets(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a socket with these handshake headers gets a pid and offsets: recovery is on
    and its User-Agent does not match ``RECOVERY_SKIP_USER_AGENTS`` (python-socketio: its
    handlers take the event's arguments positionally, and one more than they declare is a
    ``TypeError``; it has no recovery to use them for). Stock socket.io-client (browser,
    Node) sends none or a browser's."""
    if not enabled():
        return False
    pattern = realtime_settings.RECOVERY_SKIP_USER_AGENTS
    if not pattern:
        return True
    agent = next((value for name, value in headers if name == b"user-agent"), b"")
    return re.search(pattern, agent.decode("latin-1"), re.IGNORECASE) is None


@dataclass(frozen=True, slots=True)
class Entry:
    """One logged broadcast. ``kind`` is "emit" (``frame`` to ``room`` except sid ``skip``),
    "join" or "leave" (the sockets in ``room`` join / leave ``target``, then get ``frame``
    if any)."""

    offset: str
    room: str
    kind: str
    frame: str | None = None
    skip: str | None = None
    target: str | None = None

    def fields(self) -> dict[str, str]:
        data = {"room": self.room, "kind": self.kind}
        for name in ("frame", "skip", "target"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


@dataclass(frozen=True, slots=True)
class Session:
    """A closed socket that may be resumed: ``start`` is the log position from which it had
    not been told anything (its connect, or the end of its last recovery)."""

    pid: str
    sid: str
    user_id: str
    rooms: tuple[str, ...]
    start: str

    def to_json(self) -> str:
        data = {"sid": self.sid, "user_id": self.user_id, "rooms": self.rooms, "start": self.start}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, pid: str, raw: str | bytes) -> Session:
        data = json.loads(raw)
        return cls(pid, data["sid"], data["user_id"], tuple(data["rooms"]), data["start"])


class RecoveryStore(ABC):
    """The log and the resumable sessions (module docstring). Coroutines; none raises for an
    unknown pid or offset."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def lock(self) -> asyncio.Lock:
        """Held while an entry is appended and published, so that one process publishes its
        broadcasts in the order of their offsets (one lock per event loop)."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @abstractmethod
    async def append(
        self,
        room: str,
        kind: str,
        frame: str | None = None,
        skip: str | None = None,
        target: str | None = None,
    ) -> str:
        """Log one entry; returns its offset."""

    @abstractmethod
    async def position(self) -> str:
        """The offset of the newest entry (``ORIGIN`` when the log is empty)."""

    @abstractmethod
    async def read_after(self, offset: str) -> list[Entry] | None:
        """The entries after ``offset``, oldest first; None if one of them was dropped or the
        offset is not one of this log's."""

    @abstractmethod
    async def persist(self, session: Session) -> None:
        """Keep ``session`` for ``RECOVERY_WINDOW`` seconds (dropping the user's oldest beyond
        ``MAX_SOCKETS_PER_USER``)."""

    @abstractmethod
    async def take(self, pid: str, user_id: str) -> Session | None:
        """The session of ``pid``, removed, if it has not expired and belongs to ``user_id``
        (another user's attempt leaves it in place)."""

    @staticmethod
    def window() -> float:
        return realtime_settings.RECOVERY_WINDOW


class MemoryRecoveryStore(RecoveryStore):
    """One process's store (module docstring); thread-safe. ``clock`` (monotonic seconds)
    times the log's entries and the sessions' deadlines; tests inject one they move."""

    #: Resumable sessions kept in one process at most (the oldest go first).
    MAX_SESSIONS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._mutex = threading.Lock()
        self._boot = int(time.time() * 1000)
        self._seq = 0
        self._dropped_through = 0  # highest sequence number dropped from the log
        self._log: collections.deque[tuple[int, float, Entry]] = collections.deque()
        #: pid -> (deadline, session), oldest first.
        self._sessions: collections.OrderedDict[str, tuple[float, Session]] = (
            collections.OrderedDict()
        )
        #: user id -> that user's pids, oldest first.
        self._by_user: dict[str, dict[str, None]] = {}
        #: room -> resumable sessions in it (``Hub.may_reach`` on a one-process layer).
        self.rooms: collections.Counter[str] = collections.Counter()
        #: The same by room kind ("channel.", …): ``Hub.may_reach_kind`` without a scan.
        self.kinds: collections.Counter[str] = collections.Counter()

    async def append(self, room, kind, frame=None, skip=None, target=None) -> str:
        now = self._clock()
        limit = realtime_settings.RECOVERY_LOG_SIZE
        oldest = now - 2 * self.window()
        with self._mutex:
            self._seq += 1
            offset = f"{self._boot}-{self._seq}"
            self._log.append((self._seq, now, Entry(offset, room, kind, frame, skip, target)))
            log = self._log
            while log and (len(log) > limit or log[0][1] < oldest):
                self._dropped_through = log.popleft()[0]
            return offset

    async def position(self) -> str:
        with self._mutex:
            return f"{self._boot}-{self._seq}" if self._seq else ORIGIN

    async def read_after(self, offset: str) -> list[Entry] | None:
        parsed = parse_offset(offset)
        if parsed is None:
            return None
        boot, seq = parsed
        if (boot, seq) != (0, 0) and boot != self._boot:
            return None
        with self._mutex:
            if self._dropped_through > seq:
                return None
            return [entry for number, _, entry in self._log if number > seq]

    async def persist(self, session: Session) -> None:
        deadline = self._clock() + self.window()
        cap = realtime_settings.MAX_SOCKETS_PER_USER
        with self._mutex:
            self._expire(self._clock())
            mine = list(self._by_user.get(session.user_id, ()))
            for pid in mine[: max(0, len(mine) - cap + 1)]:
                self._drop(pid)
            while len(self._sessions) >= self.MAX_SESSIONS:
                self._drop(next(iter(self._sessions)))
            self._sessions[session.pid] = (deadline, session)
            self._by_user.setdefault(session.user_id, {})[session.pid] = None
            self.rooms.update(session.rooms)
            self.kinds.update(room_kind(room) for room in session.rooms)

    async def take(self, pid: str, user_id: str) -> Session | None:
        with self._mutex:
            self._expire(self._clock())
            found = self._sessions.get(pid)
            if found is None or found[1].user_id != user_id:
                return None
            self._drop(pid)
            return found[1]

    def _expire(self, now: float) -> None:
        while self._sessions:
            pid, (deadline, _) = next(iter(self._sessions.items()))
            if deadline > now:
                return
            self._drop(pid)

    def _drop(self, pid: str) -> None:
        _, session = self._sessions.pop(pid)
        mine = self._by_user.get(session.user_id, {})
        mine.pop(pid, None)
        if not mine:
            self._by_user.pop(session.user_id, None)
        self.rooms.subtract(session.rooms)
        self.kinds.subtract(room_kind(room) for room in session.rooms)
        for room in session.rooms:
            if self.rooms[room] <= 0:
                del self.rooms[room]

    def holds(self, room: str) -> bool:
        """Whether a resumable session of this process was in ``room``."""
        if not self.rooms.get(room):
            return False
        with self._mutex:
            self._expire(self._clock())
            return self.rooms.get(room, 0) > 0


# --- Redis --------------------------------------------------------------------------------------
# Keys: {p}log (stream of entries), {p}pid:<pid> (session JSON, expires with the window),
# {p}user:<id> (sorted set pid -> deadline, to cap a user's sessions). Two sessions persisted in
# the same millisecond would tie, and ZPOPMIN breaks ties by pid, not age: a new score is kept
# above the set's highest (a burst shifts deadlines by a millisecond each), so the oldest goes.

# KEYS: session key, user key. ARGV: session JSON, window ms, deadline ms, now ms, cap,
# pid, session key prefix.
_PERSIST = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local score = tonumber(ARGV[3])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[6])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], extra)
  for i = 1, #popped, 2 do redis.call('DEL', ARGV[7] .. popped[i]) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: session key, user key. ARGV: user id, pid.
_TAKE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
if cjson.decode(raw)['user_id'] ~= ARGV[1] then return nil end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return raw
"""


class RedisRecoveryStore(RecoveryStore):
    """The shared store (module docstring), on the session registry's Redis client.
    ``clock`` (wall-clock seconds) stamps the sessions' deadlines; tests inject a fixed one."""

    def __init__(
        self, client, prefix: str = "chorus:recovery:", clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.client = client
        self._clock = clock
        self.prefix = prefix
        self._log = f"{prefix}log"
        self._persist = client.register_script(_PERSIST)
        self._take = client.register_script(_TAKE)

    async def append(self, room, kind, frame=None, skip=None, target=None) -> str:
        entry = Entry("", room, kind, frame, skip, target)
        offset = await self.client.xadd(
            self._log,
            entry.fields(),
            maxlen=realtime_settings.RECOVERY_LOG_SIZE,
            approximate=True,
        )
        return offset.decode()

    async def position(self) -> str:
        newest = await self.client.xrevrange(self._log, count=1)
        return newest[0][0].decode() if newest else ORIGIN

    async def read_after(self, offset: str) -> list[Entry] | None:
        start = parse_offset(offset)
        if start is None:
            return None
        try:
            info = await self.client.xinfo_stream(self._log)
        except Exception:  # no stream: nothing was ever logged (or Redis lost it)
            return [] if offset == ORIGIN else None
        # Trimming takes entries from the head only: everything after ``offset`` is still
        # there when ``offset`` is not older than the first entry kept (or, from the origin,
        # when nothing was ever trimmed).
        first = info.get("first-entry")
        if offset == ORIGIN:
            if int(info.get("entries-added", 0)) != int(info.get("length", 0)):
                return None
        elif first and (parse_offset(_text(first[0])) or start) > start:
            return None
        entries: list[Entry] = []
        cursor = offset
        limit = 2 * realtime_settings.RECOVERY_LOG_SIZE + READ_BATCH
        while len(entries) < limit:
            batch = await self.client.xrange(self._log, min=f"({cursor}", count=READ_BATCH)
            for raw_id, fields in batch:
                data = {_text(k): _text(v) for k, v in fields.items()}
                entries.append(
                    Entry(
                        _text(raw_id),
                        data.get("room", ""),
                        data.get("kind", ""),
                        data.get("frame"),
                        data.get("skip"),
                        data.get("target"),
                    )
                )
            if len(batch) < READ_BATCH:
                break
            cursor = entries[-1].offset
        return entries

    async def persist(self, session: Session) -> None:
        now_ms = int(self._clock() * 1000)
        window_ms = max(1, int(self.window() * 1000))
        await self._persist(
            [f"{self.prefix}pid:{session.pid}", f"{self.prefix}user:{session.user_id}"],
            [
                session.to_json(),
                window_ms,
                now_ms + window_ms,
                now_ms,
                realtime_settings.MAX_SOCKETS_PER_USER,
                session.pid,
                f"{self.prefix}pid:",
            ],
        )

    async def take(self, pid: str, user_id: str) -> Session | None:
        raw = await self._take(
            [f"{self.prefix}pid:{pid}", f"{self.prefix}user:{user_id}"], [user_id, pid]
        )
        return None if raw is None else Session.from_json(pid, raw)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


_memory_store = MemoryRecoveryStore()
_redis_stores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_store() -> RecoveryStore:
    """The store for this process (and, for Redis, this event loop)."""
    if not settings.REDIS_URL:
        return _memory_store
    from realtime.sessions import RedisSessionRegistry, get_registry

    loop = asyncio.get_running_loop()
    store = _redis_stores.get(loop)
    if store is None:
        registry = cast(RedisSessionRegistry, get_registry())  # REDIS_URL is set
        store = _redis_stores[loop] = RedisRecoveryStore(registry.client)
    return store


def memory_store() -> MemoryRecoveryStore | None:
    """The one-process store when there is no Redis (else None)."""
    return None if settings.REDIS_URL else _memory_store


def enabled() -> bool:
    return realtime_settings.RECOVERY_WINDOW > 0


def reset_memory_store() -> None:
    """Forget the in-process log and sessions (tests start from an empty store)."""
    global _memory_store
    _memory_store = MemoryRecoveryStore()

"""The session registry's interface: what a session record is and what every backend promises.

Owns ``SessionRecord``, ``Change``, ``Presence`` and the ``SessionRegistry`` ABC; the backends
are ``memory.py`` (one process) and ``redis.py`` (every instance shares it); the upkeep that keeps
a process's records alive is ``keeper.py``. Architecture: docs/realtime.md ("Sessions and
presence").

The registry knows which sockets are open, on which instance, for which user. Every record has a
deadline (now + ``SESSION_TTL``) that the owning instance pushes forward while the socket is
alive. ``sweep()`` — run by every instance — removes records past their deadline; a killed
instance's sessions therefore vanish within one TTL, and exactly one instance (the one whose
sweep removed the record) announces the user offline.

"Now" is the registry's ``clock`` (wall-clock seconds, ``time.time`` unless a test injects
another): every deadline, expiry and sweep is computed from it, never from ``time.time`` directly.

Records hold the user's public profile only (id, name, role): never the private profile
fields, never a token. ``address`` (the client's) is for operators only (the live admin):
presence payloads take the profile and the sid, nothing else of a record. ``last_seen`` is
derived from the deadline (deadline - TTL).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from realtime.conf import realtime_settings

#: Wall-clock seconds (``time.time`` in production; tests inject one they advance).
Clock = Callable[[], float]


@dataclass(slots=True)
class SessionRecord:
    """One open Socket.IO session. ``user`` is the public profile (id, name, role)."""

    sid: str
    user_id: str
    instance: str
    connected_at: float
    user: dict = field(default_factory=dict)
    last_seen: float = 0.0
    #: The layer channel of the hub the socket is on: how a message reaches one sid
    #: (``push.aemit_to_sid``, ``push.acall``). Empty in records written before it existed.
    hub: str = ""
    #: The endpoint (``"socket.io"`` or ``"y-websocket"``) and the transport it is on now
    #: (``"websocket"`` or ``"polling"``; the keeper's refresh records an upgrade).
    endpoint: str = ""
    transport: str = ""
    #: The client address (``TRUSTED_PROXIES`` applied). Private: for operators (the live
    #: admin) only — never put in presence payloads or anything another user receives.
    address: str = ""

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
            "hub": self.hub,
            "endpoint": self.endpoint,
            "transport": self.transport,
            "address": self.address,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes, deadline: float) -> SessionRecord:
        data = json.loads(raw)
        # Fields this version does not know (a newer instance wrote them) are left out.
        known = {key: value for key, value in data.items() if key in _FIELDS}
        return cls(**known, last_seen=deadline - realtime_settings.SESSION_TTL)


_FIELDS = frozenset(f.name for f in fields(SessionRecord)) - {"last_seen"}


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
    that is unknown (removing twice is harmless). ``clock`` is "now" for every deadline."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

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
    async def sessions_of(self, user_id: str) -> list[SessionRecord]:
        """The live sessions of one user, on every instance (by sid)."""

    @abstractmethod
    async def all_sessions(self, limit: int) -> list[SessionRecord]:
        """Live sessions on every instance, at most ``limit`` (the oldest deadlines first)."""

    @abstractmethod
    async def groups(self, kind: str, limit: int) -> list[str]:
        """Listed groups whose name starts with ``kind`` (``"doc."``: open documents) that
        have members whose membership has not expired, sorted, at most ``limit``."""

    @abstractmethod
    async def join_groups(self, groups: Mapping[str, list[str]]) -> None:
        """Record (or refresh) each group's ``sids`` as its members until the session
        deadline: every group at once (one round trip on Redis)."""

    @abstractmethod
    async def leave_groups(self, memberships: list[tuple[str, str]]) -> None:
        """Drop each (group, sid) membership."""

    @abstractmethod
    async def group_members(self, group: str) -> list[str]:
        """The sids of ``group`` whose membership has not expired, on every instance."""

    async def join_group(self, group: str, sids: list[str]) -> None:
        """``join_groups`` for one group."""
        if sids:
            await self.join_groups({group: sids})

    async def leave_group(self, group: str, sid: str) -> None:
        """``leave_groups`` for one membership."""
        await self.leave_groups([(group, sid)])

    async def members(self, group: str) -> list[SessionRecord]:
        """The records of ``group``'s live members, by sid (a member whose session ended
        is not among them)."""
        return await self.get(await self.group_members(group))

    def deadline(self) -> float:
        """The deadline of a record written or refreshed now: ``clock()`` + ``SESSION_TTL``."""
        return self.clock() + realtime_settings.SESSION_TTL

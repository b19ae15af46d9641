"""Fakes of the collaborators of the hub and the session registry: a connection that records
what reaches it, and a wall clock that moves only when a test moves it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from realtime.protocol.wsframe import SharedFrame
from realtime.sessions import SessionRecord

WAIT = 5  # seconds before a frame that should arrive counts as lost


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(eq=False)
class FakeConnection:
    """A socket as the hub sees it; what reaches it is queued in ``inbox``."""

    sid: str
    user_id: str = "u1"
    jti: str = "jti-1"
    offsets: bool = False
    rooms: set[str] = field(default_factory=set)
    inbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    #: Every SharedFrame handed to ``deliver`` (to check a frame is built once per room).
    shared: list[SharedFrame] = field(default_factory=list)
    rooms_left: list[str] = field(default_factory=list)
    stalled_checks: list[float] = field(default_factory=list)

    async def send_frame(self, frame: str) -> None:
        self.inbox.put_nowait(frame)

    def deliver(self, shared: SharedFrame) -> None:
        self.shared.append(shared)
        self.inbox.put_nowait(shared.text)

    async def kick(self, code: str, message: str) -> None:
        self.inbox.put_nowait(("kick", code, message))

    async def on_room_left(self, room: str) -> None:
        self.rooms_left.append(room)

    def check_stalled(self, now: float) -> None:
        self.stalled_checks.append(now)

    def session_record(self) -> SessionRecord:
        return SessionRecord(self.sid, self.user_id, "test", 0.0, {"id": self.user_id})

    async def next(self):
        return await asyncio.wait_for(self.inbox.get(), WAIT)

    def empty(self) -> bool:
        return self.inbox.empty()

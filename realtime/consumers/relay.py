"""The upgrade to WebSocket when the WebSocket reaches another instance than the session's home
(no sticky sessions, ``realtime.consumers.forwarding``): the WebSocket is relayed.

The instance holding the WebSocket (the *carrier*) asks the home to ``PROBE`` and then to
``SWITCH`` (forwarded requests, answered by ``realtime.consumers.polling.answer``; a WebSocket
that ends between the two sends ``ABANDON``: the session goes on polling as before). From the
switch on:

- frames the client sends go to the home's hub as ``chorus.eio.in`` {sid, text | bytes}, in
  order (one layer channel, read in order; the home hands them to the session one after
  another), and the end of the WebSocket as ``chorus.eio.in`` {sid, lost: code};
- what the session writes leaves through a ``RemoteOutbound``: frames gathered during one
  turn of the event loop go to the carrier's hub as one ``chorus.eio.out`` {key, frames,
  close}, written there to the WebSocket (whose own ``Outbound`` bounds what waits for the
  client: over the mark the carrier closes 4413, which ends the session).

The cost: every frame crosses the layer once more, and a broadcast reaches a relayed socket
by one layer message per turn. An instance that dies takes its relayed sockets with it (the
home sees no more frames and the ping timeout ends the session; the carrier's client sees
its WebSocket close and reconnects).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from realtime.consumers import forwarding
from realtime.consumers.base import CLOSE_BAD_REQUEST, CLOSE_RATE_LIMITED
from realtime.hub import get_hub
from realtime.outbound import Outbound
from realtime.protocol import engineio

logger = logging.getLogger("chorus.realtime.socket")

#: This process's carrier WebSockets by relay key (they receive ``chorus.eio.out``).
_carriers: dict[str, RemoteCarry] = {}


class RemoteOutbound(Outbound):
    """The home's way out to a WebSocket held by another instance: frames are sent there in
    order, one layer message per turn of the event loop. ``close`` sends the close after them
    and calls ``on_closed(code)`` at once (the session's disconnect: the carrier may be gone
    and never report the end)."""

    def __init__(
        self,
        carrier_hub: str,
        key: str,
        on_overflow: Callable[[int], None],
        on_closed: Callable[[int], None],
    ) -> None:
        super().__init__(on_overflow)
        self._on_closed = on_closed
        self._carrier_hub = carrier_hub
        self._key = key
        self._frames: list[tuple[str, str | bytes]] = []
        self._close: int | None = None
        self._queued = 0
        self._task: asyncio.Task | None = None

    def waiting(self) -> int:
        return self._queued

    def text(self, text: str) -> None:
        if self._admit():
            self._put(("t", text), len(text))

    def binary(self, data: bytes) -> None:
        if self._admit():
            self._put(("b", data), len(data))

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        self._close = code
        self._put(None, 0)
        self._on_closed(code)

    def _put(self, frame: tuple[str, str | bytes] | None, size: int) -> None:
        if frame is not None:
            self._frames.append(frame)
            self._queued += size
            self.written += size
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        hub = get_hub()
        try:
            while self._frames or self._close is not None:
                await asyncio.sleep(0)  # gather what this turn writes
                frames, self._frames, self._queued = self._frames, [], 0
                close, self._close = self._close, None
                message: dict[str, Any] = {
                    "type": "chorus.eio.out",
                    "key": self._key,
                    "frames": frames,
                }
                if close is not None:
                    message["close"] = close
                await hub.reply(self._carrier_hub, message)
        except Exception:
            logger.exception("Relaying frames to a carrier instance failed")
        finally:
            self._task = None


class RemoteCarry:
    """The carrier side: a WebSocket of this instance upgrading a session that lives on
    ``home`` (its hub channel)."""

    def __init__(self, carrier, home: str, sid: str) -> None:
        get_hub().on_message("chorus.eio.out", carrier_frames)
        self.carrier = carrier
        self.home = home
        self.sid = sid
        self.key = uuid.uuid4().hex
        self.probed = False
        self.switched = False

    async def receive(self, text: str | None, data: bytes | None) -> None:
        hub = get_hub()
        if self.switched:
            message: dict = {"type": "chorus.eio.in", "sid": self.sid}
            if text is not None:
                message["text"] = text
            else:
                message["bytes"] = data
            await hub.reply(self.home, message)
            return
        never = asyncio.get_running_loop().create_future()
        if text == engineio.PING_FRAME + "probe":
            answered = await forwarding.forward(self.home, "PROBE", self.sid, b"", 0.0, never)
            if answered is not None and answered[0] == 200:
                self.probed = True
                self.carrier.out.text(engineio.PONG_FRAME + "probe")
                return
        elif text == str(engineio.UPGRADE):
            _carriers[self.key] = self
            body = f"{hub.channel_name}\n{self.key}".encode()
            answered = await forwarding.forward(self.home, "SWITCH", self.sid, body, 0.0, never)
            if answered is not None and answered[0] == 200:
                self.switched = True
                return
            _carriers.pop(self.key, None)
        await self.carrier.close(CLOSE_BAD_REQUEST, "bad upgrade")

    async def lost(self, code: int | None) -> None:
        """The WebSocket ended: so does the session (if it had switched)."""
        _carriers.pop(self.key, None)
        if self.switched:
            await get_hub().reply(
                self.home, {"type": "chorus.eio.in", "sid": self.sid, "lost": code or 1006}
            )
        elif self.probed:  # the session goes on polling: its GETs may be held again
            never = asyncio.get_running_loop().create_future()
            await forwarding.forward(self.home, "ABANDON", self.sid, b"", 0.0, never)


async def carrier_frames(message: dict) -> None:
    """``chorus.eio.out`` at the carrier: write the frames (and the close) to the WebSocket."""
    carry = _carriers.get(str(message.get("key", "")))
    if carry is None:
        return
    out = carry.carrier.out
    for kind, payload in message.get("frames", ()):
        if kind == "t":
            out.text(payload)
        else:
            out.binary(payload)
    if message.get("close") is not None:
        await carry.carrier.close(int(message["close"]))


# --- the home side ------------------------------------------------------------------------------


class RelayedSession(Protocol):
    """What the home needs of a session whose WebSocket is relayed (``SocketIOConsumer``)."""

    sid: str

    async def receive(self, text_data=None, bytes_data=None) -> None: ...

    async def close(self, code=None, reason=None) -> None: ...

    async def _disconnect_once(self, code) -> None: ...

    async def _end(self, code: int, reason: str) -> None: ...


#: sid -> the queue of relayed frames of a session of this process (handled in order).
_inboxes: dict[str, asyncio.Queue] = {}
#: Relayed frames that may wait for their session: a client sending faster than its session
#: handles them (a local WebSocket would be pushed back by TCP) is closed 4429 beyond this.
RELAYED_FRAMES_MAX = 1_000


def start_home(find: Callable[[str], RelayedSession | None]) -> None:
    """Let this process take relayed frames for its sessions (``find(sid)``: the session)."""

    async def relayed(message: dict) -> None:
        sid = str(message.get("sid", ""))
        inbox = _inboxes.get(sid)
        if inbox is None:
            session = find(sid)
            if session is None:
                return
            inbox = _inboxes[sid] = asyncio.Queue(RELAYED_FRAMES_MAX)
            asyncio.get_running_loop().create_task(_deliver(sid, session, inbox))
        try:
            inbox.put_nowait(message)
        except asyncio.QueueFull:
            session = find(sid)
            if session is not None:
                logger.info("Session %s: relayed frames pile up; closed 4429", session.sid)
                await session.close(CLOSE_RATE_LIMITED, "too many frames")

    get_hub().on_message("chorus.eio.in", relayed)


async def _deliver(sid: str, session: RelayedSession, inbox: asyncio.Queue) -> None:
    """Hand a session its relayed frames one after another (the hub's loop never waits on a
    handler); ends with the session's WebSocket."""
    try:
        while True:
            message = await inbox.get()
            if "lost" in message:
                await session._disconnect_once(int(message["lost"]))
                return
            try:
                await session.receive(message.get("text"), message.get("bytes"))
            except Exception:
                logger.exception("Session %s: a handler failed; closing it", session.sid or "-")
                await session._end(1011, "internal error")
    finally:
        _inboxes.pop(sid, None)

"""A socket's way out: every frame a consumer sends, and its close, go through one ``Outbound``.

Two guarantees, whatever the server (daphne, uvicorn, the test communicator):

- **Bounded.** Bytes handed over for a client and not yet taken by it ("waiting": Chorus's own
  queue plus the server's transport buffer) are checked before each frame is written. With
  more than ``SEND_BUFFER_MAX_BYTES`` waiting the frame is not written; ``on_overflow`` is
  called once and nothing is written after it (the consumer closes with 4413). One reply
  carrying a whole document (``begin_reply``) is exempt while it waits, and only one is
  answered at a time. So a socket holds at most the mark, one such reply and one frame,
  however fast others talk to it and however slowly it reads.
- **Never blocking.** Writing a frame never waits for the client: a broadcast to a room with a
  stalled reader in it does not stall the room.

Three shapes; for a WebSocket, one is chosen once per connection by ``for_connection``:

- ``DirectOutbound``: daphne on plain TCP with ``FAST_BROADCAST`` — frames built here
  (``realtime.protocol.wsframe``) and written to the transport synchronously
  (``realtime.transport.direct``).
- ``QueuedOutbound``: anything else — ASGI ``websocket.send`` messages, sent one after another
  by a task that exists while the queue holds something (uvicorn's ``send`` waits while its
  transport is paused: awaiting it inline would block the sender on a slow client).

- ``PollingOutbound``: HTTP long-polling (``realtime.consumers.polling``) — packets wait here
  until the client's next GET takes them as one payload; "waiting" is what no GET has taken.

Closing goes through the same path, after what is queued. Under daphne the close frame is
written by the protocol itself (``direct.close``), because autobahn refuses close codes
such as 1009 from an application and daphne drops close reasons; a client that does not take
the close frame within the close-handshake timeout (5 s) is dropped. Elsewhere a
socket that overflowed is aborted at the transport when the server exposes it (uvicorn), since
its send path waits for a buffer that will not drain.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
from collections.abc import Callable

from realtime.conf import realtime_settings
from realtime.protocol import engineio, wsframe
from realtime.protocol.wsframe import SharedFrame
from realtime.transport import direct

logger = logging.getLogger("chorus.realtime.socket")


class Outbound:
    """Frames for one client, counted against the send high-water mark (module docstring)."""

    def __init__(self, on_overflow: Callable[[int], None]) -> None:
        self.mark = realtime_settings.SEND_BUFFER_MAX_BYTES
        #: Bytes handed over for the client so far (frames and their headers).
        self.written = 0
        self.overflowed = False
        self.closing = False
        self._on_overflow = on_overflow
        self._last_taken = 0
        self._progress_at = 0.0
        self._reply_start = 0
        self._reply_end: int | None = 0

    # --- what consumers use -------------------------------------------------------------------

    def text(self, text: str) -> None:
        """Send one text message (if the socket is not closing and not over its mark)."""
        raise NotImplementedError

    def binary(self, data: bytes) -> None:
        """Send one binary message."""
        raise NotImplementedError

    def shared(self, frame: SharedFrame) -> None:
        """Send a frame built once for many recipients."""
        if isinstance(frame.payload, str):
            self.text(frame.payload)
        else:
            self.binary(frame.payload)

    def close(self, code: int, reason: str = "") -> None:
        """Close the WebSocket with ``code`` after what is already queued; idempotent."""
        raise NotImplementedError

    def waiting(self) -> int:
        """Bytes handed over and not yet taken by the client."""
        raise NotImplementedError

    def taken(self) -> int:
        """Bytes of ``written`` the client has taken so far."""
        return self.written - self.waiting()

    # --- whole-document replies -----------------------------------------------------------------

    def begin_reply(self) -> None:
        """What is written from now until ``end_reply`` is one reply carrying a whole document
        (a state and its ack, a sync step 2). Its bytes do not count against the mark while
        they wait — so one initial sync of a ``DOC_MAX_BYTES`` document always goes out, to
        a client however slow — but only one such reply is answered at a time
        (``reply_pending``)."""
        self._reply_start = self.written
        self._reply_end = None

    def end_reply(self) -> None:
        if self._reply_end is None:
            self._reply_end = self.written

    def reply_pending(self) -> bool:
        """Whether the client has not yet taken all of the last whole-document reply."""
        return self._reply_end is None or self.written - self.waiting() < self._reply_end

    def _reply_waiting(self, waiting: int) -> int:
        """Bytes of the last whole-document reply among the ``waiting`` ones."""
        end = self.written if self._reply_end is None else self._reply_end
        return max(0, end - max(self._reply_start, self.written - waiting))

    def stalled(self, now: float) -> bool:
        """Whether bytes have been waiting and the client has taken none of them for
        ``SEND_STALL_TIMEOUT`` seconds (``now``: ``time.monotonic()``, called periodically)."""
        waiting = self.waiting()
        taken = self.written - waiting
        if not waiting or taken != self._last_taken:
            self._last_taken, self._progress_at = taken, now
            return False
        return now - self._progress_at >= realtime_settings.SEND_STALL_TIMEOUT

    # --- shared -------------------------------------------------------------------------------

    def _admit(self, waiting: int | None = None) -> bool:
        """Whether another frame may be written now (``waiting``: ``self.waiting()`` if the
        caller has it already); calls ``on_overflow`` (once) when the bytes waiting exceed
        the mark."""
        if self.closing or self.overflowed:
            return False
        if waiting is None:
            waiting = self.waiting()
        if waiting - self._reply_waiting(waiting) <= self.mark:
            return True
        self.overflowed = True
        self._on_overflow(waiting)
        return False


class DirectOutbound(Outbound):
    """daphne, plain TCP: frames written straight to the Twisted transport."""

    def __init__(self, protocol, on_overflow: Callable[[int], None]) -> None:
        super().__init__(on_overflow)
        self.protocol = protocol

    def waiting(self) -> int:
        return direct.waiting(self.protocol.transport)

    def _write(self, wire: bytes) -> None:
        if self.closing or self.overflowed:
            return
        # Per frame, per recipient of a broadcast: the plain-TCP case of ``direct.waiting``
        # inline, and the mark consulted only when something waits.
        transport = self.protocol.transport
        waiting = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        if waiting and not self._admit(waiting):
            return
        if direct.write(self.protocol, wire, waiting):
            self.written += len(wire)

    def text(self, text: str) -> None:
        self._write(wsframe.text_frame(text.encode()))

    def binary(self, data: bytes) -> None:
        self._write(wsframe.binary_frame(data))

    def shared(self, frame: SharedFrame) -> None:
        self._write(frame.wire)

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        direct.close(self.protocol, code, reason)


class QueuedOutbound(Outbound):
    """Any server: ASGI messages sent in order by a task, never awaited by the writer.

    ``protocol`` is daphne's WebSocket protocol when daphne serves without the direct path
    (TLS, ``FAST_BROADCAST`` off): its transport buffer is counted and it writes the close
    frame. ``transport`` is an asyncio transport with ``get_write_buffer_size`` when the server
    exposes one (uvicorn): counted, and aborted on overflow."""

    def __init__(
        self, send, on_overflow: Callable[[int], None], protocol=None, transport=None
    ) -> None:
        super().__init__(on_overflow)
        self._send = send
        self._protocol = protocol
        self._transport = transport
        self._queue: collections.deque[tuple[dict, int]] = collections.deque()
        self._queued = 0  # bytes in the queue, plus the message being sent
        self._task: asyncio.Task | None = None

    def waiting(self) -> int:
        if self._protocol is not None:
            server = direct.waiting(self._protocol.transport)
        elif self._transport is not None:
            server = self._transport.get_write_buffer_size()
        else:
            server = 0
        return self._queued + server

    def text(self, text: str) -> None:
        if self._admit():
            size = len(text) if text.isascii() else len(text.encode())  # bytes, as sent
            self._put({"type": "websocket.send", "text": text}, size)

    def binary(self, data: bytes) -> None:
        if self._admit():
            self._put({"type": "websocket.send", "bytes": data}, len(data))

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        if self.overflowed:
            self._queue.clear()  # the client does not read: nothing queued will reach it
            if self._transport is not None:
                self._transport.abort()
                return
        self._put({"type": "websocket.close", "code": code, "reason": reason}, 0)

    def _put(self, message: dict, size: int) -> None:
        self._queue.append((message, size))
        self._queued += size
        self.written += size
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                message, size = self._queue.popleft()
                try:
                    if message["type"] == "websocket.close" and self._close_at_protocol(message):
                        continue
                    await self._send(message)
                finally:
                    self._queued -= size
        except OSError:  # the client is gone (uvicorn: ClientDisconnected); disconnect follows
            logger.debug("a send to a closed socket failed", exc_info=True)
            self._queue.clear()
            self._queued = 0
        except Exception:  # the server refused a message (e.g. over its own size limit)
            logger.exception("the server refused a message for a socket; its queue is dropped")
            self._queue.clear()
            self._queued = 0
        finally:
            self._task = None

    def _close_at_protocol(self, message: dict) -> bool:
        """Under daphne, close with the message's code and reason at the protocol."""
        if self._protocol is None:
            return False
        return direct.close(self._protocol, message["code"], message.get("reason") or "")


class PollingOutbound(Outbound):
    """HTTP long-polling: encoded packets wait until the client's next GET takes them all
    (``poll``). At most one GET waits at a time. ``close`` calls ``on_closed(code)`` at once
    (the session's disconnect); what waits still goes to the next GET, and then the session
    is over (``finished``): no Engine.IO CLOSE is sent — python-engineio takes one as final
    and would not reconnect after, say, a token expiry; a kick's DISCONNECT says "final"."""

    def __init__(
        self, on_overflow: Callable[[int], None], on_closed: Callable[[int], None]
    ) -> None:
        super().__init__(on_overflow)
        self._on_closed = on_closed
        self._packets: list[str] = []
        self._queued = 0
        self._ready = asyncio.Event()
        #: A GET is waiting (a second one at the same time is refused: ``poll``).
        self.polling = False
        #: A WebSocket probe is under way: polls are answered at once, never held (the
        #: client pauses polling once its probe succeeds; a held GET would hold the upgrade).
        self.upgrading = False
        #: Closed, and nothing waits for a GET any more.
        self.finished = asyncio.Event()

    def waiting(self) -> int:
        return self._queued

    def text(self, text: str) -> None:
        if self._admit():
            self._put(text, len(text) if text.isascii() else len(text.encode()))

    def binary(self, data: bytes) -> None:
        if self._admit():
            self._put(engineio.encode_binary(data), len(data))

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        if self.overflowed:  # the client does not poll: what waits will not reach it
            self._packets.clear()
            self._queued = 0
        if not self._packets:
            self.finished.set()
        self._ready.set()
        self._on_closed(code)

    def _put(self, packet: str, size: int) -> None:
        self._packets.append(packet)
        self._queued += size
        self.written += size
        self._ready.set()

    def release(self) -> None:
        """Answer a waiting GET now (with what waits, or a NOOP)."""
        self._ready.set()

    def take(self) -> list[str]:
        """Every packet waiting, in order (and none waits any more)."""
        packets, self._packets, self._queued = self._packets, [], 0
        self._ready.clear()
        if self.closing:
            self.finished.set()
        return packets

    async def poll(self, hold: float) -> str | None:
        """The payload for one GET: what waits now, else what arrives within ``hold``
        seconds, else a NOOP; ``""`` once the session is over and nothing waits. None if
        another GET is already waiting."""
        if self.polling:
            return None
        self.polling = True
        try:
            if not self._packets and not self.upgrading and not self.closing:
                self._ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), hold)
            packets = self.take()
            if packets:
                return engineio.encode_payload(packets)
            return "" if self.closing else engineio.NOOP_FRAME
        finally:
            self.polling = False

    def hand_over(self, out: Outbound) -> None:
        """Move what waits to ``out`` (a WebSocket's), in order: the upgrade's switch."""
        for packet in self.take():
            if packet.startswith("b"):
                out.binary(base64.b64decode(packet[1:]))
            elif packet != engineio.NOOP_FRAME:
                out.text(packet)


def for_connection(send, on_overflow: Callable[[int], None]) -> Outbound:
    """The outbound path for a socket whose ASGI send is ``send`` (see the module docstring).
    ``on_overflow(waiting_bytes)`` is called once when the client falls behind the mark."""
    protocol = direct.protocol_of(send)
    if protocol is not None:
        if realtime_settings.FAST_BROADCAST and direct.plain_tcp(protocol.transport):
            return DirectOutbound(protocol, on_overflow)
        return QueuedOutbound(send, on_overflow, protocol=protocol)
    return QueuedOutbound(send, on_overflow, transport=_asyncio_transport(send))


def _asyncio_transport(send):
    """The asyncio transport behind an ASGI ``send`` that is a bound method of the server's
    protocol object (uvicorn's WebSocket protocols keep it as ``transport``); else None."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if callable(getattr(transport, "get_write_buffer_size", None)) and callable(
        getattr(transport, "abort", None)
    ):
        return transport
    return None

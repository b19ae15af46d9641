"""The two protocol clients on ``RawWebSocket``: ``SioClient`` (Engine.IO v4 / Socket.IO v5
frames by hand, acks as callbacks) and ``YwsClient`` (y-websocket binary frames)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from bench.loadgen.websocket import RawWebSocket

if TYPE_CHECKING:
    from bench.loadgen.editing import Editor
    from bench.loadgen.worker import Worker


class Closed(Exception):
    """The socket closed before the ack arrived."""


class Client:
    """What both protocol clients share: the worker that counts them, the socket, and a close
    that the server did not ask for counted as ``unexpected_closes``."""

    def __init__(self, worker: Worker, meta: dict) -> None:
        self.worker = worker
        self.meta = meta
        self.ws: RawWebSocket | None = None
        self.closing = False
        self.editor: Editor | None = None  # when used for collaborative editing

    def _on_text(self, frame: str) -> None:
        pass

    def _on_binary(self, frame: bytes) -> None:
        pass

    def _on_close(self) -> None:
        if not self.closing:
            self.worker.unexpected_closes += 1

    def _socket(self) -> RawWebSocket:
        """The socket: set as soon as its TCP connection exists (``RawWebSocket``), before
        any frame arrives or may be sent."""
        assert self.ws is not None, "not connected"
        return self.ws

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            self.ws.close()


class SioClient(Client):
    """One Engine.IO v4 / Socket.IO v5 session over a WebSocket, frames by hand.

    Acks are callbacks (``pending``: ack id -> function of the raw ``[...]`` text), so a
    closed request/ack loop runs without a task switch per round trip."""

    def __init__(self, worker: Worker, token: str, meta: dict) -> None:
        super().__init__(worker, meta)
        self.token = token
        self.sid = ""
        self.next_id = 0
        self.pending: dict[int, Any] = {}
        self.seen: set[int] = set()  # broadcast sequence numbers received
        self._opening: asyncio.Future | None = None
        self._state = "open"  # open -> connect -> ready

    async def open(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        self._opening = loop.create_future()
        await RawWebSocket.connect(url, self)
        await self._opening

    def _opened(self) -> asyncio.Future:
        """The future ``open`` waits on (set before the socket connects)."""
        assert self._opening is not None, "not opening"
        return self._opening

    def _on_close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.set_exception(ConnectionError("closed before CONNECT completed"))
        super()._on_close()
        pending, self.pending = self.pending, {}
        for callback in pending.values():
            callback(None)

    def _on_text(self, frame: str) -> None:
        kind = frame[:1]
        if kind == "4":
            sub = frame[1:2]
            if sub == "2":
                self.worker.on_event(self, frame)
            elif sub == "3":
                i = 2
                while frame[i].isdigit():
                    i += 1
                callback = self.pending.pop(int(frame[2:i]), None)
                if callback is not None:
                    callback(frame[i:])
            elif sub == "0" and self._state == "connect":
                self.sid = json.loads(frame[2:]).get("sid", "")
                self._state = "ready"
                self._opened().set_result(None)
            elif sub == "4" and self._state == "connect":
                self._opened().set_exception(RuntimeError(f"CONNECT refused: {frame[:200]}"))
                self._state = "refused"
            elif sub == "1":
                self.worker.errors.append("server sent DISCONNECT")
        elif kind == "2":
            self.send_packet("3" + frame[1:])
        elif kind == "0" and self._state == "open":
            self._state = "connect"
            self.send_packet('40{"token":' + json.dumps(self.token) + "}")

    def send_packet(self, packet: str) -> None:
        """Send one Engine.IO packet (here: one WebSocket text frame)."""
        self._socket().send_text(packet)

    def is_closed(self) -> bool:
        return self.ws is None or self.ws.closed

    def emit(self, body: str, callback) -> None:
        """Send ``42<id><body>``; ``callback(raw ack text or None if closed)``."""
        if self.is_closed():
            callback(None)
            return
        self.next_id += 1
        self.pending[self.next_id] = callback
        self.send_packet(f"42{self.next_id}{body}")

    async def call_frame(self, body: str, timeout: float = 30.0) -> str:
        """Emit a pre-encoded ``["event",{...}]`` body and wait for its ack text."""
        future = asyncio.get_running_loop().create_future()

        def done(ack) -> None:
            if not future.done():
                if ack is None:
                    future.set_exception(Closed("socket closed"))
                else:
                    future.set_result(ack)

        self.emit(body, done)
        return await asyncio.wait_for(future, timeout)

    async def call(self, event: str, data, timeout: float = 30.0) -> str:
        return await self.call_frame(json.dumps([event, data], separators=(",", ":")), timeout)


class YwsClient(Client):
    """One y-websocket session: binary sync-update frames out, relayed updates to the editor."""

    async def open(self, url: str) -> None:
        await RawWebSocket.connect(url, self)

    def _on_binary(self, frame: bytes) -> None:
        if len(frame) > 2 and frame[0] == 0 and frame[1] in (1, 2) and self.editor is not None:
            self.editor.on_bytes(frame)

    def send(self, data: bytes) -> None:
        self._socket().send_bytes(data)

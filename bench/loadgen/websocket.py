"""A minimal client side of RFC 6455 on ``asyncio.Protocol``: frames in, callbacks out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from random import randbytes

from websockets.speedups import apply_mask


class RawWebSocket(asyncio.Protocol):
    """Client side of RFC 6455 with callbacks instead of coroutines per frame.

    Why not the ``websockets`` client: its per-message cost (reader task, assembler, a coroutine
    wake-up per ``recv``) made the load generator, not the server, the bottleneck at ~4,500
    round trips/s per process. Here a frame costs a header parse and a callback. Client frames
    are masked (random key, C ``apply_mask`` from websockets' speedups); no extensions
    (uncompressed for every server), no subprotocols. PINGs are answered, a CLOSE is echoed.
    """

    def __init__(self, owner) -> None:
        # the owner (SioClient / YwsClient) gets ``ws`` as soon as the TCP connection exists:
        # frames that arrive with the 101 response are dispatched before ``connect`` returns
        owner.ws = self
        self.on_text = owner._on_text
        self.on_binary = owner._on_binary
        self.on_close = owner._on_close
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.closed = False
        self.fragments: list[bytes] = []
        self.fragment_opcode = 0

    @classmethod
    async def connect(cls, url: str, owner) -> RawWebSocket:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(lambda: cls(owner), host, int(port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await proto.handshake
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        if expected not in proto.accept_header:
            proto.abort()
            raise RuntimeError("bad Sec-WebSocket-Accept")
        return proto

    def connection_made(self, transport) -> None:
        self.transport = transport

    def _transport(self) -> asyncio.Transport:
        """The connection's transport: set by ``connection_made``, before any frame arrives
        or is sent."""
        assert self.transport is not None, "not connected"
        return self.transport

    def connection_lost(self, exc) -> None:
        was_closed, self.closed = self.closed, True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        if not was_closed:
            self.on_close()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            response = bytes(buf[:end])
            del buf[: end + 4]
            status = response.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self.handshake.set_exception(RuntimeError(f"upgrade refused: {status[:80]!r}"))
                self._transport().close()
                return
            self.accept_header = response
            self.upgraded = True
            self.handshake.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # a masked server frame is a protocol error; tolerate it
                head += 4
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            if b1 & 0x80:
                payload = apply_mask(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos += head + length
            self._frame(b0, payload)
            if self.closed:
                break
        if pos:
            del buf[:pos]

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 0:
            self.fragments.append(payload)
            if not fin:
                return
            opcode, payload = self.fragment_opcode, b"".join(self.fragments)
            self.fragments = []
        elif opcode in (1, 2) and not fin:
            self.fragment_opcode, self.fragments = opcode, [payload]
            return
        if opcode == 1:
            self.on_text(payload.decode())
        elif opcode == 2:
            self.on_binary(payload)
        elif opcode == 9:
            self._send(0xA, payload)
        elif opcode == 8 and not self.closed:
            self._send(0x8, payload[:2])
            self.closed = True
            self._transport().close()
            self.on_close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.closed:
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        key = randbytes(4)
        self._transport().write(header + key + apply_mask(payload, key))

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def send_bytes(self, data: bytes) -> None:
        self._send(0x2, data)

    def close(self) -> None:
        if not self.closed:
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.closed = True
            self._transport().close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

"""A minimal client side of HTTP/1.1 on ``asyncio.Protocol``: one keep-alive connection, one
request at a time, each response handed to a callback.

Why not aiohttp: the load generator must cost less per request than the server it measures
(the reason ``RawWebSocket`` exists). A request here is one ``write`` and a response a header
split plus a body slice, with no task or future per request; aiohttp's client builds request
and response objects, a pool lease and a coroutine chain for every request.

What it understands: ``Content-Length`` and ``Transfer-Encoding: chunked`` bodies (daphne
and Chorus send the former; uvicorn answers python-engineio's polling with the latter),
``Connection: close``, and a server closing an idle keep-alive connection (uvicorn does after
5 s): a request that finds the connection gone is sent on a new one, and a request on a reused
connection that the server closed before answering any byte of is sent once more on a new
connection — the usual client rule (the server closed it idle: it never read the request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: callback(status, body); status 0 means no response (connect failed or the connection died).
ResponseCallback = Callable[[int, bytes], None]


class _Wire(asyncio.Protocol):
    """One TCP connection of an ``HttpConnection``; forwards bytes and its end to the owner
    for as long as it is the owner's current connection."""

    def __init__(self, owner: HttpConnection) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.owner.wire is self:
            self.owner.data_received(data)

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.owner.wire is self:
            self.owner.wire = None
            self.owner.connection_lost()


class HttpConnection:
    """A keep-alive HTTP/1.1 connection to ``host:port``, (re)connected on demand.
    ``request`` must not be called again before the previous callback has run."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}".encode()
        self.wire: _Wire | None = None
        self.connecting = False
        self.closed = False  # closed by us: nothing more is sent
        self.buffer = bytearray()
        self.callback: ResponseCallback | None = None
        self.request_bytes = b""
        self.reused = False  # the request went out on a connection that served one before
        self.got_bytes = False  # some byte of its response arrived
        self.requests = 0
        self._reset_response()

    @classmethod
    def to(cls, base: str) -> HttpConnection:
        """A connection (opened by its first request) to the host and port of ``base``
        (``http://host:port/…``)."""
        hostport = base.split("://", 1)[1].split("/", 1)[0]
        host, _, port = hostport.partition(":")
        return cls(host, int(port or 80))

    def _reset_response(self) -> None:
        self.status = 0
        self.need = -1  # body bytes still expected; -1: head not read; -2: until the close
        self.chunked = False
        self.close_after = False
        self.body = bytearray()

    # --- sending -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None,
        callback: ResponseCallback,
        content_type: bytes = b"text/plain;charset=UTF-8",
        headers: bytes = b"",
    ) -> None:
        """Send ``method target`` (``body`` for a POST, as ``content_type``; ``headers``:
        more header lines, each ending in CRLF); ``callback(status, body)`` once the response
        is complete (status 0: none came)."""
        assert self.callback is None, "one request at a time per connection"
        if self.closed:
            callback(0, b"")
            return
        head = f"{method} {target} HTTP/1.1\r\n".encode() + headers + b"Host: " + self.host_header
        if body is None:
            data = head + b"\r\n\r\n"
        else:
            data = b"".join(
                (
                    head,
                    b"\r\nContent-Type: ",
                    content_type,
                    b"\r\nContent-Length: ",
                    str(len(body)).encode(),
                    b"\r\n\r\n",
                    body,
                )
            )
        self.callback = callback
        self.request_bytes = data
        self.requests += 1
        self._send()

    def _send(self) -> None:
        self.got_bytes = False
        self._reset_response()
        self.buffer.clear()
        wire = self.wire
        if wire is not None and wire.transport is not None and not wire.transport.is_closing():
            self.reused = True
            wire.transport.write(self.request_bytes)
        else:
            self.reused = False
            if not self.connecting:
                self.connecting = True
                asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        wire = _Wire(self)
        try:
            await asyncio.get_running_loop().create_connection(lambda: wire, self.host, self.port)
        except OSError:
            self.connecting = False
            self._finish(0, b"")
            return
        self.connecting = False
        if wire.transport is None:  # closed as soon as it opened
            self._finish(0, b"")
            return
        if self.closed:
            wire.transport.close()
            return
        self.wire = wire
        if self.callback is not None:
            wire.transport.write(self.request_bytes)

    def close(self) -> None:
        """Close the connection; a request waiting gets no callback."""
        self.closed = True
        self.callback = None
        wire, self.wire = self.wire, None
        if wire is not None and wire.transport is not None:
            wire.transport.close()

    # --- receiving (from the current ``_Wire``) --------------------------------------------

    def connection_lost(self) -> None:
        if self.callback is None:
            return
        if self.need == -2:  # a body delimited by the end of the connection: complete
            self._finish(self.status, bytes(self.body))
        elif self.reused and not self.got_bytes:
            self._send()  # the server dropped an idle connection: once more, on a new one
        else:
            self._finish(0, b"")

    def data_received(self, data: bytes) -> None:
        if self.callback is None:
            return  # nothing asked (a stray byte after a response): ignored
        self.got_bytes = True
        buf = self.buffer
        buf += data
        if self.need == -1:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(bytes(buf[:end]))
            del buf[: end + 4]
        if self.need == -2:
            self.body += buf
            buf.clear()
        elif self.chunked:
            self._chunks()
        elif len(buf) >= self.need:
            body = bytes(buf[: self.need])
            del buf[: self.need]
            self._finish(self.status, body)

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        self.need = -2
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.need = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
                self.need = 0
            elif name == b"connection" and b"close" in value.lower():
                self.close_after = True

    def _chunks(self) -> None:
        buf = self.buffer
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(buf[:line_end]).split(b";", 1)[0], 16)
            if size == 0:  # the last chunk (no trailers), then the final CRLF
                if len(buf) < line_end + 4:
                    return
                del buf[: line_end + 4]
                self._finish(self.status, bytes(self.body))
                return
            if len(buf) < line_end + 2 + size + 2:
                return
            self.body += buf[line_end + 2 : line_end + 2 + size]
            del buf[: line_end + 2 + size + 2]

    def _finish(self, status: int, body: bytes) -> None:
        callback, self.callback = self.callback, None
        if self.close_after:
            wire, self.wire = self.wire, None
            if wire is not None and wire.transport is not None:
                wire.transport.close()
        self._reset_response()
        if callback is not None:
            callback(status, body)

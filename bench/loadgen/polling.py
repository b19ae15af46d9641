"""``PollingClient``: the Socket.IO session of ``SioClient`` carried by Engine.IO v4 HTTP
long-polling instead of a WebSocket, as engine.io-client carries it.

- Handshake: ``GET <path>`` (``?EIO=4&transport=polling``) → the OPEN packet ``0{"sid":…}``,
  which sends the CONNECT ``40{"token":…}``.
- Sending: packets wait in an outbox and go out as one ``POST <path>&sid=…`` payload (packets
  joined by ``\\x1e``); while a POST is unanswered the next waits (engine.io-client's rule),
  then everything that waited goes in one payload.
- Receiving: one GET is always outstanding; its payload's packets are dispatched as WebSocket
  frames would be (acks, events, the CONNECT reply; a PING ``2`` is answered by a POST ``3``;
  NOOP ``6`` ignored), then the next GET goes out. A CLOSE ``1``, an HTTP error or a dead
  connection ends the session (counted as an unexpected close unless we were closing).
- Two keep-alive connections per session (``HttpConnection``): one for the GETs, one for the
  POSTs. ``via`` sends every request after the handshake to another instance than the
  handshake's (a balancer without affinity: Chorus forwards them to the session's home).
- Closing sends Engine.IO CLOSE ``1`` by POST, so the server ends the session at once rather
  than after its ping timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from bench.loadgen.clients import SioClient
from bench.loadgen.http import HttpConnection, ResponseCallback

if TYPE_CHECKING:
    from bench.loadgen.worker import Worker


def answer_into(future: asyncio.Future) -> ResponseCallback:
    """A response callback that sets ``future`` to (status, body), once."""

    def done(status: int, body: bytes) -> None:
        if not future.done():
            future.set_result((status, body))

    return done


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port/path?query`` -> (``host:port``, ``/path?query``)."""
    hostport, _, target = url.split("://", 1)[1].partition("/")
    return hostport, "/" + target


class PollingClient(SioClient):
    """One Socket.IO session over HTTP long-polling (module docstring)."""

    def __init__(self, worker: Worker, token: str, meta: dict, via: str | None = None) -> None:
        super().__init__(worker, token, meta)
        self.via = via  # polling URL of every request after the handshake (None: the same)
        self.eio_sid = ""
        self.target = ""  # the request target with the Engine.IO sid
        self.get_conn: HttpConnection | None = None
        self.post_conn: HttpConnection | None = None
        self.outbox: list[str] = []
        self.writable = True  # no POST unanswered
        self.ended = False  # the session is over (closed by us or by the server)
        self.elsewhere = False  # requests after the handshake go to another instance

    async def open(self, url: str) -> None:
        """Handshake at ``url`` (a polling URL), CONNECT, and wait for the CONNECT reply."""
        loop = asyncio.get_running_loop()
        self._opening = loop.create_future()
        hostport, target = split_url(url)
        home = HttpConnection.to(url)
        answered: asyncio.Future = loop.create_future()
        home.request("GET", target, None, answer_into(answered))
        try:
            status, body = await answered
        except asyncio.CancelledError:
            home.close()
            raise
        packets = body.decode(errors="replace").split("\x1e")
        if status != 200 or not packets[0].startswith("0{"):
            home.close()
            raise RuntimeError(f"handshake: HTTP {status}: {body[:200]!r}")
        self.eio_sid = json.loads(packets[0][1:])["sid"]
        self.target = f"{target}&sid={self.eio_sid}"
        via = self.via or url
        if split_url(via)[0] == hostport:
            self.get_conn = home
        else:
            home.close()
            self.get_conn = HttpConnection.to(via)
            self.elsewhere = True
        self.post_conn = HttpConnection.to(via)
        self._dispatch(packets)  # the OPEN: sends the CONNECT
        self._poll()
        await self._opening

    # --- the way out -------------------------------------------------------------------------

    def send_packet(self, packet: str) -> None:
        if self.ended:
            return
        self.outbox.append(packet)
        if self.writable:
            self._flush()

    def is_closed(self) -> bool:
        return self.ended

    def _flush(self) -> None:
        if not self.outbox or self.ended or self.post_conn is None:
            return
        payload = "\x1e".join(self.outbox).encode()
        self.outbox = []
        self.writable = False
        self._count()
        self.post_conn.request("POST", self.target, payload, self._posted)

    def _posted(self, status: int, body: bytes) -> None:
        self.writable = True
        if self.ended:
            return
        if status != 200:
            self._lost(f"POST answered {status}: {body[:120]!r}")
            return
        self._flush()

    # --- the way in --------------------------------------------------------------------------

    def _poll(self) -> None:
        if self.ended or self.get_conn is None:
            return
        self._count()
        self.get_conn.request("GET", self.target, None, self._polled)

    def _polled(self, status: int, body: bytes) -> None:
        if self.ended:
            return
        if status != 200:
            self._lost(f"GET answered {status}: {body[:120]!r}")
            return
        self._dispatch(body.decode(errors="replace").split("\x1e"))
        self._poll()

    def _dispatch(self, packets: list[str]) -> None:
        for packet in packets:
            if packet == "1":
                self._lost("the server closed the session")
                return
            self._on_text(packet)  # NOOP "6" and binary "b…" fall through: ignored
            if self.ended:
                return

    def _count(self) -> None:
        self.worker.http_requests += 1
        if self.elsewhere:
            self.worker.http_elsewhere += 1

    # --- the end -----------------------------------------------------------------------------

    def _lost(self, reason: str) -> None:
        """The session ended without us: both connections closed, callbacks told."""
        if self.ended:
            return
        self.ended = True
        if not self.closing and len(self.worker.errors) < 20:
            self.worker.errors.append(f"polling session {self.eio_sid}: {reason}"[:300])
        for conn in (self.get_conn, self.post_conn):
            if conn is not None:
                conn.close()
        self._on_close()

    async def close(self) -> None:
        """Engine.IO CLOSE by POST (when no POST is unanswered), then both connections
        closed; the GET held meanwhile is dropped."""
        self.closing = True
        if self.ended:
            return
        self.ended = True
        if self.post_conn is not None and self.writable:
            done: asyncio.Future = asyncio.get_running_loop().create_future()
            self.post_conn.request("POST", self.target, b"1", answer_into(done))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done, 5)
        for conn in (self.get_conn, self.post_conn):
            if conn is not None:
                conn.close()

"""The Socket.IO endpoint over Engine.IO v4 HTTP long-polling, and its upgrade to WebSocket.

``polling_app`` is a plain ASGI HTTP application on the Socket.IO path (``realtime.routing``
sends it there, before Django: a long-poll must not hold a thread, and Django's middleware
would cost thread hops per request). A ``PollingSession`` is the same Socket.IO session as
on a WebSocket (``SocketIOConsumer``: CONNECT, events, rooms, pings, kicks, expiry, rate
limits, socket caps, recovery) whose way out is a ``PollingOutbound``: packets wait there
until the client's next GET takes them.

Requests (Engine.IO v4; docs/protocol.md §1):
- ``GET ?EIO=4&transport=polling`` (no sid): the handshake — OPEN with
  ``upgrades: ["websocket"]``; the session is this process's (its sid says so, below).
- ``GET …&sid=…``: the long-poll — what waits, else what arrives within the ping interval,
  else a NOOP. A second GET while one waits is refused (400) and ends the session, as
  Engine.IO specifies.
- ``POST …&sid=…``: a payload of packets, handled in order; answered ``ok``. Larger than the
  session's message limit (16 KiB before CONNECT, ``WEBSOCKET_MAX_MESSAGE_BYTES`` after):
  413, session closed.
- ``OPTIONS``: a CORS preflight. Every request with an ``Origin`` is checked by the
  WebSocket's rule (``realtime.origins``): refused with 403, or answered with CORS headers
  that allow that origin with credentials.
- Anything else: Engine.IO's JSON error (``engineio.error_body``) with status 400 (403 for a
  refused origin), never HTML.

The upgrade: the client opens ``/ws/socket.io/?EIO=4&transport=websocket&sid=…``; that
WebSocket's consumer *carries* the session (``SocketIOConsumer._carry``): "2probe" →
"3probe" (and the waiting GET is answered at once, so the client can pause polling), then
"5" → ``switch_to``: what waited for a GET goes out on the WebSocket first, in order, then
everything else; nothing is lost or sent twice. A WebSocket reaching another instance is
relayed to this one (``realtime.consumers.relay``; the requests ``PROBE``, ``SWITCH`` and
``ABANDON`` of ``answer``).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast
from urllib.parse import parse_qs

from config import logs
from config.proxies import scope_client_address
from realtime import lifecycle, metrics
from realtime.admission import unauthenticated
from realtime.conf import realtime_settings
from realtime.consumers import forwarding
from realtime.consumers.base import CLOSE_BAD_REQUEST, CLOSE_TOO_LARGE
from realtime.consumers.relay import RemoteOutbound, start_home
from realtime.consumers.socketio import SocketIOConsumer, polling_sessions
from realtime.hub import get_hub
from realtime.middleware import header, origin_allowed, token_from_scope
from realtime.outbound import Outbound, PollingOutbound
from realtime.protocol import engineio
from realtime.protocol.errors import DecodeError
from realtime.transport import direct

logger = logging.getLogger("chorus.realtime.socket")

_TEXT = b"text/plain; charset=UTF-8"
_JSON = b"application/json"


class PollingSession(SocketIOConsumer):
    """A Socket.IO session that starts on HTTP long-polling (module docstring)."""

    transport_name = "polling"
    transport = metrics.POLLING
    upgrades = ("websocket",)
    _upgrading = False

    async def accept(self, subprotocol=None, headers=None) -> None:
        """Nothing to accept: the handshake's response carries the OPEN packet."""

    def new_eio_sid(self) -> str:
        return forwarding.home_sid()  # names this process: any instance can reach it

    async def open(self, scope: dict) -> bool:
        """Start the session for the handshake request ``scope``; False (nothing started)
        when its client address already holds ``MAX_UNAUTHENTICATED_PER_ADDRESS``
        unauthenticated sockets."""
        # Never ``?token=`` here: HTTP access logs (daphne's among them) print request URLs.
        credentials = token_from_scope(scope, from_query=False)
        self.scope = cast(Any, {**scope, "credentials": credentials})
        self.channel_layer = None  # type: ignore[assignment]
        address = scope_client_address(scope)
        if not unauthenticated.admit(address):
            logger.info("Polling refused: too many unauthenticated sockets from %s", address)
            self.count_refusal("too_many_unauthenticated")
            return False
        self._unauthenticated = address
        self._opened = True
        self.out = PollingOutbound(self._overflowed, self._transport_closed)
        await self.connect()
        polling_sessions[self.eio_sid] = self
        return True

    def _transport_closed(self, code: int) -> None:
        """The session closed: run its disconnect now; forget it at once when nothing waits
        for a GET (an unknown sid gets the same answer), else once a GET has taken what
        waited, or after a ping interval and timeout (a client that never polls again)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._disconnect_once(code))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if isinstance(self.out, PollingOutbound) and self.out.finished.is_set():
            self.forget()
            return
        grace = realtime_settings.WEBSOCKET_PING_INTERVAL + realtime_settings.WEBSOCKET_PING_TIMEOUT
        loop.call_later(grace, self.forget)

    async def disconnect(self, code) -> None:
        await super().disconnect(code)
        if not isinstance(self.out, PollingOutbound):
            self.forget()  # upgraded: no GET will come for a CLOSE

    def forget(self) -> None:
        if polling_sessions.get(self.eio_sid) is self:
            del polling_sessions[self.eio_sid]

    # --- the upgrade (SocketIOConsumer's hooks) -------------------------------------------

    def upgradable(self) -> bool:
        return isinstance(self.out, PollingOutbound) and not self.closed

    def upgrading(self) -> bool:
        return self._upgrading and self.upgradable()

    def begin_upgrade(self) -> None:
        self._upgrading = True
        if isinstance(self.out, PollingOutbound):
            self.out.upgrading = True
            self.out.release()

    def upgrade_abandoned(self) -> None:
        self._upgrading = False
        if isinstance(self.out, PollingOutbound):
            self.out.upgrading = False

    def switch_to(self, carrier: SocketIOConsumer) -> None:
        assert carrier.out is not None
        self._switch(carrier.out, carrier._protocol, carrier._gate)

    def _switch(self, out: Outbound, protocol=None, gate=None) -> None:
        """From now on the session's frames leave through ``out`` (first what waited for a
        GET, in order)."""
        polling = self.out
        assert isinstance(polling, PollingOutbound)
        self._upgrading = False
        polling.upgrading = False
        polling.hand_over(out)
        polling.release()  # a GET still waiting gets a NOOP
        self.out = out
        self.transport = metrics.WEBSOCKET
        self._protocol = protocol
        self._gate = gate
        if self._metrics is not None:
            self._metrics.moved(metrics.WEBSOCKET)
        if protocol is not None:
            direct.limit_messages(protocol, self.message_limit())
        logger.debug("Session %s upgraded to websocket", self.sid or "-")

    # --- requests ---------------------------------------------------------------------------

    def message_limit(self) -> int:
        """Largest POST body the session takes now."""
        if self.user is None:
            return self.unauthenticated_message_limit()
        return self.authenticated_message_limit()

    async def take_payload(self, body: bytes) -> tuple[int, bytes]:
        """Handle a POST body; (status, Engine.IO error body or b"ok")."""
        try:
            packets = engineio.decode_payload(body.decode("utf-8"))
        except (UnicodeDecodeError, DecodeError) as error:
            logger.info("Session %s: bad payload (%s)", self.sid or "-", error)
            await self.close(CLOSE_BAD_REQUEST, "bad payload")
            return 400, engineio.error_body(engineio.BAD_REQUEST, "bad payload")
        try:
            for packet in packets:
                if self.closed:
                    break
                if isinstance(packet, bytes):
                    await self.receive(bytes_data=packet)
                else:
                    await self.receive(text_data=packet)
        except Exception:
            logger.exception("Session %s: a handler failed; closing it", self.sid or "-")
            await self._end(1011, "internal error")
        return 200, b"ok"


# --- the ASGI application --------------------------------------------------------------------


async def polling_app(scope, receive, send) -> None:
    """Engine.IO long-polling on the Socket.IO path (module docstring)."""
    method = scope["method"]
    raw_origin = header(scope, b"origin")
    cors: list[tuple[bytes, bytes]] = []
    if raw_origin is not None:
        if not origin_allowed(raw_origin.decode("latin-1"), scope):
            logger.warning(
                "Polling refused: origin %r not allowed (client %s)",
                raw_origin.decode("latin-1"),
                scope_client_address(scope),
            )
            await _error(send, 403, engineio.FORBIDDEN, [], "origin not allowed")
            return
        cors = [
            (b"access-control-allow-origin", raw_origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
    if method == "OPTIONS":
        asked = header(scope, b"access-control-request-headers") or b"content-type"
        await _respond(
            send,
            204,
            b"",
            None,
            [
                *cors,
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", asked),
                (b"access-control-max-age", b"86400"),
            ],
        )
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("EIO") != ["4"]:
        await _error(send, 400, engineio.UNSUPPORTED_PROTOCOL_VERSION, cors)
        return
    transport = query.get("transport")
    if transport != ["polling"]:
        detail = "websocket needs an Upgrade request" if transport == ["websocket"] else ""
        code = engineio.BAD_REQUEST if detail else engineio.TRANSPORT_UNKNOWN
        await _error(send, 400, code, cors, detail)
        return
    sid = query.get("sid")
    if sid is None:
        await _handshake(scope, receive, send, cors)
        return
    if method not in ("GET", "POST"):
        await _error(send, 400, engineio.BAD_REQUEST, cors, "method not allowed")
        return
    body = b""
    if method == "POST":
        try:
            read = await _read_body(receive, realtime_settings.WEBSOCKET_MAX_MESSAGE_BYTES)
        except _Gone:
            return  # nothing of a partial payload is handled
        if read is None:
            session = polling_sessions.get(sid[0])
            if session is not None:
                await session.close(CLOSE_TOO_LARGE, "message too large")
            await _error(send, 413, engineio.BAD_REQUEST, cors, "payload too large")
            return
        body = read
    # A client that leaves a long-poll leaves what waits for its next GET; a payload, once
    # read whole, is always handled to the end (never cut off halfway through a handler).
    loop = asyncio.get_running_loop()
    gone = (
        asyncio.ensure_future(_disconnected(receive)) if method == "GET" else loop.create_future()
    )
    try:
        home = None if sid[0] in polling_sessions else forwarding.home_of(sid[0])
        if home is not None and home != get_hub().channel_name:
            hold = realtime_settings.WEBSOCKET_PING_INTERVAL if method == "GET" else 0.0
            answered = await forwarding.forward(home, method, sid[0], body, hold, gone)
            if answered is None and gone.done():
                return
            answered = answered or (400, _JSON, engineio.error_body(engineio.SESSION_ID_UNKNOWN))
        else:
            answering = asyncio.ensure_future(answer(method, sid[0], body))
            await asyncio.wait((answering, gone), return_when=asyncio.FIRST_COMPLETED)
            if not answering.done():  # the client left: what waited stays for its next GET
                answering.cancel()
                return
            answered = answering.result()
    finally:
        gone.cancel()
    status, content_type, payload = answered
    await _respond(send, status, payload, content_type, cors)


async def answer(method: str, sid: str, body: bytes) -> tuple[int, bytes, bytes]:
    """Answer a GET or POST of this process's polling session ``sid`` — asked directly or
    forwarded by another instance (``realtime.consumers.forwarding``): (status, content type,
    body)."""
    session = polling_sessions.get(sid)
    if not isinstance(session, PollingSession):
        return 400, _JSON, engineio.error_body(engineio.SESSION_ID_UNKNOWN)
    if session.sid:
        logs.socket_id.set(session.sid)  # this request's task logs it
    out = session.out
    if not isinstance(out, PollingOutbound):  # upgraded: polling is over
        return 400, _JSON, engineio.error_body(engineio.BAD_REQUEST, "session upgraded")
    if method == "PROBE":  # a WebSocket on another instance probes (realtime.consumers.relay)
        if not session.upgradable():
            return 400, _JSON, engineio.error_body(engineio.BAD_REQUEST, "not upgradable")
        session.begin_upgrade()
        return 200, _TEXT, b"ok"
    if method == "ABANDON":  # … or its WebSocket ended before the switch
        session.upgrade_abandoned()
        return 200, _TEXT, b"ok"
    if method == "SWITCH":  # … and switches: body = its hub channel, "\n", its relay key
        carrier_hub, _, key = body.decode().partition("\n")
        if not session.upgrading() or not key:
            return 400, _JSON, engineio.error_body(engineio.BAD_REQUEST, "not upgrading")
        relayed = RemoteOutbound(carrier_hub, key, session._overflowed, session._transport_closed)
        session._switch(relayed)
        return 200, _TEXT, b"ok"
    if method == "POST":
        if len(body) > session.message_limit():
            await session.close(CLOSE_TOO_LARGE, "message too large")
            return 413, _JSON, engineio.error_body(engineio.BAD_REQUEST, "payload too large")
        status, answer_body = await session.take_payload(body)
        return status, (b"text/html" if status == 200 else _JSON), answer_body
    payload = await out.poll(realtime_settings.WEBSOCKET_PING_INTERVAL)
    if payload is None:  # a second GET while one waits: Engine.IO ends the session
        await session.close(CLOSE_BAD_REQUEST, "overlapping polls")
        return 400, _JSON, engineio.error_body(engineio.BAD_REQUEST, "overlapping polls")
    if out.finished.is_set():
        session.forget()  # it ended, and the client has had everything
    if not payload:
        return 400, _JSON, engineio.error_body(engineio.SESSION_ID_UNKNOWN)
    return 200, _TEXT, payload.encode()


async def _handshake(scope, receive, send, cors) -> None:
    if scope["method"] != "GET":
        await _error(send, 400, engineio.BAD_HANDSHAKE_METHOD, cors)
        return
    if lifecycle.draining():  # a balancer retries it on another instance (deploy/nginx)
        await _error(send, 503, engineio.BAD_REQUEST, cors, "server draining")
        return
    if not get_hub().single_process:
        await forwarding.start(answer)  # this process may be asked for its sessions
        start_home(polling_sessions.get)
    session = PollingSession()
    if not await session.open(scope):
        await _error(send, 429, engineio.FORBIDDEN, cors, "too many unauthenticated sockets")
        return
    assert isinstance(session.out, PollingOutbound)
    await _respond(send, 200, engineio.encode_payload(session.out.take()).encode(), _TEXT, cors)


class _Gone(Exception):
    """The client went away before its request was whole."""


async def _disconnected(receive) -> None:
    """Return once the client has gone (the request body, if any, is read and ignored)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive, limit: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit`` bytes (``_Gone`` if the client
    left first)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _error(send, status: int, code: int, cors, detail: str = "") -> None:
    await _respond(send, status, engineio.error_body(code, detail), _JSON, cors)


async def _respond(
    send, status: int, body: bytes, content_type: bytes | None, headers: list
) -> None:
    all_headers = [*headers, (b"cache-control", b"no-store")]
    if content_type is not None:
        all_headers.append((b"content-type", content_type))
    all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})

"""What both WebSocket endpoints share: ``LeanConsumer`` (accept, the per-socket send path,
the one disconnect, message size limits, the inbound gate), the close codes, and this
instance's id. The Socket.IO endpoint is ``realtime.consumers.socketio``, the y-websocket one
``realtime.consumers.yjs``; docs/realtime.md has the map.

Channels runs ``aclose_old_connections()`` (a thread hop per handler; docs/benchmarks.md)
before every handler; ``LeanConsumer`` skips it (see its docstring for why that is safe).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.tokens import ValidatedToken
from config import logs
from config.proxies import scope_client_address
from realtime import calls, lifecycle, metrics, outbound, rooms
from realtime.admission import unauthenticated
from realtime.conf import realtime_settings
from realtime.hub import get_hub
from realtime.outbound import Outbound
from realtime.protocol.wsframe import SharedFrame
from realtime.sessions import Change, SessionRecord, get_registry
from realtime.transport import direct

logger = logging.getLogger("chorus.realtime.socket")

CLOSE_GOING_AWAY = 1001
CLOSE_TOO_LARGE = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_SLOW_CONSUMER = 4413
CLOSE_RATE_LIMITED = 4429

_HOSTNAME = socket.gethostname()


def instance_id() -> str:
    return realtime_settings.INSTANCE_ID or f"{_HOSTNAME}:{os.getpid()}"


class LeanConsumer(AsyncWebsocketConsumer):
    """Channels plumbing shared by Chorus's consumers.

    No per-socket channel-layer channel (the process hub does all layer I/O), and no
    ``aclose_old_connections()`` before each handler: these consumers never touch the ORM
    themselves; every query runs on the realtime ORM thread (``realtime.db.orm``).

    Every frame and the close go through ``out`` (``realtime.outbound``: bounded, never
    blocking). However a socket ends — the client's close, a server close, a close refused by
    the server library, an exception in a handler, the server cancelling the application —
    ``disconnect`` runs exactly once (session registry, presence, rooms, documents).
    """

    #: Whether logged broadcasts reach this socket with their recovery offset (set at a
    #: Socket.IO CONNECT: ``recovery.client_takes_offsets``).
    offsets = False
    #: Whether it takes Socket.IO events, calls and app rooms (``SocketIOConsumer``).
    takes_events = False
    #: What the socket is (the session record, the live admin and the socket metrics say
    #: it): its endpoint, and the transport it is on now (a polling session's becomes
    #: "websocket" on upgrade).
    endpoint = metrics.SOCKETIO
    transport = metrics.WEBSOCKET
    _address: str | None = None
    #: The socket's metrics while its session is open (``open_session`` to ``close_session``).
    _metrics: metrics.SocketMetrics | None = None

    #: The socket's way out, from the WebSocket connect on, and its inbound gate (daphne).
    out: Outbound | None = None
    _gate: direct.InboundGate | None = None
    #: daphne's WebSocket protocol of this socket (None under other servers).
    _protocol = None
    sid = ""
    user = None
    jti = ""
    #: The hub rooms the socket is in (``realtime.hub``); each endpoint sets it at connect.
    rooms: set[str]
    closed = False
    #: The client address counted as unauthenticated (``realtime.admission``) until released.
    _unauthenticated: str | None = None
    _ended = False
    #: ``connect`` ran (so ``disconnect`` has something to undo).
    _opened = False
    _first_session = False
    connected_at = 0.0
    last_seen = 0.0

    async def __call__(self, scope, receive, send):
        """Channels' consumer entry point minus the channel layer lookup (these consumers never
        have a layer channel of their own) and minus ``await_many_dispatch``, which wrapped
        every message in a new task and an ``asyncio.wait``.

        The loop yields to the event loop after each message: a queue that already holds
        messages hands them over without suspending, so a client flooding one socket would
        otherwise hold the loop until its backlog is gone — starving every other socket and
        the hub's outbox (document updates to other instances waited seconds)."""
        self.scope = scope
        # No layer of its own, on purpose (the stubs assume every consumer has one).
        self.channel_layer = None  # type: ignore[assignment]
        self.base_send = send
        self._gate = gate = direct.inbound_gate(send, receive)
        try:
            while True:
                message = await receive()
                if gate is not None:
                    gate.taken()
                await self.dispatch(message)
                await asyncio.sleep(0)
        except StopConsumer:
            pass
        except asyncio.CancelledError:  # the server stops the application (shutdown)
            await self._end(CLOSE_GOING_AWAY, "server shutting down")
            raise
        except Exception:
            logger.exception("Socket %s: a handler failed; closing it", self.sid or "-")
            await self._end(CLOSE_INTERNAL_ERROR, "internal error")

    async def _end(self, code: int, reason: str) -> None:
        """Close the socket (if still open) and run the disconnect (if it has not run)."""
        try:
            await self.close(code, reason)
        except Exception:
            logger.exception("Socket %s: closing failed", self.sid or "-")
        await self._disconnect_once(code)

    async def _disconnect_once(self, code) -> None:
        if self._ended:
            return
        self._ended = True
        self.closed = True
        self.authenticated()
        if not self._opened:
            return  # refused before ``connect`` ran: nothing to undo
        # Shielded: daphne cancels an application still running 10 s after its disconnect
        # (a slow save, a Redis pool wait); the cleanup then finishes in its own task.
        await asyncio.shield(asyncio.ensure_future(self._clean_up(code)))

    async def _clean_up(self, code) -> None:
        try:
            await self.disconnect(code)
        except Exception:
            logger.exception("Socket %s: cleaning up after the disconnect failed", self.sid)
        finally:
            try:  # whatever failed before it, the session never outlives the socket
                await self.close_session()
            except Exception:
                logger.exception("Socket %s: closing its session failed", self.sid)
            try:  # after the session is gone: a resumed socket may take the sid at once
                await self.keep_resumable()
            except Exception:
                logger.exception("Socket %s: keeping it resumable failed", self.sid)

    async def keep_resumable(self) -> None:
        """After the session closed: keep what a reconnecting client may resume (if any)."""

    async def kick(self, code: str, message: str) -> None:
        """Tell the client why (``code``, ``message``) and close the socket (its endpoint's
        way: the hub kicks on logout and revocation)."""
        raise NotImplementedError

    async def on_room_left(self, room: str) -> None:
        """Called by the hub after a membership change made elsewhere took the socket out of
        ``room``."""
        raise NotImplementedError

    def unauthenticated_message_limit(self) -> int:
        """Largest message the socket may send before it authenticates."""
        return self.authenticated_message_limit()

    def authenticated_message_limit(self) -> int:
        """Largest message the socket may send (its endpoint's limit)."""
        raise NotImplementedError

    async def websocket_connect(self, message):
        self._protocol = direct.protocol_of(self.base_send)
        if self._protocol is not None:  # daphne buffers whole messages: cap them per socket
            limit = self.unauthenticated_message_limit()
            direct.limit_messages(self._protocol, limit, limit)
        self.out = outbound.for_connection(self.base_send, self._overflowed)
        if lifecycle.draining():  # the client retries (elsewhere, through a balancer)
            await self.accept()
            await self.close(CLOSE_TRY_AGAIN_LATER, "server draining")
            return
        address = scope_client_address(self.scope)
        if not unauthenticated.admit(address):
            logger.info("Socket refused: too many unauthenticated sockets from %s", address)
            self.count_refusal("too_many_unauthenticated")
            await self.accept()
            await self.close(CLOSE_RATE_LIMITED, "too many unauthenticated sockets")
            return
        self._unauthenticated = address
        self._opened = True
        await super().websocket_connect(message)

    async def websocket_disconnect(self, message):
        await self._disconnect_once(message.get("code"))
        raise StopConsumer()

    def authenticated(self) -> None:
        """The socket authenticated (or ended): it no longer counts as unauthenticated, and
        may send messages up to its endpoint's limit."""
        if self._unauthenticated is not None:
            unauthenticated.release(self._unauthenticated)
            self._unauthenticated = None
            if self._protocol is not None and not self.closed:
                direct.limit_messages(self._protocol, self.authenticated_message_limit())

    # --- the way out ------------------------------------------------------------------------

    async def send_frame(self, frame: str) -> None:
        """Send a text frame (never waits for the client; dropped before the WebSocket connect
        and once the socket closes)."""
        if not self.closed and self.out is not None:
            self.out.text(frame)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame (as ``send_frame``)."""
        if not self.closed and self.out is not None:
            self.out.binary(data)

    def deliver(self, shared: SharedFrame) -> None:
        """The broadcast path: a text frame built once for many sockets."""
        if not self.closed and self.out is not None:
            self.out.shared(shared)

    async def close(self, code=None, reason=None) -> None:
        """Close with ``code`` (any code, 1009 included) after what is queued; idempotent."""
        if self.closed:
            return
        if self.out is None:
            self.closed = True
            await super().close(code, reason)
        else:
            self._close_now(code or 1000, reason or "")

    def _close_now(self, code: int, reason: str) -> None:
        """Close through ``out`` (after what is queued) and read again until the end."""
        self.closed = True
        if self._gate is not None:
            self._gate.release()
        if self.out is not None:
            self.out.close(code, reason)

    def check_stalled(self, now: float) -> None:
        """Close (4413) a socket whose client has taken none of the bytes waiting for it for
        ``SEND_STALL_TIMEOUT`` seconds (the hub's keeper asks every few seconds): a client
        that answers pings but never reads would otherwise keep its buffer for good."""
        if not self.closed and self.out is not None and self.out.stalled(now):
            logger.info(
                "Socket %s: the client took nothing for %.0f s; closed 4413",
                self.sid,
                realtime_settings.SEND_STALL_TIMEOUT,
            )
            metrics.SLOW_CONSUMER_CLOSES.inc()
            self._close_now(CLOSE_SLOW_CONSUMER, "client stopped reading")

    def _overflowed(self, waiting: int) -> None:
        logger.info(
            "Socket %s: %d bytes wait for a client that does not read (SEND_BUFFER_MAX_BYTES);"
            " closed 4413",
            self.sid or "-",
            waiting,
        )
        metrics.SLOW_CONSUMER_CLOSES.inc()
        self._close_now(CLOSE_SLOW_CONSUMER, "send buffer full")

    # --- the session ------------------------------------------------------------------------

    async def open_session(self, validated: ValidatedToken) -> bool:
        """Register the authenticated socket (as ``self.sid``) in the session registry, the
        hub and its user's room. False — nothing registered — when the user already holds
        ``MAX_SOCKETS_PER_USER`` sockets on all instances, of either endpoint. Call
        ``announce_online`` once the client has been told it is connected."""
        registry = get_registry()
        hub = get_hub()
        await hub.start()  # its layer channel goes into the record: how a sid is reached
        self.user = validated.user
        self.jti = validated.jti
        # Add first, then compare: the count is atomic, so concurrent connects on any instance
        # can never exceed the limit (a refused socket takes its record back out).
        record = self.session_record()
        sessions = await registry.add(record)
        if sessions > realtime_settings.MAX_SOCKETS_PER_USER:
            await registry.remove(self.sid, str(self.user.pk))
            self.user = None
            return False
        self._first_session = sessions == 1
        self.authenticated()
        self._metrics = metrics.SocketMetrics(self.endpoint)
        self._metrics.opened(self.transport)
        logs.socket_id.set(self.sid)  # what this socket's task logs from now on carries it
        await hub.register(self)
        await hub.join(self, rooms.user_room(self.user.pk))
        return True

    def announce_online(self) -> None:
        """Queue the presence announcement if this is the user's first session anywhere."""
        if self._first_session and self.user is not None:
            get_hub().presence.add([Change(str(self.user.pk), True, self.session_record())])

    async def close_session(self) -> None:
        """Undo ``open_session`` (announcing the user offline if this was their last
        session anywhere); a no-op once done."""
        user, self.user = self.user, None
        if user is None:
            return
        if self._metrics is not None:
            self._metrics.closed()
        await get_hub().unregister(self)
        record = self.session_record(user)
        try:
            if await get_registry().remove(self.sid, str(user.pk)):
                get_hub().presence.add([Change(str(user.pk), False, record)])
        except Exception:  # the session expires on its own (SESSION_TTL)
            logger.exception("Could not remove a session from the registry")

    def session_record(self, user=None) -> SessionRecord:
        user = user or self.user
        return SessionRecord(
            sid=self.sid,
            user_id=str(user.pk),
            instance=instance_id(),
            connected_at=self.connected_at,
            user=user.public_profile(),
            last_seen=self.last_seen,
            hub=get_hub().channel_name or "",
            endpoint=self.endpoint,
            transport=self.transport,
            address=self.client_address(),
        )

    def count_refusal(self, code: str) -> None:
        """Count a socket refused before its session opened, by the protocol's ``code``."""
        metrics.REFUSALS.labels(endpoint=self.endpoint, code=code).inc()

    def client_address(self) -> str:
        """The client's address (``TRUSTED_PROXIES`` applied), worked out once."""
        if self._address is None:
            self._address = scope_client_address(self.scope)
        return self._address

    async def start_call(self, args: list, timeout: float, answer: calls.Answer) -> None:
        """A socket that takes no events takes no calls (``SocketIOConsumer`` does)."""
        raise calls.SessionNotFound()

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

"""The Socket.IO endpoint: Engine.IO v4 + Socket.IO v5 (namespace "/") over one WebSocket.

Architecture and reasons: docs/realtime.md. A thin adapter: frames go through the pure codecs
(``engineio``, ``socketio``), events to ``events.dispatch``, room membership and broadcasts to
the process hub, session bookkeeping to the session registry.

Lifecycle of a socket:
1. accept, send OPEN (sid, ping settings, maxPayload); refuse EIO≠4 or a non-websocket
   transport (close 4400), or a client address over ``MAX_UNAUTHENTICATED_PER_ADDRESS``
   (close 4429);
2. the client's CONNECT (within ``CONNECT_TIMEOUT``, else close 4408) carries ``auth.token``
   (else the token the handshake carried); it is validated now by the one accounts function,
   so a token revoked since the handshake is refused; refusal → CONNECT_ERROR with the code,
   close; before a successful CONNECT the socket may send nothing but a CONNECT (an event,
   an attachment, a binary frame: close 4401), and no event handler ever runs;
3. events are rate limited (token bucket), validated and handled one at a time, in order;
4. server PING every interval; no PONG in time → close 4408, cleaned up as a disconnect;
   at the token's ``exp`` → ``error {code: token_expired}``, close 4401 without DISCONNECT
   (stock clients reconnect with a fresh token and resume), unless ``auth:renew`` moved it;
5. connection state recovery (``RECOVERY_WINDOW``, docs/protocol.md §4.1): the CONNECT reply
   carries a ``pid``; a socket that ends without choosing to (the network, a ping timeout,
   a server shutdown, its token's expiry) is kept resumable; a CONNECT with that ``pid``
   (and the last offset the client got) by the same user within the window gets the old
   sid, its rooms (re-checked) and every logged broadcast it missed, in order, right after
   the CONNECT reply.

Close codes: 1001 server shutting down, 1009 frame too large, 1011 the server failed, 4400
bad frame / packet / version, 4401 not authenticated or the token expired, 4403 forbidden,
4408 ping timeout or no CONNECT in time, 4413 the client does not read
(``SEND_BUFFER_MAX_BYTES``), 4429 rate limit abuse or too many sockets.

The socket plumbing both endpoints share (``LeanConsumer``) is ``realtime.consumers.base``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from urllib.parse import parse_qs

from accounts.tokens import TokenRejected, ValidatedToken
from realtime import access, calls, events, metrics, outbound, recovery, rooms
from realtime.conf import realtime_settings
from realtime.consumers import forwarding
from realtime.consumers.base import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_RATE_LIMITED,
    CLOSE_TIMEOUT,
    CLOSE_TOO_LARGE,
    CLOSE_UNAUTHORIZED,
    LeanConsumer,
)
from realtime.consumers.relay import RemoteCarry
from realtime.db import validate_token
from realtime.events.documents import joined_documents, leave_document
from realtime.events.notes import recheck_note_room
from realtime.hub import Connection, get_hub
from realtime.protocol import engineio, socketio
from realtime.protocol.errors import DecodeError
from realtime.protocol.frames import event_frame
from realtime.ratelimit import TokenBucket

logger = logging.getLogger("chorus.realtime.socket")

_DISCONNECT_FRAME = engineio.encode_message(socketio.encode_disconnect())
_EXPIRED_FRAME = event_frame("error", {"code": "token_expired", "message": "Token has expired."})
#: Longest Engine.IO PING payload answered (a probe is "probe"); longer: close 4400.
MAX_PING_PAYLOAD = 16
#: Server closes after which a socket stays resumable (ping timeout, server shutting down; and
#: the token's expiry, ``_token_expired``); any other server close (a kick, a refusal, a
#: protocol error, a slow reader) ends it for good.
RESUMABLE_CLOSES = frozenset({CLOSE_TIMEOUT, CLOSE_GOING_AWAY})
#: Largest message a Socket.IO socket may send before its CONNECT succeeds (under daphne:
#: larger closes 1009 as its header arrives).
PRE_CONNECT_MESSAGE_BYTES = 16 * 1024


#: This process's Engine.IO sessions that started on HTTP long-polling, by Engine.IO sid
#: (``realtime.consumers.polling`` keeps it): a WebSocket upgrade finds its session here.
polling_sessions: dict[str, SocketIOConsumer] = {}


class SocketIOConsumer(LeanConsumer):
    """One Engine.IO / Socket.IO session. Served on one WebSocket (this consumer), or started
    on HTTP long-polling (``realtime.consumers.polling.PollingSession``) and possibly moved
    onto a WebSocket by Engine.IO's upgrade: that WebSocket's consumer then only *carries*
    the session (``_carry``) — probe, switch, frames in, its close."""

    takes_events = True
    #: The Engine.IO transport the session starts on, and what its OPEN offers to upgrade to.
    transport_name = "websocket"
    upgrades: tuple[str, ...] = ()
    #: The Engine.IO session id (the OPEN packet's ``sid``; not the Socket.IO ``sid``).
    eio_sid = ""
    #: On a WebSocket that carries a polling session: the session, and whether the switch
    #: (the client's UPGRADE packet) happened.
    _carried: SocketIOConsumer | None = None
    _switched = False
    #: On a WebSocket that carries a session of another instance: the relay to it.
    _relay: RemoteCarry | None = None

    def unauthenticated_message_limit(self) -> int:
        """Before its CONNECT a socket may send only a CONNECT (a token is at most 4 KiB):
        daphne buffers a message until it is whole, so 256 unauthenticated sockets of one
        address could otherwise hold 256 partial 1 MB frames for ``CONNECT_TIMEOUT``."""
        return PRE_CONNECT_MESSAGE_BYTES

    def authenticated_message_limit(self) -> int:
        return realtime_settings.WEBSOCKET_MAX_MESSAGE_BYTES

    # --- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        self.user = None
        self.jti = ""
        self.rooms: set[str] = set()
        self.sid = ""
        #: Connection state recovery: the private session id (in the CONNECT reply), the log
        #: position from which the client has been told nothing, whether an end now leaves
        #: the socket resumable, and what is kept when it does (``disconnect``).
        self.pid = ""
        self._log_start = recovery.ORIGIN
        self._resumable = False
        self._resume: recovery.Session | None = None
        self.connected_at = time.time()
        self.last_seen = self.connected_at
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task] = set()
        self._pending_binary: tuple[socketio.Packet, list[bytes]] | None = None
        self._bucket = TokenBucket(realtime_settings.EVENT_RATE, realtime_settings.EVENT_BURST)
        self._rate_refusals = 0
        #: Server-to-client calls waiting for the client's ack (``start_call``).
        self.calls = calls.PendingCalls(realtime_settings.CALL_MAX_PENDING)
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("EIO") != ["4"] or query.get("transport") != [self.transport_name]:
            logger.info(
                "Socket refused: EIO=%s transport=%s", query.get("EIO"), query.get("transport")
            )
            self.count_refusal("bad_request")
            await self.close(
                CLOSE_BAD_REQUEST, f"Engine.IO v4 (EIO=4) with transport={self.transport_name}"
            )
            return
        if "sid" in query:  # a WebSocket upgrading a polling session (Engine.IO's upgrade)
            await self._carry(query["sid"][0])
            return
        self.eio_sid = self.new_eio_sid()
        interval = realtime_settings.WEBSOCKET_PING_INTERVAL
        timeout = realtime_settings.WEBSOCKET_PING_TIMEOUT
        await self.send_frame(
            engineio.encode_open(
                self.eio_sid,
                int(interval * 1000),
                int(timeout * 1000),
                realtime_settings.WEBSOCKET_MAX_MESSAGE_BYTES,
                self.upgrades,
            )
        )
        self._later("connect", realtime_settings.CONNECT_TIMEOUT, self._connect_timed_out)
        self._later("ping", interval, self._ping)

    async def disconnect(self, code) -> None:
        """Note what a resumed socket gets back, stop the timers and leave every document (the
        session is closed after this, by ``LeanConsumer``, whatever happens here)."""
        if self._relay is not None:
            relay, self._relay = self._relay, None
            await relay.lost(code)
            return
        if self._carried is not None:  # a carrying WebSocket ended: so does what it carried
            carried, self._carried = self._carried, None
            if self._switched:
                await carried._disconnect_once(code)
            else:
                carried.upgrade_abandoned()
            return
        self.closed = True
        if self._resumable and self.user is not None and self.pid and recovery.enabled():
            kept = tuple(room for room in self.rooms if rooms.recoverable(room))
            if len(kept) <= recovery.MAX_RECOVERABLE_ROOMS:
                self._resume = recovery.Session(
                    self.pid, self.sid, str(self.user.pk), kept, self._log_start
                )
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.calls.fail_all(calls.SessionClosed())
        if self.user is None:
            return
        for note_id in joined_documents(self):
            try:
                await leave_document(self, note_id)
            except Exception:
                logger.exception("Socket %s: leaving document %s failed", self.sid, note_id)

    async def keep_resumable(self) -> None:
        session, self._resume = self._resume, None
        if session is not None:
            await recovery.get_store().persist(session)

    def _close_now(self, code: int, reason: str) -> None:
        if code not in RESUMABLE_CLOSES:
            self._resumable = False  # the server chose to end this socket
        super()._close_now(code, reason)

    # --- Engine.IO's upgrade (polling -> WebSocket) -----------------------------------------

    def new_eio_sid(self) -> str:
        return secrets.token_urlsafe(15)

    async def _carry(self, eio_sid: str) -> None:
        """Become the WebSocket of the polling session ``eio_sid`` (close 4400 if this process
        has no such session, or it is closed or already upgraded)."""
        session = polling_sessions.get(eio_sid)
        home = forwarding.home_of(eio_sid) if session is None else None
        if home is not None and home != get_hub().channel_name:  # relayed to the home
            self._relay = RemoteCarry(self, home, eio_sid)
            self.authenticated()
            return
        if session is None or not session.upgradable():
            logger.info("Socket refused: no polling session of this process to upgrade")
            await self.close(CLOSE_BAD_REQUEST, "unknown session")
            return
        self._carried = session
        self.authenticated()  # the session was admitted at its handshake
        # Over the mark: the session (not this carrier) decides (it closes 4413).
        self.out = outbound.for_connection(self.base_send, session._overflowed)

    async def _probe(self, text: str | None) -> None:
        """Before the switch a carrier takes only the probe ("2probe", answered "3probe")
        and then the switch ("5"); anything else closes it (4400), the session untouched."""
        session = self._carried
        assert session is not None
        assert self.out is not None  # from the WebSocket connect on
        if text == engineio.PING_FRAME + "probe" and session.upgradable():
            self.out.text(engineio.PONG_FRAME + "probe")
            session.begin_upgrade()
        elif text == str(engineio.UPGRADE) and session.upgrading():
            self._switched = True
            session.switch_to(self)
        else:
            await self.close(CLOSE_BAD_REQUEST, "bad upgrade")

    def upgradable(self) -> bool:
        """Whether the session runs on polling and may still move to a WebSocket."""
        return False

    def upgrading(self) -> bool:
        """Whether a WebSocket probe of this session succeeded and no switch happened yet."""
        return False

    def begin_upgrade(self) -> None:
        """A WebSocket probe succeeded: release the waiting GET (the client pauses polling)."""

    def upgrade_abandoned(self) -> None:
        """The probing WebSocket closed before the switch: the session stays on polling."""

    def switch_to(self, carrier: SocketIOConsumer) -> None:
        """The client switched (UPGRADE): from now on the session's frames go out on
        ``carrier``'s WebSocket (after what waited for a GET, in order), and come in there."""
        raise NotImplementedError

    # --- timers -----------------------------------------------------------------------------

    def _later(self, name: str, delay: float, coroutine_function) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._run, coroutine_function
        )

    def _run(self, coroutine_function) -> None:
        task = asyncio.get_running_loop().create_task(coroutine_function())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _cancel(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    async def _ping(self) -> None:
        if self.closed:
            return
        await self.send_frame(engineio.PING_FRAME)
        self._later("pong", realtime_settings.WEBSOCKET_PING_TIMEOUT, self._ping_timed_out)

    def _pong(self) -> None:
        self.last_seen = time.time()
        self._cancel("pong")
        self._later("ping", realtime_settings.WEBSOCKET_PING_INTERVAL, self._ping)

    async def _ping_timed_out(self) -> None:
        logger.info("Socket %s: ping timeout", self.sid or "(not connected)")
        await self.close(CLOSE_TIMEOUT, "ping timeout")

    async def _connect_timed_out(self) -> None:
        if self.user is None:
            self.count_refusal("connect_timeout")
            await self.close(CLOSE_TIMEOUT, "no CONNECT in time")

    async def _token_expired(self) -> None:
        """At the token's ``exp``: event ``error`` ``{code: token_expired}``, then the
        WebSocket closes (4401) with no DISCONNECT and no Engine.IO CLOSE (stock clients take
        either as final): socket.io-client reports "transport close", reconnects by itself
        and asks its ``auth`` for a fresh token; the session stays resumable (§4.1). A
        renewal (``auth:renew``, ``adopt_token``) moves this timer."""
        if self.closed:
            return
        await self.send_frame(_EXPIRED_FRAME)
        resumable = self._resumable
        await self.close(CLOSE_UNAUTHORIZED, "token_expired")
        self._resumable = resumable  # not the server's choice to end the session: resumable

    # --- frames -----------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self._relay is not None:
            await self._relay.receive(text_data, bytes_data)
            return
        if self._carried is not None:
            if self._switched:
                await self._carried.receive(text_data, bytes_data)
            else:
                await self._probe(text_data)
            return
        if self.closed:
            return
        limit = realtime_settings.WEBSOCKET_MAX_MESSAGE_BYTES
        if text_data is not None:
            if len(text_data) > limit or (
                len(text_data) * 4 > limit and len(text_data.encode()) > limit
            ):
                await self.close(CLOSE_TOO_LARGE, "message too large")
                return
            await self._on_text(text_data)
        elif bytes_data is not None:
            if len(bytes_data) > limit:
                await self.close(CLOSE_TOO_LARGE, "message too large")
                return
            await self._on_binary(bytes_data)

    async def _on_text(self, text: str) -> None:
        try:
            kind, rest = engineio.decode_text(text)
            if kind == engineio.PONG:
                self._pong()
            elif kind == engineio.MESSAGE:
                if self._pending_binary is not None:
                    raise DecodeError("text packet while binary attachments are pending")
                packet = socketio.decode(rest)
                if self.user is None and packet.type != socketio.CONNECT:
                    # Before CONNECT nothing but a CONNECT: no event, no attachment.
                    await self.close(CLOSE_UNAUTHORIZED, "not connected")
                    return
                if packet.type in (socketio.BINARY_EVENT, socketio.BINARY_ACK) and (
                    packet.attachments
                ):
                    self._pending_binary = (packet, [])
                    return
                await self._on_packet(packet)
            elif kind == engineio.CLOSE:
                self._resumable = False  # the client chose to end it
                await self.close(1000)
            elif kind == engineio.PING:
                # Clients ping only to probe a transport ("2probe"): a long payload would make
                # the server echo bulk data nobody asked for, before any authentication.
                if len(rest) > MAX_PING_PAYLOAD:
                    raise DecodeError("ping payload too long")
                await self.send_frame(engineio.PONG_FRAME + rest)
        except DecodeError as error:
            logger.info("Socket %s: bad frame (%s)", self.sid or "-", error)
            await self.close(CLOSE_BAD_REQUEST, "bad packet")

    async def _on_binary(self, data: bytes) -> None:
        if self.user is None:
            await self.close(CLOSE_UNAUTHORIZED, "not connected")
            return
        if self._pending_binary is None:
            await self.close(CLOSE_BAD_REQUEST, "unexpected binary frame")
            return
        packet, attachments = self._pending_binary
        attachments.append(data)
        if len(attachments) < packet.attachments:
            return
        self._pending_binary = None
        try:
            packet = socketio.reconstruct(packet, attachments)
        except DecodeError:
            await self.close(CLOSE_BAD_REQUEST, "bad attachments")
            return
        await self._on_packet(packet)

    async def _on_packet(self, packet: socketio.Packet) -> None:
        if packet.type == socketio.CONNECT:
            await self._on_connect(packet)
        elif self.user is None or packet.namespace != "/":
            # An event before CONNECT (or on a namespace never joined): close, nothing else.
            await self.close(CLOSE_UNAUTHORIZED, "not connected")
        elif packet.type == socketio.EVENT:
            await self._on_event(packet)
        elif packet.type in (socketio.ACK, socketio.BINARY_ACK):
            # The answer to a call (``start_call``); one to nothing waiting (late, or never
            # asked) is ignored.
            if packet.id is not None:
                self.calls.answered(packet.id, packet.data)
        elif packet.type == socketio.DISCONNECT:
            self._resumable = False  # the client chose to end it
            await self.close(1000)

    # --- CONNECT ----------------------------------------------------------------------------

    async def _refuse_connect(self, message: str, code: str, namespace: str = "/") -> None:
        data = {"code": code} if code else None
        await self.send_frame(
            engineio.encode_message(socketio.encode_connect_error(message, data, namespace))
        )

    async def _on_connect(self, packet: socketio.Packet) -> None:
        if packet.namespace != "/":
            await self._refuse_connect("Invalid namespace", "", packet.namespace)
            return
        if self.user is not None:
            return  # already connected: a repeated CONNECT changes nothing
        auth = packet.data if isinstance(packet.data, dict) else {}
        raw = auth.get("token")
        if raw is None:
            raw = self.scope.get("credentials")  # the handshake's token, validated now
        resuming = self.offsets = recovery.client_takes_offsets(self.scope.get("headers", []))
        try:
            if resuming:  # where the log stands before any room is joined (in parallel)
                validated, self._log_start = await asyncio.gather(
                    validate_token(raw), recovery.get_store().position()
                )
            else:
                validated = await validate_token(raw)
            if self.closed:
                return  # closed meanwhile (no CONNECT in time): register nothing
        except TokenRejected as rejected:
            self.count_refusal(rejected.code)
            await self._refuse_connect(rejected.message, rejected.code)
            close = CLOSE_FORBIDDEN if rejected.status == 403 else CLOSE_UNAUTHORIZED
            await self.close(close, rejected.code)
            return
        session = None
        if resuming and isinstance(auth.get("pid"), str):
            # Only the user the session belonged to can take it (checked by the store).
            session = await recovery.get_store().take(auth["pid"], str(validated.user.pk))
        held = None
        if session is not None:
            self.sid, self.pid = session.sid, session.pid
            held = self._hold()  # from the first room joined on (the user's, just below)
        else:
            self.sid = secrets.token_urlsafe(15)
            self.pid = secrets.token_urlsafe(15) if resuming else ""
        if not await self.open_session(validated):
            self._stop_holding()
            self.count_refusal("too_many_connections")
            await self._refuse_connect("Too many open sockets.", "too_many_connections")
            await self.close(CLOSE_RATE_LIMITED, "too many connections")
            return
        await self.join(rooms.EVERYONE_ROOM)  # a broadcast reaches every Socket.IO socket
        self._cancel("connect")
        self.adopt_token(validated)
        frames: list[str] = []
        seen: set[str] = set()
        if session is not None:
            try:
                resumed = await self._resume_session(session, auth.get("offset"), frames, seen)
            finally:
                self._stop_holding()
            if not resumed:
                self.pid = secrets.token_urlsafe(15)  # not resumed: a new session
        # Resumable from now on, unless the server ended it meanwhile (a kick, a refusal; a
        # slow-reader close while the replay goes out clears it again in ``_close_now``).
        self._resumable = resuming and not self.closed
        reply = {"sid": self.sid, "pid": self.pid} if self.pid else {"sid": self.sid}
        await self.send_frame(engineio.encode_message(socketio.encode_connect(reply)))
        if held is not None:
            self._release(frames, seen, held)
        self.announce_online()

    def adopt_token(self, validated: ValidatedToken) -> None:
        """Bind the socket to ``validated``: its jti (for logout kicks) and its expiry."""
        self.jti = validated.jti
        self._later("expiry", validated.expires_at - time.time(), self._token_expired)

    # --- connection state recovery ----------------------------------------------------------

    async def _resume_session(
        self, session: recovery.Session, client_offset: object, frames: list[str], seen: set[str]
    ) -> bool:
        """Rejoin the rooms of ``session`` the user may still be in and collect in ``frames``
        what the client missed since its last offset (or, without one, since
        ``session.start``), and in ``seen`` the offsets of the log entries read. False — the
        socket left in its own user room only, ``frames`` empty — when the client cannot be
        told everything: an offset that is not one, entries dropped from the log, missed
        frames over ``SEND_BUFFER_MAX_BYTES`` (the socket would be closed for them).

        Call with live frames held (``_hold``), so that nothing published while the log is
        read is lost or sent twice. The log is replayed as the socket would have lived it: a
        ``join`` entry adds its room, a ``leave`` takes it away."""
        begin = session.start
        if client_offset is not None:
            parsed = recovery.parse_offset(client_offset)
            if parsed is None:
                return False
            if parsed > (recovery.parse_offset(begin) or (0, 0)):
                begin = str(client_offset)  # an older one is from before this session
        if self.user is None:  # never: resumed once the session is open
            return False
        own = rooms.user_room(self.user.pk)
        member = await self._still_allowed({own, rooms.EVERYONE_ROOM, *session.rooms})
        for room in member - self.rooms:
            await self.join(room)
        cursor = begin
        for _ in range(3):  # again after joins the log asked for, in case they missed some
            entries = await recovery.get_store().read_after(cursor)
            joins = [] if entries is None else self._replay(entries, member, frames, seen)
            # Entries dropped from the log, or more missed than the socket may be sent at once
            # (its send mark): the client cannot be told everything; a normal connect.
            if entries is None or sum(map(len, frames)) > realtime_settings.SEND_BUFFER_MAX_BYTES:
                frames.clear()
                for room in list(self.rooms):
                    if room not in (own, rooms.EVERYONE_ROOM):
                        self.leave(room)
                return False
            if entries:
                cursor = entries[-1].offset
            for room in joins:
                if room not in self.rooms:
                    await self.join(room)
            if not joins:
                break
        for room in list(self.rooms):
            if room not in member:
                self.leave(room)
        for room in sorted({*session.rooms} - member):
            if room.startswith(rooms.NOTE_ROOMS):  # as recheck_note_room tells a socket online
                note_id = room.removeprefix(rooms.NOTE_ROOMS)
                frames.append(event_frame("note-events", {"id": note_id, "access": None}))
        # A cut while the replay goes out resumes from the client's last offset, or from here:
        # never from past what the client may not have received.
        self._log_start = begin
        return True

    def _replay(
        self, entries: list[recovery.Entry], member: set[str], frames: list[str], seen: set[str]
    ) -> list[str]:
        """Walk ``entries`` as the socket would have lived them: frames for its rooms go to
        ``frames``, ``member`` follows joins and leaves; returns the rooms joined."""
        joined = []
        for entry in entries:
            seen.add(entry.offset)
            if entry.room not in member:
                continue
            if entry.kind == "emit":
                if entry.skip == self.sid or not entry.frame:
                    continue
            elif entry.kind == "join" and entry.target and rooms.recoverable(entry.target):
                if entry.target not in member:
                    member.add(entry.target)
                    joined.append(entry.target)
            elif entry.kind == "leave" and entry.target:
                if entry.target not in member:
                    continue  # as online: a leave of a room not joined sends nothing
                member.discard(entry.target)
            else:
                continue
            if entry.frame:
                frames.append(socketio.add_offset(entry.frame, entry.offset))
        return joined

    async def _still_allowed(self, wanted: set[str]) -> set[str]:
        """The rooms of ``wanted`` this user may be in now: its own user room, the room of
        every socket, the app rooms the server put it in, the channels it is an active member
        of, the notes it can read."""
        user = self.user
        if user is None:  # never: asked once the session is open
            return set()
        allowed = {rooms.user_room(user.pk), rooms.EVERYONE_ROOM} & wanted
        allowed |= {r for r in wanted if r.startswith(rooms.APP_ROOMS)}
        channels = {r for r in wanted if r.startswith(rooms.CHANNEL_ROOMS)}
        if channels:
            ids = await access.channel_ids_of(user.pk)
            allowed |= channels & {rooms.channel_room(i) for i in ids}
        notes = [r for r in wanted if r.startswith(rooms.NOTE_ROOMS)]
        if notes:
            get_hub().on_message("chorus.note_access", recheck_note_room)
        for room in notes:
            if await access.note_access(user, room.removeprefix(rooms.NOTE_ROOMS)) is not None:
                allowed.add(room)
        return allowed

    def _hold(self) -> list:
        """Keep the frames the hub sends this socket (broadcasts, notices) in a list, in order,
        instead of sending them, until ``_stop_holding``; ``_release`` sends them."""
        held: list = []

        async def hold(frame: str) -> None:
            held.append(frame)

        self.deliver = held.append  # type: ignore[method-assign,assignment]
        self.send_frame = hold  # type: ignore[method-assign]
        return held

    def _stop_holding(self) -> None:
        self.__dict__.pop("deliver", None)
        self.__dict__.pop("send_frame", None)

    def _release(self, frames: list[str], seen: set[str], held: list) -> None:
        """Send the missed ``frames``, then what arrived live meanwhile that was not among the
        entries read (``seen``)."""
        out = self.out
        if self.closed or out is None:
            return
        for frame in frames:
            out.text(frame)
        for item in held:
            text = item if isinstance(item, str) else item.text
            offset = socketio.trailing_offset(text)
            if offset is not None and offset in seen:
                continue
            if isinstance(item, str):
                out.text(item)
            else:
                out.shared(item)

    # --- events -----------------------------------------------------------------------------

    async def _on_event(self, packet: socketio.Packet) -> None:
        name, args = packet.data[0], packet.data[1:]
        metrics.event_received(name)
        if not self._bucket.take():
            self._rate_refusals += 1
            if self._rate_refusals >= realtime_settings.RATE_LIMIT_DISCONNECT_AFTER:
                logger.info("Socket %s: disconnected for sustained rate abuse", self.sid)
                await self.kick("rate_limited", "Too many events.", CLOSE_RATE_LIMITED)
                return
            result = events.EventError("rate_limited", "Too many events; slow down.").as_ack()
        else:
            self._rate_refusals = 0
            try:
                result = await events.dispatch(self, name, args)
            except events.EventError as error:
                result = error.as_ack()
            except Exception:
                logger.exception("Socket %s: handler for %r failed", self.sid, name[:64])
                result = events.EventError("internal_error", "The server failed.").as_ack()
        if packet.id is not None and not self.closed:
            await self.send_frame(engineio.encode_message(socketio.encode_ack(packet.id, [result])))
        if self.out is not None:
            self.out.end_reply()  # a document state's reply ends with its ack (if any)

    # --- what the hub and handlers use ------------------------------------------------------

    async def join(self, room: str) -> None:
        await get_hub().join(self, room)

    def leave(self, room: str) -> None:
        get_hub().leave(self, room)

    async def on_room_left(self, room: str) -> None:
        """Called by the hub after a membership change took the socket out of ``room``."""

    async def start_call(self, args: list, timeout: float, answer: calls.Answer) -> None:
        """Send event ``args`` with a new ack id; the client's ack goes to ``answer``."""
        if self.closed or self.user is None:
            raise calls.SessionClosed()
        ack_id = self.calls.add(answer, timeout)
        event, data = args[0], (args[1] if len(args) > 1 else None)
        await self.send_frame(
            engineio.encode_message(socketio.encode_event(event, data, ack_id=ack_id))
        )

    async def kick(self, code: str, message: str, close_code: int = 1000) -> None:
        """Tell the client why (event ``error``), send DISCONNECT, close (for good)."""
        if self.closed:
            return
        self._resumable = False
        await self.send_frame(event_frame("error", {"code": code, "message": message}))
        await self.send_frame(_DISCONNECT_FRAME)
        await self.close(close_code, code)


#: The hub takes this consumer as a ``Connection`` (a static check: mypy fails if it drifts).
_is_a_connection: type[Connection] = SocketIOConsumer

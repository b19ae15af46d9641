"""The y-websocket endpoint: ``/ws/yjs/<document_id>`` for any stock Yjs ``WebsocketProvider``.

Binary frames, y-protocols v1 (``realtime.protocol.yprotocol``). The connection shares the process's
``DocumentRoom`` with Socket.IO editors, so an edit made through either endpoint reaches the
clients of both, on every instance.

- Authentication: the token the handshake carried (``Authorization`` header, ``token`` cookie
  or ``?token=`` — browsers' WebSocket API can only use the last two), validated on accept.
  None or refused: close 4401; a user gone, inactive or pending: 4403 (Socket.IO's codes).
- A session like a Socket.IO socket's: registered (presence, ``MAX_SOCKETS_PER_USER`` across
  both endpoints: over it, close 4429), in the user's room (logout / revoke-all kicks).
- Access: no read access, or no such note (not told apart): close 4403. Read-only clients'
  step-2 and update messages are dropped and never relayed (their awareness is relayed); the
  first one that carries a change is answered with the y-protocols auth message "permission
  denied" (``READ_ONLY_REASON``), once per connection — again only after an update of it was
  accepted (write access given back). A step 2 that brings nothing the server lacks (every
  client sends one on connect) is dropped without a word.
- Sessions: the connection is a member of the document's room (hub) and of its session
  registry group while it is in the document, so ``ydoc:document:state.sessions`` lists its
  id (``y:<16 characters>``) on every instance; it leaves both on every close path.
- On accept: sync step 1 (the server's state vector) and the known awareness states.
  Step 1 from the client is answered with step 2 to that client only — unless the previous
  step 2 it was sent has not been taken yet (that one, and the updates after it, already
  bring the client up to date): then it is dropped.
- Rate: a token bucket per connection (``YJS_MESSAGE_RATE`` / ``YJS_MESSAGE_BURST``);
  messages beyond it wait for the bucket: nothing is dropped and nobody is disconnected (a
  paste of many updates is only slowed down), and a client that keeps sending faster is held
  back by TCP (daphne: the inbound gate, ``INBOUND_BACKPRESSURE``; uvicorn by itself).
- A frame larger than ``DOC_MAX_BYTES`` + 64 KiB, or an update that would take the document
  past ``DOC_MAX_BYTES``: close 1009; one that does not parse, or an update the server cannot
  apply: close 4400.
- Awareness: a connection sets and clears only the client ids it introduced, within the
  ``AWARENESS_MAX_*`` bounds (``DocumentRoom.apply_awareness``); on close, a null state for
  each of them.
- Logout / revoke-all kick the connection (close 4401); so does the token's expiry.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from pycrdt import get_update

from accounts.tokens import TokenRejected
from realtime.access import note_access
from realtime.conf import SYNC_HEADROOM, realtime_settings
from realtime.consumers.base import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    CLOSE_UNAUTHORIZED,
    LeanConsumer,
)
from realtime.db import validate_token
from realtime.documents import (
    EMPTY_UPDATE,
    YWS,
    DocClient,
    DocError,
    DocumentRoom,
    get_manager,
    parse_document_id,
)
from realtime.hub import Connection
from realtime.protocol import yprotocol
from realtime.protocol.errors import DecodeError
from realtime.protocol.wsframe import SharedFrame
from realtime.ratelimit import TokenBucket

logger = logging.getLogger("chorus.realtime.yjs")

#: The close code for a refused document operation (``DocError.code``); others: 4400.
_DOC_ERROR_CLOSE = {
    "too_large": CLOSE_TOO_LARGE,
    "not_found": CLOSE_FORBIDDEN,  # the note was deleted: told apart from nothing else
    "internal_error": CLOSE_INTERNAL_ERROR,  # not stored: the provider reconnects and resyncs
}
#: The reason sent with "permission denied" to a read-only client that sent a change.
READ_ONLY_REASON = "read-only: you may not edit this note; your changes are not saved"


class YjsConsumer(LeanConsumer):
    endpoint = "y-websocket"

    def authenticated_message_limit(self) -> int:
        return realtime_settings.DOC_MAX_BYTES + SYNC_HEADROOM

    async def connect(self) -> None:
        self.room: DocumentRoom | None = None
        self.client: DocClient | None = None
        self.rooms: set[str] = set()
        self.sid = "y:" + secrets.token_urlsafe(12)
        self._told_read_only = False
        self.connected_at = self.last_seen = time.time()
        self._expiry: asyncio.TimerHandle | None = None
        self._bucket = TokenBucket(
            realtime_settings.YJS_MESSAGE_RATE, realtime_settings.YJS_MESSAGE_BURST
        )
        await self.accept()
        try:
            validated = await validate_token(self.scope.get("credentials"))
        except TokenRejected as rejected:
            close = CLOSE_FORBIDDEN if rejected.status == 403 else CLOSE_UNAUTHORIZED
            await self.close(close, rejected.code)
            return
        try:
            note_id = parse_document_id(self.scope["url_route"]["kwargs"]["document_id"])
        except DocError as error:
            await self.close(CLOSE_BAD_REQUEST, error.code)
            return
        access = await note_access(validated.user, note_id)
        if access is None:  # no such note, or not readable: not told apart
            await self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        if not await self.open_session(validated):
            await self.close(CLOSE_RATE_LIMITED, "too_many_connections")
            return
        try:
            self.room = await get_manager().open(note_id)
        except DocError:
            await self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        self.client = DocClient(
            key=self.sid,
            kind=YWS,
            user_id=str(validated.user.pk),  # self.user, from open_session
            user_name=validated.user.display_name,
            writable=access == "write",
            deliver=self._deliver_document_frame,
            revoke=self._revoked,
        )
        # In the document (its editors, hub room and registry group: ``sessions``); the
        # keeper refreshes the membership like a Socket.IO socket's, ``disconnect`` undoes it.
        await get_manager().join(self.room, self.client, self)
        # A grant change published while the check and the load ran found no editor here to
        # re-check: now that this one is in the room, read its access once more.
        access = await note_access(self.user, note_id)
        if access is None:
            await self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        self.client.writable = access == "write"
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(0.0, validated.expires_at - time.time()),
            lambda: loop.create_task(self.kick("token_expired", "Token has expired.")),
        )
        await self.send_bytes(yprotocol.encode_sync_step1(self.room.doc.get_state()))
        awareness = self.room.awareness_update()
        if awareness is not None:
            await self.send_bytes(yprotocol.encode_awareness(awareness))
        if not self.closed:  # kicked meanwhile: its disconnect announces nothing either
            self.announce_online()

    async def disconnect(self, code) -> None:
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        if self.room is not None and self.client is not None:
            room, client, self.room = self.room, self.client, None
            await get_manager().leave_room(room, client, self)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closed or self.room is None or self.client is None:
            return
        if bytes_data is None:
            await self.close(CLOSE_BAD_REQUEST, "binary frames only")
            return
        if len(bytes_data) > realtime_settings.DOC_MAX_BYTES + SYNC_HEADROOM:
            await self.close(CLOSE_TOO_LARGE, "message too large")
            return
        await self._paced()
        if self.closed:
            return
        try:
            await self._on_message(yprotocol.decode_message(bytes_data))
        except (DecodeError, ValueError) as error:
            logger.info("y-websocket %s: bad message (%s)", self.sid, error)
            await self.close(CLOSE_BAD_REQUEST, "bad message")
        except DocError as error:
            await self.close(_DOC_ERROR_CLOSE.get(error.code, CLOSE_BAD_REQUEST), error.code)

    async def _paced(self) -> None:
        """Take a token from the bucket, waiting for one if there is none."""
        if not self._bucket.take():
            await asyncio.sleep(self._bucket.delay())
            self._bucket.take()

    async def _on_message(self, message: yprotocol.YMessage) -> None:
        room, client, out = self.room, self.client, self.out
        if room is None or client is None or out is None:  # never: ``receive`` checked them
            return
        if message.kind == yprotocol.MESSAGE_SYNC:
            if message.subtype == yprotocol.SYNC_STEP1:
                if out.reply_pending():
                    return  # the step 2 still on its way (and later updates) answer it
                yprotocol.decode_state_vector(message.payload)  # before pycrdt sees it
                state = await room.durable_state()  # acknowledged edits only, all of them
                if self.closed:
                    return
                out.begin_reply()
                await self.send_bytes(
                    yprotocol.encode_sync_step2(get_update(state, message.payload))
                )
                out.end_reply()
            else:  # step 2 or update; a read-only client's is dropped
                step2 = message.subtype == yprotocol.SYNC_STEP2
                if client.writable:
                    self._told_read_only = False
                    integrated = await room.apply(
                        message.payload, self.sid, client.user_id, whole=step2
                    )
                    if not integrated and room.should_ask(client):
                        # It builds on changes the server lacks: ask for them (stock providers
                        # answer a step 1 with a step 2 holding everything the server lacks).
                        await self.send_bytes(yprotocol.encode_sync_step1(room.doc.get_state()))
                elif not self._told_read_only and _changes(room, message.payload, step2):
                    self._told_read_only = True
                    await self.send_bytes(yprotocol.encode_permission_denied(READ_ONLY_REASON))
        elif message.kind == yprotocol.MESSAGE_AWARENESS:
            await room.apply_awareness(message.payload, self.sid, client.user_id)
        elif message.kind == yprotocol.MESSAGE_QUERY_AWARENESS:
            awareness = room.awareness_update()
            if awareness is not None:
                await self.send_bytes(yprotocol.encode_awareness(awareness))
        # MESSAGE_AUTH from a client means nothing here.

    async def _revoked(self) -> None:
        await self.close(CLOSE_FORBIDDEN, "access revoked")

    def _deliver_document_frame(self, frame: SharedFrame) -> None:
        """The document room's fan-out: a binary frame framed once for its editors."""
        if not self.closed and self.out is not None:
            self.out.shared(frame)

    # --- what the hub uses (logout / revoke-all kicks) --------------------------------------

    def deliver(self, shared) -> None:
        """Socket.IO text frames broadcast to the user's or the document's room do not apply
        here."""

    async def send_frame(self, frame: str) -> None:
        """Socket.IO text frames (a join notice) do not apply here."""

    async def kick(self, code: str, message: str) -> None:
        await self.close(CLOSE_UNAUTHORIZED, code)

    async def on_room_left(self, room: str) -> None:
        """Nothing to do: this connection is only in its user's room and its document's."""


def _changes(room: DocumentRoom, update: bytes, step2: bool) -> bool:
    """Whether ``update`` would change the document: any update but an empty one (a client
    sends one only for a local change); a step 2 only if it holds items, or deletions, the
    server's document lacks. ``DecodeError`` / ``ValueError`` for one that does not parse."""
    yprotocol.check_update(update)  # before pycrdt sees it
    if update == EMPTY_UPDATE:
        return False
    if not step2:
        return True
    state = room.doc.get_state()
    theirs = yprotocol.delete_set(get_update(update, state))
    if theirs is None:
        return True  # items the server lacks
    return bool(theirs) and not yprotocol.deletions_covered(
        theirs, yprotocol.delete_set(room.doc.get_update(state)) or {}
    )


#: The hub takes this consumer as a ``Connection`` (a static check: mypy fails if it drifts).
_is_a_connection: type[Connection] = YjsConsumer

"""The y-websocket endpoint: ``/ws/yjs/<document_id>`` for any stock Yjs ``WebsocketProvider``.

Binary frames, y-protocols v1 (``realtime.yprotocol``). The connection shares the process's
``DocumentRoom`` with Socket.IO editors, so an edit made through either endpoint reaches the
clients of both, on every instance.

- Authentication: the JWT middleware's token (``Authorization`` header, ``token`` cookie or
  ``?token=`` — browsers' WebSocket API can only use the last two). None or refused: close 4401.
- Access: no read access (or no such note, not revealed): close 4403. Read-only clients'
  step-2 and update messages are dropped and never relayed; their awareness is relayed.
- On accept: sync step 1 (the server's state vector) and every known awareness state.
  Step 1 from the client is answered with step 2 to that client only.
- A frame larger than ``DOC_MAX_BYTES`` + 64 KiB: close 1009; one that does not parse, or an
  update the server cannot apply: close 4400.
- On close: a null awareness state for each awareness client id the connection owned.
- Logout / revoke-all kick the connection (close 4401); so does the token's expiry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from . import push, yprotocol
from .consumers import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_TOO_LARGE,
    CLOSE_UNAUTHORIZED,
    LeanConsumer,
)
from .documents import YWS, DocClient, DocError, DocumentRoom, get_manager, parse_document_id
from .events import EventError, note_access
from .hub import get_hub
from .protocol_errors import DecodeError

logger = logging.getLogger("chorus.realtime.yjs")

#: Room for the initial sync of a document at the maximum size.
SYNC_HEADROOM = 64 * 1024


class YjsConsumer(LeanConsumer):
    async def connect(self) -> None:
        self.room: DocumentRoom | None = None
        self.client: DocClient | None = None
        self.closed = False
        self.rooms: set[str] = set()
        self.sid = "y:" + secrets.token_urlsafe(12)
        self._expiry: asyncio.TimerHandle | None = None
        await self.accept()
        token = self.scope.get("token")
        if token is None:
            await self.close(CLOSE_UNAUTHORIZED, "authentication required")
            return
        self.user, self.jti = token.user, token.jti
        try:
            note_id = parse_document_id(self.scope["url_route"]["kwargs"]["document_id"])
            access = await note_access(self.user, note_id)
        except (DocError, EventError) as error:  # a bad id, or no such note (not revealed)
            close = CLOSE_BAD_REQUEST if error.code == "bad_request" else CLOSE_FORBIDDEN
            await self.close(close, error.code)
            return
        if access is None:
            await self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        try:
            self.room = await get_manager().open(note_id)
        except DocError:
            await self.close(CLOSE_FORBIDDEN, "forbidden")
            return
        self.client = DocClient(
            key=self.sid,
            kind=YWS,
            user_id=str(self.user.pk),
            user_name=self.user.display_name,
            writable=access == "write",
            send=self._send_bytes,
            revoke=self._revoked,
        )
        self.room.clients[self.sid] = self.client
        await get_hub().join(self, push.user_room(self.user.pk))
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(0.0, token.expires_at - time.time()),
            lambda: loop.create_task(self.kick("token_expired", "Token has expired.")),
        )
        await self._send_bytes(yprotocol.encode_sync_step1(self.room.doc.get_state()))
        awareness = self.room.awareness_update()
        if awareness is not None:
            await self._send_bytes(yprotocol.encode_awareness(awareness))

    async def disconnect(self, code) -> None:
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        await get_hub().unregister(self)
        if self.room is not None and self.client is not None:
            room, client, self.room = self.room, self.client, None
            await get_manager().leave(room, client)

    async def close(self, code=None, reason=None) -> None:
        if not self.closed:
            self.closed = True
            await super().close(code, reason)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closed or self.room is None or self.client is None:
            return
        if bytes_data is None:
            await self.close(CLOSE_BAD_REQUEST, "binary frames only")
            return
        from .conf import realtime_settings

        if len(bytes_data) > realtime_settings.DOC_MAX_BYTES + SYNC_HEADROOM:
            await self.close(CLOSE_TOO_LARGE, "message too large")
            return
        try:
            await self._on_message(yprotocol.decode_message(bytes_data))
        except (DecodeError, ValueError) as error:
            logger.info("y-websocket %s: bad message (%s)", self.sid, error)
            await self.close(CLOSE_BAD_REQUEST, "bad message")
        except DocError as error:
            close = CLOSE_TOO_LARGE if error.code == "too_large" else CLOSE_BAD_REQUEST
            await self.close(close, error.code)

    async def _on_message(self, message: yprotocol.YMessage) -> None:
        room, client = self.room, self.client
        if message.kind == yprotocol.MESSAGE_SYNC:
            if message.subtype == yprotocol.SYNC_STEP1:
                await self._send_bytes(
                    yprotocol.encode_sync_step2(room.doc.get_update(message.payload))
                )
            elif client.writable:  # step 2 or update; a read-only client's is dropped
                await room.apply(message.payload, self.sid, client.user_id)
        elif message.kind == yprotocol.MESSAGE_AWARENESS:
            await room.apply_awareness(message.payload, self.sid, client.user_id)
        elif message.kind == yprotocol.MESSAGE_QUERY_AWARENESS:
            awareness = room.awareness_update()
            if awareness is not None:
                await self._send_bytes(yprotocol.encode_awareness(awareness))
        # MESSAGE_AUTH from a client means nothing here.

    async def _revoked(self) -> None:
        await self.close(CLOSE_FORBIDDEN, "access revoked")

    async def _send_bytes(self, data: str | bytes) -> None:
        if self.closed:
            return
        try:
            await self.send_wire(data=data)
        except Exception:  # a send never raises into the room
            logger.debug("y-websocket send failed", exc_info=True)

    # --- what the hub uses (logout / revoke-all kicks) --------------------------------------

    async def send_frame(self, frame: str) -> None:
        """Socket.IO text frames broadcast to the user's room do not apply here."""

    def write_now(self, shared) -> bool:
        return True  # nothing to write: see send_frame

    async def kick(self, code: str, message: str) -> None:
        await self.close(CLOSE_UNAUTHORIZED, code)

    async def on_room_left(self, room: str) -> None:
        """Nothing to do: this connection is only in its user's room."""

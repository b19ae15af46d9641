"""Collaborative documents: one ``DocumentRoom`` per open note per process.

The room owns the server's pycrdt ``Doc`` (the authority for what is relayed and stored),
the local editors of both endpoints (Socket.IO ``ydoc:*`` and y-websocket), the awareness
states, and the debounced saves. A document's life, in order:

- load: ``DocumentManager.open`` — concurrent joins share one load; a note with content but no
  Yjs state is seeded on the server (``notes.yjs.load_state``); a failed load leaves nothing
  behind and nothing is ever saved from it;
- change: ``apply`` — an update is applied to the server ``Doc`` first (malformed → refused,
  neither stored nor relayed), then relayed to every local editor except its sender, encoded
  once per frame type, and queued once for the other instances (``chorus.doc`` messages,
  which they apply to their own ``Doc``; published in order by the hub's outbox, so the
  sender never waits for the layer, and not at all on a single-process layer);
- store: ``save`` — trailing debounce ``DOC_SAVE_DEBOUNCE`` with ceiling ``DOC_SAVE_MAX_WAIT``;
  merges into the stored state under a row lock (``notes.yjs.merge_save``); a failed save is
  logged, retried with backoff and keeps the document dirty and in memory;
- unload: when the last local editor leaves the room is flushed, then dropped from memory —
  only after re-checking that no editor came back and nothing is dirty.

Every update carries its origin (the sending socket's id, or None for the server / another
instance), which decides who must not receive it back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from pycrdt import Doc, merge_updates

from . import push, yprotocol
from .conf import realtime_settings
from .db import orm
from .hub import Coalesce, get_hub
from .protocol_errors import DecodeError

logger = logging.getLogger("chorus.realtime.documents")

SIO, YWS = "sio", "yws"
#: A Yjs update with no items and no deletions.
EMPTY_UPDATE = b"\x00\x00"


class DocError(Exception):
    """A refused document operation; ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_document_id(raw: str) -> uuid.UUID:
    """The note id of ``note:<uuid>`` (or ``note_<uuid>``, URL-encoded or not)."""
    text = unquote(raw or "")
    for prefix in ("note:", "note_"):
        if text.startswith(prefix):
            try:
                return uuid.UUID(text[len(prefix) :])
            except ValueError:
                break
    raise DocError("bad_request", "document_id must be 'note:<uuid>'.")


def _merge_updates(messages: list[dict]) -> dict:
    """Peer update messages of one editor as one message carrying their merged update."""
    return {**messages[-1], "payload": merge_updates(*(m["payload"] for m in messages))}


@dataclass(eq=False)
class DocClient:
    """One local editor: a Socket.IO socket (``sio``) or a y-websocket connection (``yws``).

    ``send`` takes a text frame (sio) or bytes (yws) and must never raise; ``revoke`` ends
    the client's editing when its read access is gone (see ``DocumentRoom.recheck_access``).
    """

    key: str
    kind: str
    user_id: str
    user_name: str
    writable: bool
    send: Callable[[str | bytes], Awaitable[None]]
    revoke: Callable[[], Awaitable[None]] | None = None
    awareness_ids: set[int] = field(default_factory=set)


class DocumentRoom:
    def __init__(self, note_id: str, state: bytes) -> None:
        self.note_id = note_id
        self.document_id = f"note:{note_id}"
        self.group = push.doc_room(note_id)
        self.doc = Doc()
        self.doc.apply_update(state)
        self.clients: dict[str, DocClient] = {}
        self.awareness: dict[int, tuple[int, str]] = {}
        self.content: dict | None = None
        self.dirty_since: float | None = None
        self.size = len(state)
        self._save_timer: asyncio.TimerHandle | None = None
        self._save_lock = asyncio.Lock()
        self._retry_delay = 0.5
        self._tasks: set[asyncio.Task] = set()
        self.saves = 0
        #: Called after a successful save (the manager unloads an idle room then).
        self.on_saved: Callable[[DocumentRoom], Awaitable[None]] | None = None

    # --- change -----------------------------------------------------------------------------

    def check_update_size(self, update: bytes) -> None:
        if len(update) > realtime_settings.DOC_MAX_UPDATE_BYTES:
            raise DocError("too_large", "The update is larger than DOC_MAX_UPDATE_BYTES.")
        if self.size + len(update) > realtime_settings.DOC_MAX_BYTES:
            self.size = len(self.doc.get_update())  # the estimate only grows; re-measure
            if self.size + len(update) > realtime_settings.DOC_MAX_BYTES:
                raise DocError("too_large", "The document would exceed DOC_MAX_BYTES.")

    async def apply(
        self,
        update: bytes,
        origin: str | None,
        user_id: str | None,
        content: dict | None = None,
        publish: bool = True,
    ) -> None:
        """Apply ``update`` to the server Doc, relay it, publish it, schedule a save."""
        self.check_update_size(update)
        try:
            self.doc.apply_update(update)
        except ValueError:
            raise DocError("bad_request", "The update is not a valid Yjs update.") from None
        if update == EMPTY_UPDATE:
            return  # e.g. a y-websocket client's first sync reply: nothing to relay or save
        self.size += len(update)
        if content is not None:
            self.content = content
        self.schedule_save()
        await self.relay_update(update, origin, user_id)
        if publish:
            await get_hub().publish_to_peers(
                self.group,
                {
                    "type": "chorus.doc",
                    "kind": "update",
                    "payload": update,
                    "origin": get_hub().token,
                    "sid": origin,
                    "user_id": user_id,
                    "note_id": self.note_id,
                },
                # One editor's updates still waiting for the layer go out as one merged
                # update: the layer's cost per message, not the editors, bounds the rate.
                coalesce=Coalesce(("update", origin, user_id), _merge_updates),
            )

    async def relay_update(self, update: bytes, origin: str | None, user_id: str | None) -> None:
        """Send a document update to every local editor except ``origin``."""
        payload = {"document_id": self.document_id, "user_id": user_id, "socket_id": origin}
        await self._broadcast(
            origin, "ydoc:document:update", payload, update, yprotocol.encode_sync_update
        )

    async def _broadcast(
        self,
        origin: str | None,
        event: str,
        payload: dict,
        data: bytes,
        encode_binary: Callable[[bytes], bytes],
    ) -> None:
        """Write ``data`` to every local editor except ``origin``: Socket.IO editors get event
        ``event`` with ``payload`` (whose ``"update"`` becomes the int list of ``data``),
        y-websocket editors get ``encode_binary(data)``. Each frame is built once, lazily."""
        frames: dict[str, str | bytes] = {}
        for client in tuple(self.clients.values()):
            if client.key == origin:
                continue
            frame = frames.get(client.kind)
            if frame is None:
                if client.kind == SIO:
                    frame = push.event_frame(event, {**payload, "update": list(data)})
                else:
                    frame = encode_binary(data)
                frames[client.kind] = frame
            await client.send(frame)

    # --- awareness --------------------------------------------------------------------------

    async def apply_awareness(
        self, update: bytes, origin: str | None, user_id: str | None, publish: bool = True
    ) -> None:
        """Track and relay an awareness update (never stored)."""
        if len(update) > realtime_settings.DOC_MAX_AWARENESS_BYTES:
            raise DocError("too_large", "The awareness update is larger than allowed.")
        try:
            entries = yprotocol.decode_awareness_update(update)
        except DecodeError:
            raise DocError("bad_request", "Not a valid awareness update.") from None
        sender = self.clients.get(origin) if origin else None
        for client_id, clock, state in entries:
            known = self.awareness.get(client_id)
            if known is not None and known[0] > clock:
                continue
            if state == "null":
                self.awareness.pop(client_id, None)
            else:
                self.awareness[client_id] = (clock, state)
            if sender is not None:
                sender.awareness_ids.add(client_id)
        payload = {"document_id": self.document_id, "user_id": user_id}
        await self._broadcast(
            origin, "ydoc:awareness:update", payload, update, yprotocol.encode_awareness
        )
        if publish:
            await get_hub().publish_to_peers(
                self.group,
                {
                    "type": "chorus.doc",
                    "kind": "awareness",
                    "payload": update,
                    "origin": get_hub().token,
                    "sid": origin,
                    "user_id": user_id,
                    "note_id": self.note_id,
                },
            )

    def awareness_update(self) -> bytes | None:
        """Every known awareness state as one update (None when there is none)."""
        if not self.awareness:
            return None
        entries = [(cid, clock, state) for cid, (clock, state) in self.awareness.items()]
        return yprotocol.encode_awareness_update(entries)

    async def forget_awareness(self, client: DocClient) -> None:
        """Broadcast a null state for each awareness client id ``client`` owned."""
        entries = [
            (cid, self.awareness[cid][0] + 1, "null")
            for cid in client.awareness_ids
            if cid in self.awareness
        ]
        if entries:
            await self.apply_awareness(
                yprotocol.encode_awareness_update(entries), client.key, client.user_id
            )

    # --- store ------------------------------------------------------------------------------

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def schedule_save(self, delay: float | None = None) -> None:
        now = time.monotonic()
        if self.dirty_since is None:
            self.dirty_since = now
        if delay is None:
            ceiling = self.dirty_since + realtime_settings.DOC_SAVE_MAX_WAIT - now
            delay = max(0.0, min(realtime_settings.DOC_SAVE_DEBOUNCE, ceiling))
        if self._save_timer is not None:
            self._save_timer.cancel()
        self._save_timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self.save())
        )

    @property
    def dirty(self) -> bool:
        return self.dirty_since is not None

    async def save(self) -> bool:
        """Merge the server state into the stored one. False if it failed (kept dirty)."""
        from notes.models import Note
        from notes.yjs import merge_save

        async with self._save_lock:
            if not self.dirty:
                return True
            if self._save_timer is not None:
                self._save_timer.cancel()
                self._save_timer = None
            state, content = self.doc.get_update(), self.content
            dirty_since, self.dirty_since, self.content = self.dirty_since, None, None
            try:
                merged = await orm(merge_save)(self.note_id, state, content)
            except Note.DoesNotExist:
                logger.warning(
                    "Note %s was deleted while open; its edits are dropped", self.note_id
                )
                return True
            except Exception:
                logger.exception(
                    "Saving note %s failed; retrying in %.1fs", self.note_id, self._retry_delay
                )
                self.dirty_since = dirty_since
                if content is not None and self.content is None:
                    self.content = content
                self.schedule_save(self._retry_delay)
                self._retry_delay = min(self._retry_delay * 2, 30.0)
                return False
            self._retry_delay = 0.5
            self.saves += 1
            self.size = len(merged)
        await self._absorb(merged)
        if self.on_saved is not None:
            await self.on_saved(self)
        return True

    async def _absorb(self, stored: bytes) -> None:
        """Apply the items the stored state holds and the server Doc lacks (e.g. from a
        crashed instance's earlier save) and relay them to the local editors. Compared by
        state vector: a stored deletion alone reaches editors when the document reloads."""
        mirror = Doc()
        mirror.apply_update(stored)
        ours = yprotocol.decode_state_vector(self.doc.get_state())
        theirs = yprotocol.decode_state_vector(mirror.get_state())
        if all(ours.get(client, 0) >= clock for client, clock in theirs.items()):
            return
        missing = mirror.get_update(self.doc.get_state())
        self.doc.apply_update(missing)
        await self.relay_update(missing, None, None)

    async def recheck_access(self) -> None:
        """Re-read every local editor's access: write may become read (updates refused from
        then on); an editor with no read access left is revoked."""
        access = await orm(_access_by_user)(
            self.note_id, {client.user_id for client in self.clients.values()}
        )
        for client in tuple(self.clients.values()):
            level = access.get(client.user_id)
            client.writable = level == "write"
            if level is None and client.revoke is not None:
                await client.revoke()

    def state_payload(self, sessions: list[str]) -> dict:
        return {
            "document_id": self.document_id,
            "state": list(self.doc.get_update()),
            "sessions": sessions,
        }


def _access_by_user(note_id: str, user_ids: set[str]) -> dict[str, str | None]:
    """``{user id: "write" | "read" | None}`` for one note (None for all if it is gone)."""
    from accounts.models import User
    from notes.models import Note

    note = Note.objects.filter(pk=note_id).first()
    if note is None:
        return {}
    return {str(user.pk): note.access_for(user) for user in User.objects.filter(pk__in=user_ids)}


class DocumentManager:
    """The open documents of one process (one event loop)."""

    def __init__(self) -> None:
        self.rooms: dict[str, DocumentRoom] = {}
        self._loading: dict[str, asyncio.Future] = {}

    async def open(self, note_id: uuid.UUID | str) -> DocumentRoom:
        """The room of ``note_id``, loading it once however many callers wait."""
        key = str(note_id)
        room = self.rooms.get(key)
        if room is not None:
            return room
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            room = await self._load(key)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            self.rooms[key] = room
            future.set_result(room)
        finally:
            self._loading.pop(key, None)
        await self._request_sync(room)
        return room

    async def _request_sync(self, room: DocumentRoom) -> None:
        """Ask the instances that have the document open for what they hold beyond the stored
        state (edits inside their save debounce). They answer this hub's channel directly
        with an ordinary update, which reaches the local editors as a relay."""
        hub = get_hub()
        if hub.single_process:
            return  # no other instance can hold the document
        await hub.publish(
            room.group,
            {
                "type": "chorus.doc",
                "kind": "sync",
                "payload": room.doc.get_state(),
                "origin": hub.token,
                "reply_to": hub.channel_name,
                "note_id": room.note_id,
            },
        )

    async def _load(self, note_id: str) -> DocumentRoom:
        from notes.models import Note
        from notes.yjs import load_state

        try:
            state = await orm(load_state)(note_id)
        except Note.DoesNotExist:
            raise DocError("not_found", "No such note.") from None
        try:
            room = DocumentRoom(note_id, state)
        except ValueError:
            # Never build (and so never save) a document over a state we could not read.
            logger.error("Note %s: the stored Yjs state cannot be read; left untouched", note_id)
            raise DocError("internal_error", "The stored document cannot be read.") from None
        room.on_saved = self._unload_if_idle
        await get_hub().pin(room.group)
        return room

    async def leave(self, room: DocumentRoom, client: DocClient) -> None:
        """Remove ``client``; flush and unload the room when no local editor remains."""
        if room.clients.pop(client.key, None) is None:
            return
        await room.forget_awareness(client)
        if not room.clients:
            await room.save()  # unloads through on_saved when it succeeds
            await self._unload_if_idle(room)

    async def _unload_if_idle(self, room: DocumentRoom) -> None:
        """Drop ``room`` from memory if, now, it has no editor and nothing unsaved."""
        if not room.clients and not room.dirty and self.rooms.get(room.note_id) is room:
            del self.rooms[room.note_id]
            get_hub().unpin(room.group)

    async def on_layer_message(self, message: dict) -> None:
        """A ``chorus.doc`` message from another instance (or the server's REST code)."""
        room = self.rooms.get(message.get("note_id", ""))
        if room is None:
            return  # not open here; the database already has (or will merge) the change
        try:
            if message["kind"] == "update":
                await room.apply(
                    message["payload"], message.get("sid"), message.get("user_id"), publish=False
                )
            elif message["kind"] == "awareness":
                await room.apply_awareness(
                    message["payload"], message.get("sid"), message.get("user_id"), publish=False
                )
            elif message["kind"] == "sync":
                await self._answer_sync(room, message)
            elif message["kind"] == "access":
                await room.recheck_access()
        except DocError as error:
            logger.warning(
                "Dropped a relayed %s for note %s: %s", message["kind"], room.note_id, error.message
            )

    async def _answer_sync(self, room: DocumentRoom, message: dict) -> None:
        """Send the asking instance what its freshly loaded document lacks."""
        missing = room.doc.get_update(message["payload"])
        if missing == EMPTY_UPDATE or not message.get("reply_to"):
            return
        hub = get_hub()
        await hub.layer.send(
            message["reply_to"],
            {
                "type": "chorus.doc",
                "kind": "update",
                "payload": missing,
                "origin": hub.token,
                "sid": None,
                "user_id": None,
                "note_id": room.note_id,
                "room": room.group,
            },
        )

    async def flush_all(self) -> int:
        """Save every dirty document now (graceful shutdown); returns how many failed."""
        results = [await room.save() for room in list(self.rooms.values()) if room.dirty]
        return results.count(False)


_managers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_manager() -> DocumentManager:
    loop = asyncio.get_running_loop()
    manager = _managers.get(loop)
    if manager is None:
        manager = _managers[loop] = DocumentManager()
        get_hub().on_message("chorus.doc", manager.on_layer_message)
    return manager

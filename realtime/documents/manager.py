"""``DocumentManager``: the open documents of one process (one per event loop) — the load
and unload steps of the lifecycle (``realtime/documents/__init__.py``), the one load many
joiners share, the sync with other instances after a load, and the hub messages that carry
document updates and awareness between instances. Module map: docs/realtime.md."""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref

from pycrdt import get_update

from realtime import metrics
from realtime.documents import store
from realtime.documents.room import EMPTY_UPDATE, DocClient, DocError, DocumentRoom
from realtime.hub import Connection, get_hub
from realtime.sessions import get_registry

logger = logging.getLogger("chorus.realtime.documents")


class DocumentManager:
    """The open documents of one process (one event loop)."""

    def __init__(self) -> None:
        self.rooms: dict[str, DocumentRoom] = {}
        self._loading: dict[str, asyncio.Future] = {}
        metrics.watch_documents(self, lambda manager: len(manager.rooms))

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
        try:
            loaded = await store.load(note_id)
        except store.NoteDeleted:
            raise DocError("not_found", "No such note.") from None
        try:
            room = DocumentRoom(note_id, loaded.state)
        except ValueError:
            # Never build (and so never save) a document over a state we could not read.
            logger.error("Note %s: the stored Yjs state cannot be read; left untouched", note_id)
            raise DocError("internal_error", "The stored document cannot be read.") from None
        # What was read is in the Doc: a first save on one process needs no merge either
        # (every room opens with a save due within DOC_SAVE_MAX_WAIT: a merge each, for many
        # rooms loaded at once, stalled the event loop in a burst).
        room.stored_as(loaded.digest, loaded.upto)
        room.on_saved = self._unload_if_idle
        await get_hub().pin(room.group)
        return room

    # --- membership: the one place an editor enters and leaves a document ------------------
    #
    # ``room.clients`` is the membership. Entering also puts the connection in the document's
    # hub room (Socket.IO broadcasts to the room, kicks) and its registry group (the
    # ``sessions`` every instance lists, which the keeper refreshes from the hub rooms);
    # leaving undoes all three, the local room first.

    async def join(self, room: DocumentRoom, client: DocClient, conn: Connection) -> None:
        """Add ``client`` (``conn``'s editor) to ``room``: its editors, its hub room, its
        registry group."""
        room.clients[client.key] = client
        await get_hub().join(conn, room.group)
        await get_registry().join_group(room.group, [conn.sid])

    def member(self, note_id: str, key: str) -> DocumentRoom | None:
        """The open room of ``note_id`` if ``key`` is one of its editors here."""
        room = self.rooms.get(note_id)
        return room if room is not None and key in room.clients else None

    async def leave_room(self, room: DocumentRoom, client: DocClient, conn: Connection) -> None:
        """Take ``client`` out of ``room`` (the reverse of ``join``): the room first (flushed
        and unloaded when it was the last local editor), then the hub room and the registry
        group — whatever fails, the connection leaves the group (else it expires with
        ``SESSION_TTL``)."""
        get_hub().leave(conn, room.group)
        try:
            await self.leave(room, client)
        finally:
            try:
                await get_registry().leave_group(room.group, conn.sid)
            except Exception:
                logger.exception("Note %s: leaving the sessions group failed", room.note_id)

    async def leave(self, room: DocumentRoom, client: DocClient) -> None:
        """Remove ``client``; flush and unload the room when no local editor remains."""
        if room.clients.pop(client.key, None) is None:
            return
        try:
            await room.forget_awareness(client)
        except Exception:  # never keep the room from being flushed and unloaded
            logger.exception("Note %s: clearing a leaving editor's awareness failed", room.note_id)
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
            elif message["kind"] == "catch_up":
                await room.catch_up_stored()
        except store.NoteDeleted:
            return
        except DocError as error:
            logger.warning(
                "Dropped a relayed %s for note %s: %s", message["kind"], room.note_id, error.message
            )

    async def _answer_sync(self, room: DocumentRoom, message: dict) -> None:
        """Send the asking instance what its freshly loaded document lacks."""
        missing = get_update(await room.durable_state(), message["payload"])
        if missing == EMPTY_UPDATE or not message.get("reply_to"):
            return
        hub = get_hub()
        await hub.reply(
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

    async def after_layer_failure(self) -> None:
        """The hub's heal hook: every open document takes in the stored edits it lacks
        (their relay may have been lost with Redis), and asks the other instances that have
        it open to do the same (this one's relays may have been lost)."""
        hub = get_hub()
        for room in tuple(self.rooms.values()):
            try:
                await room.catch_up_stored()
            except store.NoteDeleted:
                continue  # its editors are told when they next act; nothing to catch up
            message = {"type": "chorus.doc", "kind": "catch_up", "origin": hub.token}
            await hub.publish(room.group, {**message, "note_id": room.note_id})

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
        get_hub().on_layer_healed(manager.after_layer_failure)
    return manager

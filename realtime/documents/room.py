"""``DocumentRoom``: one open note's pycrdt ``Doc`` on this process, its local editors (both
endpoints), their awareness, and its change and store steps (``apply``, ``save``); the
lifecycle is described in ``realtime/documents/__init__.py``, the storage calls are
``realtime.documents.store``. Architecture: docs/realtime.md, *A document update, hop by hop*.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from pycrdt import Doc, XmlFragment, get_update, merge_updates

from lib import json_safety
from realtime import metrics, rooms
from realtime.access import access_by_user
from realtime.conf import realtime_settings
from realtime.documents import store
from realtime.hub import Coalesce, get_hub
from realtime.protocol import jsonawareness, socketio, yprotocol
from realtime.protocol.errors import DecodeError
from realtime.protocol.frames import event_frame
from realtime.protocol.wsframe import SharedFrame

logger = logging.getLogger("chorus.realtime.documents")


#: Which endpoint a client came through (``DocClient.kind``).
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


def _unintegrated(update: bytes, state: bytes, vector: dict[int, int]) -> bool:
    """Whether a Doc whose state is ``state`` (decoded: ``vector``) lacks part of ``update``."""
    return yprotocol.unintegrated(get_update(update, state), vector)


def _is_json(text: str) -> bool:
    """Whether an awareness state parses as JSON (stock clients ``JSON.parse`` every state
    they receive: one that does not parse would break them)."""
    try:
        json_safety.loads(text)
    except ValueError:
        return False
    return True


def _merged(updates: list[bytes]) -> bytes:
    """Several updates as one (one as itself)."""
    return updates[0] if len(updates) == 1 else merge_updates(*updates)


def _merge_updates(messages: list[dict]) -> dict:
    """Peer update messages of one editor as one message carrying their merged update."""
    return {**messages[-1], "payload": merge_updates(*(m["payload"] for m in messages))}


@dataclass(slots=True)
class Aware:
    """One awareness client id's state in a room: the y-protocols clock, the state JSON and its
    size in bytes, the connection that introduced the id (its owner: user and client key) and
    when it was last set (``time.monotonic``)."""

    clock: int
    state: str
    size: int
    user_id: str | None
    owner: str | None
    seen: float


#: y-protocols' ``outdatedTimeout``: clients renew their state every 15 s and drop states not
#: renewed for 30 s; the server drops them too (a peer instance that died leaves none behind).
AWARENESS_TIMEOUT = 30.0


@dataclass(eq=False)
class DocClient:
    """One local editor: a Socket.IO socket (``sio``) or a y-websocket connection (``yws``).

    ``deliver`` takes a frame built once for every client of its kind (a text frame for sio,
    binary for yws: ``SharedFrame``), never waits and never raises; ``revoke`` ends
    the client's editing when its read access is gone (see ``DocumentRoom.recheck_access``).
    ``awareness_json``: a Socket.IO client gets awareness in Open WebUI's JSON form
    (``realtime.protocol.jsonawareness``) rather than as y-protocols bytes; y-websocket
    clients always get y-protocols.
    """

    key: str
    kind: str
    user_id: str
    user_name: str
    writable: bool
    deliver: Callable[[SharedFrame], None]
    revoke: Callable[[], Awaitable[None]] | None = None
    awareness_json: bool = False
    #: The server's state when this client was last asked for changes the server lacks
    #: (``DocumentRoom.should_ask``).
    asked_at: bytes | None = None


class DocumentRoom:
    def __init__(self, note_id: str, state: bytes) -> None:
        self.note_id = note_id
        self.document_id = f"note:{note_id}"
        self.group = rooms.doc_room(note_id)
        self.doc: Doc[XmlFragment] = Doc()
        self.doc.apply_update(state)
        #: What ``apply`` changed in the Doc (pycrdt's per-transaction updates, captured only
        #: while ``apply`` applies): the update log gets exactly what the Doc integrated.
        self._changes: list[bytes] = []
        self._capturing = False
        self._transactions = self.doc.observe(self._on_transaction)  # kept: see _watch_content
        #: Whether the ``prosemirror`` fragment changed since its content was last rendered
        #: (a save renders only then; the first save of a loaded room always does).
        self.content_changed = True
        self._watch_content()
        #: The newest update-log write (``durable_state`` waits for it).
        self._last_write: asyncio.Future | None = None
        #: Changes in the Doc whose log write failed: never acknowledged nor relayed; written
        #: with the next log write (or stored by the next save), then relayed (``_log``).
        self._unlogged: list[bytes] = []
        #: The highest update-log row id ``catch_up`` has taken in.
        self._log_seen = 0
        #: The highest update-log row id the Doc is known to hold (read at load, or reached
        #: by this room's own writes), and the digest of the stored state it holds (loaded,
        #: or stored by its last save): a single process's save stores the Doc's state
        #: without merging (``notes.yjs.save_state``).
        self._logged_upto = 0
        self._stored_digest: str | None = None
        self.clients: dict[str, DocClient] = {}
        self.awareness: dict[int, Aware] = {}
        #: Bytes of the states in ``awareness`` (bounded by AWARENESS_MAX_DOCUMENT_BYTES), and
        #: how many ids each owner holds (bounded by AWARENESS_MAX_IDS_PER_CONNECTION).
        self.awareness_bytes = 0
        self._owned: collections.Counter[str | None] = collections.Counter()
        self.dirty_since: float | None = None
        self.size = len(state)
        #: Updates given to the Doc that it could not integrate yet, and their bytes (``_park``).
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        #: The Doc's state when ``pending`` was last checked (rechecked once it moved on).
        self._pending_checked_at = b""
        #: The last state sent and its JSON int list (``state_payload``).
        self._state_json: tuple[bytes, str] | None = None
        self._save_timer: asyncio.TimerHandle | None = None
        self._save_lock = asyncio.Lock()
        self._retry_delay = 0.5
        self._tasks: set[asyncio.Task] = set()
        self.saves = 0
        #: Called after a successful save (the manager unloads an idle room then).
        self.on_saved: Callable[[DocumentRoom], Awaitable[None]] | None = None

    # --- change -----------------------------------------------------------------------------

    def check_update_size(self, update: bytes, whole: bool = False) -> None:
        """Refuse (``too_large``) an update over ``DOC_MAX_UPDATE_BYTES`` — unless ``whole``:
        a sync (everything a client holds that the server lacks) or an update another
        instance already accepted — or one that would take the document past
        ``DOC_MAX_BYTES``."""
        if not whole and len(update) > realtime_settings.DOC_MAX_UPDATE_BYTES:
            raise DocError("too_large", "The update is larger than DOC_MAX_UPDATE_BYTES.")
        limit = realtime_settings.DOC_MAX_BYTES
        if self.size + self.pending_bytes + len(update) > limit:
            self.size = len(self.doc.get_update())  # the estimate only grows; re-measure
            if self.size + self.pending_bytes + len(update) > limit:
                raise DocError(
                    "too_large",
                    "The document would exceed DOC_MAX_BYTES (updates still waiting for the"
                    " changes they build on count).",
                )

    def _watch_content(self) -> None:
        """Note every change of the ``prosemirror`` fragment (``content_changed``). A root of
        that name that is not an XML fragment (a client made it something else) cannot be
        watched: then every save renders."""
        try:
            fragment = self.doc.get(store.FRAGMENT, type=XmlFragment)
            # The fragment and its subscription are kept: a dropped one stops observing.
            self._content_watch = (fragment, fragment.observe_deep(self._on_content_change))
        except Exception:
            self._content_watched = False
        else:
            self._content_watched = True

    def _on_content_change(self, events) -> None:
        self.content_changed = True

    def _on_transaction(self, event) -> None:
        if self._capturing:
            self._changes.append(event.update)

    async def apply(
        self,
        update: bytes,
        origin: str | None,
        user_id: str | None,
        publish: bool = True,
        whole: bool = False,
    ) -> bool:
        """Apply ``update`` to the server Doc, store what it changed in the update log
        (durable before this returns, and before anything is relayed or published), relay
        it, publish it (unless it came from another instance: ``publish=False``, already
        logged there), schedule a save. ``whole``: see ``check_update_size``.

        Returns False when the document could not integrate all of it yet (it builds on
        changes the server has not seen: see ``_park``); what did integrate is logged and
        relayed. Raises ``DocError``: ``not_found`` (the note was deleted), ``internal_error``
        (the log write failed: nothing relayed; the change stays in memory and is stored by
        the next save)."""
        self.check_update_size(update, whole=whole or not publish)
        waiting = bool(self.pending)
        self._capturing = True
        try:
            yprotocol.check_update(update)
            self.doc.apply_update(update)
        except ValueError:  # DecodeError included
            raise DocError("bad_request", "The update is not a valid Yjs update.") from None
        finally:
            self._capturing = False
            changes, self._changes = self._changes, []
        if update == EMPTY_UPDATE:
            return True  # e.g. a y-websocket client's first sync reply: nothing to relay or save
        integrated = self._park(update)
        if integrated:
            self.size += len(update)
        self.schedule_save()
        if changes and publish:
            await self._log(_merged(changes))
        elif changes and waiting:
            # Another instance's update (logged there) may have let updates parked here
            # integrate: what they added is logged here, or nobody logs it.
            await self._log_quietly(_merged(changes))
        await self.relay_update(update, origin, user_id)
        if publish:
            await self._publish(
                "update",
                update,
                origin,
                user_id,
                # One editor's updates still waiting for the layer go out as one merged
                # update: the layer's cost per message, not the editors, bounds the rate.
                # Only updates this Doc integrated: merging one that follows a gap in its
                # client's clocks (``merge_updates``) loses it.
                Coalesce(("update", origin, user_id), _merge_updates) if integrated else None,
            )
        return integrated

    async def _publish(
        self,
        kind: str,
        payload: bytes,
        origin: str | None,
        user_id: str | None,
        coalesce: Coalesce | None = None,
    ) -> None:
        """Queue a ``chorus.doc`` message of ``kind`` ("update", "awareness") for the other
        instances."""
        await get_hub().publish_to_peers(
            self.group,
            {
                "type": "chorus.doc",
                "kind": kind,
                "payload": payload,
                "origin": get_hub().token,
                "sid": origin,
                "user_id": user_id,
                "note_id": self.note_id,
            },
            coalesce=coalesce,
        )

    def should_ask(self, client: DocClient) -> bool:
        """Whether to ask ``client`` (which just sent an update the server could not
        integrate) for the changes the server lacks: once per state of the server's
        document. An answer that does not fill the gap either (it builds on changes nobody
        sent) leaves the state as it was, so it is not asked again: no loop."""
        state = self.doc.get_state()
        if client.asked_at == state:
            return False
        client.asked_at = state
        return True

    async def _log(self, change: bytes) -> None:
        """Store ``change`` in the note's update log (group-committed with every update
        waiting on this process); returns once it is durable.

        Changes whose write failed earlier (``_unlogged``) go in the same write: no later
        change is acknowledged before them (it may build on them). Once they are durable
        they are relayed and published, as they were not then. A failed write keeps
        ``change`` in ``_unlogged`` and raises ``DocError`` (``internal_error``;
        ``not_found`` for a deleted note)."""
        earlier = self._unlogged
        started = time.perf_counter()
        write = asyncio.ensure_future(store.append((self.note_id, _merged([*earlier, change]))))
        self._last_write = write
        try:
            self._logged_upto = max(self._logged_upto, await asyncio.shield(write))
            metrics.UPDATE_LOG_SECONDS.observe(time.perf_counter() - started)
        except Exception as error:
            if isinstance(error, store.NoteDeleted):
                raise DocError("not_found", "No such note.") from None
            logger.exception("Note %s: an update could not be stored in the log", self.note_id)
            self._unlogged = [_merged([*earlier, change])]
            raise DocError(
                "internal_error", "The update could not be stored; it was not accepted."
            ) from None
        if earlier and self._unlogged is earlier:
            self._unlogged = []
            await self._announce(_merged(earlier))

    async def _log_quietly(self, change: bytes) -> None:
        """``_log`` for a change nobody waits on: a failure is logged and kept for later."""
        with contextlib.suppress(DocError):
            await self._log(change)

    async def _announce(self, change: bytes) -> None:
        """Relay and publish a server-made change (durable by now) to every editor."""
        await self.relay_update(change, None, None)
        await self._publish("update", change, None, None)

    async def durable_state(self) -> bytes:
        """The whole document as a state to send (a join, a sync reply): taken after
        ``catch_up`` (what other instances logged and this Doc lacks), and returned once
        every update applied before it was taken is in the update log (writes complete in
        order) — it holds every acknowledged edit and nothing that is not durable (but a
        change whose write failed: ``_unlogged``). Edits keep flowing meanwhile: it waits for
        one write at most, never for the document to go quiet."""
        await self.catch_up()
        state = self.doc.get_update()
        write = self._last_write
        if write is not None and not write.done():
            await asyncio.wait([write])
        return state

    def _park(self, update: bytes) -> bool:
        """Account for what the Doc could not integrate of an update it was just given.

        Yjs keeps structs whose predecessors it has not seen, and deletions of items it does
        not have, as *pending*: outside the document state, never saved, integrated if the
        missing changes arrive. Pending updates are kept in ``pending``; their bytes count
        against ``DOC_MAX_BYTES`` (``check_update_size``) until they integrate, and at most
        ``DOC_MAX_PENDING_UPDATES`` wait: one more is refused (``too_large``) and the Doc is
        rebuilt from its state, without any of them (they could only integrate if what they
        build on arrived; a client that has it resyncs). So no client can grow the server's
        memory, or the work each later update costs, with updates that never integrate.
        Returns whether ``update`` integrated entirely."""
        state = self.doc.get_state()
        leftover = get_update(update, state)
        if leftover == EMPTY_UPDATE and not self.pending:
            return True  # the usual case: integrated, and nothing was waiting
        vector = yprotocol.decode_state_vector(state)
        if self.pending and state != self._pending_checked_at:  # the Doc moved on: recheck
            waiting = [p for p in self.pending if _unintegrated(p, state, vector)]
            self.size += self.pending_bytes - sum(map(len, waiting))
            self.pending = waiting
            self.pending_bytes = sum(map(len, waiting))
            self._pending_checked_at = state
        if not yprotocol.unintegrated(leftover, vector):
            return True
        if update in self.pending:
            return False  # the same update again (e.g. a client's repeated answer): kept once
        if len(self.pending) >= realtime_settings.DOC_MAX_PENDING_UPDATES:
            self._drop_pending()
            raise DocError(
                "too_large",
                "Too many updates wait for changes the server lacks (DOC_MAX_PENDING_UPDATES).",
            )
        self.pending.append(update)
        self.pending_bytes += len(update)
        logger.info(
            "Note %s: an update builds on changes the server lacks (%d wait, %d bytes)",
            self.note_id,
            len(self.pending),
            self.pending_bytes,
        )
        return False

    def _drop_pending(self) -> None:
        """Rebuild the Doc from its integrated state: every pending update is gone."""
        logger.warning(
            "Note %s: %d updates waited for changes the server lacks; dropped",
            self.note_id,
            len(self.pending),
        )
        rebuilt: Doc[XmlFragment] = Doc()
        rebuilt.apply_update(self.doc.get_update())
        self._transactions = rebuilt.observe(self._on_transaction)
        self.doc = rebuilt
        self.content_changed = True
        self._watch_content()
        self.pending, self.pending_bytes, self._pending_checked_at = [], 0, b""

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
        y-websocket editors get ``encode_binary(data)``. Each frame is built once, lazily, and
        framed once for all (``SharedFrame``), as the hub's broadcasts are."""
        frames: dict[str, SharedFrame] = {}
        delivered = 0
        for client in tuple(self.clients.values()):
            if client.key == origin:
                continue
            frame = frames.get(client.kind)
            if frame is None:
                if client.kind == SIO:
                    frame = SharedFrame(event_frame(event, {**payload, "update": list(data)}))
                    metrics.event_sent(event)
                else:
                    frame = SharedFrame(encode_binary(data))
                frames[client.kind] = frame
            client.deliver(frame)
            delivered += 1
        if delivered:
            metrics.DELIVERIES.inc(delivered)

    # --- awareness --------------------------------------------------------------------------

    async def apply_awareness(
        self, update: bytes, origin: str | None, user_id: str | None, publish: bool = True
    ) -> None:
        """Track and relay a y-protocols awareness update (never stored).

        Ownership: a client id belongs to the connection (``origin``) that introduced it; only
        that connection may set or clear it (another connection of the same user takes it
        over: a reconnect). Entries for ids owned by another user, entries beyond
        ``AWARENESS_MAX_IDS_PER_CONNECTION`` ids for the connection, states over
        ``AWARENESS_MAX_STATE_BYTES`` or that would take the document's states past
        ``AWARENESS_MAX_DOCUMENT_BYTES``, states that are not JSON, and stale clocks are
        dropped; what is left is relayed (re-encoded, in each client's form) and published.
        A message that does not decode is refused (``bad_request``)."""
        self._check_awareness_size(update)
        try:
            entries = yprotocol.decode_awareness_update(update)
        except DecodeError:
            raise DocError("bad_request", "Not a valid awareness update.") from None
        await self._accept_awareness(entries, origin, user_id, publish)

    async def apply_json_awareness(
        self, update: bytes, origin: str | None, user_id: str | None
    ) -> None:
        """Track and relay an awareness update in Open WebUI's JSON form
        (``realtime.protocol.jsonawareness``) under the rules of ``apply_awareness``. The
        form has no clocks: the server gives each entry ``max(last clock + 1, milliseconds since the
        epoch)``, so that y-protocols peers, which keep the last clock of a client id even
        after its state is gone, take every new state as newer. Once accepted the entries are
        y-protocols entries like any other (peers on other instances get them so)."""
        self._check_awareness_size(update)
        try:
            states = jsonawareness.decode(update)
        except DecodeError:
            raise DocError("bad_request", "Not a valid awareness update.") from None
        now = int(time.time() * 1000)
        entries = []
        for client_id, state in states:
            known = self.awareness.get(client_id)
            entries.append((client_id, max(known.clock + 1 if known else 1, now), state))
        await self._accept_awareness(entries, origin, user_id, publish=True)

    @staticmethod
    def _check_awareness_size(update: bytes) -> None:
        if len(update) > realtime_settings.DOC_MAX_AWARENESS_BYTES:
            raise DocError("too_large", "The awareness update is larger than allowed.")

    async def _accept_awareness(
        self,
        entries: list[tuple[int, int, str]],
        origin: str | None,
        user_id: str | None,
        publish: bool,
    ) -> None:
        """Keep the entries the rules allow; relay them to the local editors and publish."""
        accepted = [e for e in entries if self._take_awareness(e, origin, user_id)]
        if not accepted:
            return
        update = yprotocol.encode_awareness_update(accepted)
        await self._relay_awareness(origin, user_id, accepted, update)
        if publish:
            await self._publish("awareness", update, origin, user_id)

    async def _relay_awareness(
        self,
        origin: str | None,
        user_id: str | None,
        entries: list[tuple[int, int, str]],
        update: bytes,
    ) -> None:
        """Send accepted entries to every local editor except ``origin``, each in its form:
        y-websocket the awareness message of ``update``, Socket.IO ``ydoc:awareness:update``
        with ``update`` as y-protocols bytes or as Open WebUI's JSON (``awareness_json``).
        Each frame is built once, lazily, and framed once for all (``SharedFrame``)."""
        frames: dict[str, SharedFrame] = {}
        for client in tuple(self.clients.values()):
            if client.key == origin:
                continue
            form = YWS if client.kind == YWS else "json" if client.awareness_json else "yjs"
            frame = frames.get(form)
            if frame is None:
                if form == YWS:
                    frame = SharedFrame(yprotocol.encode_awareness(update))
                else:
                    frame = SharedFrame(
                        self.awareness_frame(entries, user_id, as_json=form == "json")
                    )
                frames[form] = frame
            client.deliver(frame)

    def awareness_frame(
        self, entries: list[tuple[int, int, str]], user_id: str | None, as_json: bool
    ) -> str:
        """The ``ydoc:awareness:update`` event frame of ``entries``: ``update`` holds them as
        a y-protocols awareness update, or in Open WebUI's JSON form when ``as_json``."""
        if as_json:
            data = jsonawareness.encode([(cid, state) for cid, _, state in entries])
        else:
            data = yprotocol.encode_awareness_update(entries)
        payload = {"document_id": self.document_id, "user_id": user_id, "update": list(data)}
        return event_frame("ydoc:awareness:update", payload)

    def _take_awareness(
        self, entry: tuple[int, int, str], origin: str | None, user_id: str | None
    ) -> bool:
        """Apply one awareness entry under the ownership and size rules; False: dropped."""
        client_id, clock, state = entry
        if clock >= yprotocol.MAX_VAR_UINT:
            return False  # no later clock could be encoded (a leaving client's null is clock + 1)
        known = self.awareness.get(client_id)
        cap = realtime_settings.AWARENESS_MAX_IDS_PER_CONNECTION
        if known is not None:
            if known.user_id != user_id or known.clock > clock:
                return False  # another user's id, or an older state than the one we have
            if known.owner != origin and state != "null" and self._owned[origin] >= cap:
                return False  # taking an id over counts against the new owner's ids too
        elif state == "null":
            return False  # nothing to clear
        elif self._owned[origin] >= cap:
            return False
        if state == "null":
            self._forget(client_id)
            return True
        size = len(state.encode())
        if size > realtime_settings.AWARENESS_MAX_STATE_BYTES or not _is_json(state):
            return False
        before = known.size if known is not None else 0
        if self.awareness_bytes - before + size > realtime_settings.AWARENESS_MAX_DOCUMENT_BYTES:
            return False
        self._forget(client_id)
        self.awareness[client_id] = Aware(clock, state, size, user_id, origin, time.monotonic())
        self.awareness_bytes += size
        self._owned[origin] += 1
        return True

    def _forget(self, client_id: int) -> None:
        """Drop one awareness entry (if known), keeping the byte and owner counts."""
        aware = self.awareness.pop(client_id, None)
        if aware is not None:
            self.awareness_bytes -= aware.size
            self._owned[aware.owner] -= 1
            if not self._owned[aware.owner]:
                del self._owned[aware.owner]

    def awareness_entries(self) -> list[tuple[int, int, str]]:
        """Every live awareness state as ``(client id, clock, state)``; states not renewed
        within ``AWARENESS_TIMEOUT`` are forgotten first."""
        cutoff = time.monotonic() - AWARENESS_TIMEOUT
        for client_id in [cid for cid, a in self.awareness.items() if a.seen < cutoff]:
            self._forget(client_id)
        return [(cid, a.clock, a.state) for cid, a in self.awareness.items()]

    def awareness_update(self) -> bytes | None:
        """Every live awareness state as one y-protocols update (None when there is none)."""
        entries = self.awareness_entries()
        return yprotocol.encode_awareness_update(entries) if entries else None

    async def forget_awareness(self, client: DocClient) -> None:
        """Broadcast a null state for each awareness client id ``client`` owned."""
        entries = [
            (cid, aware.clock + 1, "null")
            for cid, aware in self.awareness.items()
            if aware.owner == client.key
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

    def stored_as(self, digest: str, upto: int) -> None:
        """The Doc holds the stored state with ``digest`` and the update-log rows up to
        ``upto`` (what the load read): ``save`` may promise that (``notes.yjs.save_state``)."""
        self._stored_digest = digest
        self._logged_upto = max(self._logged_upto, upto)

    @property
    def dirty(self) -> bool:
        return self.dirty_since is not None

    async def save(self) -> bool:
        """Merge the server state into the stored one. False if it failed (kept dirty)."""
        async with self._save_lock:
            if not self.dirty:
                return True
            if self._save_timer is not None:
                self._save_timer.cancel()
                self._save_timer = None
            state, unlogged = self.doc.get_update(), self._unlogged
            # One process wrote every log row and holds what it last stored: no merge (a
            # decode and encode of the whole document under the GIL) while that still holds.
            known = self._stored_digest if get_hub().single_process else None
            upto = self._logged_upto
            render = self.content_changed or not self._content_watched
            self.content_changed = False  # changes from now on render with the next save
            dirty_since, self.dirty_since = self.dirty_since, None
            started = time.perf_counter()
            try:
                saved = await store.save(self.note_id, state, known, upto)
            except store.NoteDeleted:
                logger.warning(
                    "Note %s was deleted while open; its edits are dropped", self.note_id
                )
                return True
            except Exception:
                metrics.DOCUMENT_SAVE_FAILURES.inc()
                logger.exception(
                    "Saving note %s failed; retrying in %.1fs", self.note_id, self._retry_delay
                )
                self.dirty_since = dirty_since
                self.schedule_save(self._retry_delay)
                self._retry_delay = min(self._retry_delay * 2, 30.0)
                return False
            metrics.DOCUMENT_SAVE_SECONDS.observe(time.perf_counter() - started)
            metrics.DOCUMENT_SAVES.inc()
            self._retry_delay = 0.5
            self.saves += 1
            self.size = len(saved.state)
            self._stored_digest = saved.digest
        if unlogged and self._unlogged is unlogged:  # the save stored them: now they count
            self._unlogged = []
            await self._announce(_merged(unlogged))
        if saved.merged:  # first: what it brings in may change the content too
            await self._absorb(saved.state)
        if render or self.content_changed:
            await self._render(saved.state)
        if self.on_saved is not None:
            await self.on_saved(self)
        return True

    async def _render(self, state: bytes) -> None:
        """Store the content rendered from a just-saved state (REST shows it; called by a save
        when the ``prosemirror`` fragment changed since the last one): rendered in a worker
        thread, outside the row lock and off the ORM thread, then written if the
        stored state is still this one (``notes.yjs.store_rendered``). Never fails the save:
        what cannot be rendered or stored is logged and follows with a later save."""
        try:
            await store.render(self.note_id, state)
        except Exception:
            self.content_changed = True  # try again with the next save
            logger.exception("Note %s: the rendered content was not stored", self.note_id)

    async def _absorb(self, stored: bytes) -> None:
        """Apply what ``stored`` (a state or updates from the database: already durable)
        holds that the server Doc lacks — e.g. a crashed instance's logged or saved edits —
        and relay exactly that to the local editors (deletions included)."""
        waiting = bool(self.pending)
        self._capturing = True
        try:
            self.doc.apply_update(stored)
        finally:
            self._capturing = False
            changes, self._changes = self._changes, []
        if changes:
            change = _merged(changes)
            if waiting:  # parked updates may have integrated: what they added is logged
                await self._log_quietly(change)
                self.schedule_save()
            await self.relay_update(change, None, None)

    async def catch_up(self) -> None:
        """Take in the update-log rows this process has not applied: edits another instance
        acknowledged and then died before it published them. Called before a state goes
        out to a joining client (and a save merges the whole log anyway; a row committed
        after a higher id was read waits for that save). A single process writes every row
        itself: nothing to read."""
        if get_hub().single_process:
            return
        last_id, update = await store.logged_since(self.note_id, self._log_seen)
        self._log_seen = max(self._log_seen, last_id)
        if update is not None:
            await self._absorb(update)

    async def catch_up_stored(self) -> None:
        """Take in what the database holds — the stored state and the update log — that the
        Doc lacks: after a channel-layer failure (``Hub.heal``), when relays of other
        instances' edits were lost and a save may already have compacted their log rows."""
        loaded = await store.load(self.note_id)
        self._log_seen = max(self._log_seen, loaded.upto)
        await self._absorb(loaded.state)

    async def recheck_access(self) -> None:
        """Re-read every local editor's access: write may become read (updates refused from
        then on); an editor with no read access left is revoked."""
        access = await access_by_user(
            self.note_id, {client.user_id for client in self.clients.values()}
        )
        for client in tuple(self.clients.values()):
            level = access.get(client.user_id)
            client.writable = level == "write"
            if level is None and client.revoke is not None:
                await client.revoke()

    def state_payload(self, state: bytes, sessions: list[str]) -> socketio.RawJSON:
        """``{"document_id","state":[ints],"sessions"}`` as JSON text for ``state`` (from
        ``durable_state``). The int list — up to 4 bytes per byte of a document of up to
        ``DOC_MAX_BYTES``, seconds to encode — is encoded once per state and reused (a join
        sends it as the event and as the ack; many joiners share it)."""
        if self._state_json is None or self._state_json[0] != state:
            self._state_json = (state, json.dumps(list(state), separators=(",", ":")))
        head = json.dumps({"document_id": self.document_id}, separators=(",", ":"))[:-1]
        sessions_json = json.dumps(sessions, separators=(",", ":"))
        return socketio.RawJSON(
            f'{head},"state":{self._state_json[1]},"sessions":{sessions_json}}}'
        )

"""Real Yjs peers for the live document tests: y-websocket (pycrdt ``Provider``) and Socket.IO.

- ``YPeer``: a pycrdt ``Provider`` over a ``websockets`` connection to ``/ws/yjs/note:<id>``,
  run in its own task (so peers can leave in any order). The ``Doc`` may be passed in: a peer
  that reconnects with the SAME ``Doc`` re-syncs what the server lacks (the Provider answers
  the server's step 1 with a step 2). ``barrier()`` proves the server has handled everything
  this peer sent so far: it waits until every local change went out, then sends a sync step 1
  and waits for the step 2 reply (the server handles one connection's messages in order).
- ``SioPeer``: a harness ``Client`` that joined a document with ``ydoc:document:join``; it
  applies the ack's state and every received ``ydoc:document:update`` to its own ``Doc``.
- Content helpers: ``append_text`` (Text ``t``), ``add_paragraph`` (a paragraph in the
  ``prosemirror`` XmlFragment), ``content`` / ``state_vector`` to compare documents, and the
  stored document (``stored_doc``) decoded from ``Note.yjs_state``.

Every wait is a poll with a deadline (``harness.eventually``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from pycrdt import Doc, Provider, Text, XmlElement, XmlFragment, XmlText
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from notes.models import Note, NoteGrant, Permission, PrincipalType
from notes.yjs import FRAGMENT, current_state, doc_from_state, fragment_to_prosemirror
from realtime.protocol import yprotocol
from tests.live.harness import Client, DaphneServer, eventually

# --- document content ------------------------------------------------------------------------


def text_of(doc: Doc) -> str:
    return str(doc.get("t", type=Text))


def append_text(doc: Doc, value: str) -> bytes:
    """Append ``value`` to the Text ``t``; returns the update this made."""
    before = doc.get_state()
    text = doc.get("t", type=Text)
    text.insert(len(str(text)), value)
    return doc.get_update(before)


def insert_text(doc: Doc, index: int, value: str) -> bytes:
    """Insert ``value`` at ``index`` of the Text ``t``; returns the update this made."""
    before = doc.get_state()
    doc.get("t", type=Text).insert(index, value)
    return doc.get_update(before)


def add_paragraph(doc: Doc, value: str, index: int | None = None) -> bytes:
    """Add a paragraph holding ``value`` to the ``prosemirror`` fragment (at the end, or at
    ``index``); returns the update this made."""
    before = doc.get_state()
    children = doc.get(FRAGMENT, type=XmlFragment).children
    paragraph = XmlElement("paragraph", {}, [XmlText(value)])
    if index is None:
        children.append(paragraph)
    else:
        children.insert(index, paragraph)
    return doc.get_update(before)


def clear_fragment(doc: Doc) -> bytes:
    """Delete every child of the ``prosemirror`` fragment; returns the update."""
    before = doc.get_state()
    fragment = doc.get(FRAGMENT, type=XmlFragment)
    if len(fragment.children):
        del fragment.children[0 : len(fragment.children)]
    return doc.get_update(before)


def prosemirror(doc: Doc) -> dict:
    return fragment_to_prosemirror(doc.get(FRAGMENT, type=XmlFragment))


def paragraphs(doc: Doc) -> list[str]:
    """The text of each top-level node of the fragment, in order."""
    out = []
    for node in prosemirror(doc)["content"]:
        out.append("".join(child.get("text", "") for child in node.get("content", [])))
    return out


def content(doc: Doc) -> dict[str, Any]:
    """What a user sees: the Text ``t`` and the ProseMirror document."""
    return {"text": text_of(doc), "prosemirror": prosemirror(doc)}


def state_vector(doc: Doc) -> dict[int, int]:
    return yprotocol.decode_state_vector(doc.get_state())


def covers(vector: dict[int, int], other: dict[int, int]) -> bool:
    """Whether state vector ``vector`` includes everything ``other`` has."""
    return all(vector.get(client, 0) >= clock for client, clock in other.items())


# --- the database --------------------------------------------------------------------------------


def create_note(
    owner, writers=(), readers=(), data: dict | None = None, title: str = "plan"
) -> Note:
    """A note of ``owner`` with user grants: write for ``writers``, read for ``readers``."""
    note = Note.objects.create(owner=owner, title=title, data=data or {})
    for users, permission in ((writers, Permission.WRITE), (readers, Permission.READ)):
        for user in users:
            NoteGrant.objects.create(
                note=note, principal_type=PrincipalType.USER, user=user, permission=permission
            )
    return note


@database_sync_to_async
def stored_state(note_id: object) -> bytes | None:
    state = Note.objects.values_list("yjs_state", flat=True).get(pk=note_id)
    return bytes(state) if state is not None else None


async def stored_doc(note_id: object) -> Doc:
    """The note's stored Yjs document (empty when nothing is stored)."""
    return doc_from_state(await stored_state(note_id))


@database_sync_to_async
def _durable_state(note_id: object) -> bytes | None:
    return current_state(note_id)


async def durable_doc(note_id: object) -> Doc:
    """What the database holds for the note: the stored state plus the update log."""
    return doc_from_state(await _durable_state(note_id))


async def stored_is_empty(note_id: object) -> bool:
    """Nothing, or an empty document, is stored (a y-websocket client's initial step 2 of an
    empty Doc is an empty update, which the server applies and saves like any other)."""
    doc = await stored_doc(note_id)
    return not state_vector(doc) and content(doc) == content(Doc())


@database_sync_to_async
def stored_data(note_id: object) -> dict:
    return Note.objects.values_list("data", flat=True).get(pk=note_id)


async def until_stored(note_id: object, check: Callable[[Doc], bool], timeout: float = 5.0) -> Doc:
    """Poll the stored document until ``check(doc)``; returns it."""
    found: list[Doc] = []

    async def probe() -> bool:
        doc = await stored_doc(note_id)
        if check(doc):
            found.append(doc)
            return True
        return False

    try:
        await eventually(probe, timeout, every=0.1)
    except AssertionError:
        doc = await stored_doc(note_id)
        raise AssertionError(
            f"stored document never matched within {timeout}s; it holds {content(doc)!r}"
        ) from None
    return found[0]


# --- y-websocket ---------------------------------------------------------------------------------


def yjs_url(server: DaphneServer, note_id: object, token: str | None) -> str:
    url = f"ws://127.0.0.1:{server.port}/ws/yjs/note:{note_id}"
    return f"{url}?token={token}" if token else url


class WsChannel:
    """A pycrdt ``Channel`` over a ``websockets`` client connection.

    The end of the connection (clean or not, e.g. the server was killed) ends the iteration
    instead of raising, and sends after it are dropped: the Provider then idles until stopped.
    Every frame is recorded. The updates exchanged (sent and received) are applied to
    ``shared``, a shadow Doc of what both sides have, so that ``YPeer.flushed`` can tell when
    every local change went out.
    """

    def __init__(self, ws: ClientConnection, path: str) -> None:
        self.ws = ws
        self._path = path
        self.received: list[yprotocol.YMessage] = []
        self.shared = Doc()
        self.closed: ConnectionClosed | None = None

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WsChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def recv(self) -> bytes:
        while True:
            try:
                frame = await self.ws.recv()
            except ConnectionClosed as closed:
                self.closed = closed
                raise
            if isinstance(frame, str):  # the protocol is binary; a text frame is a bug
                raise AssertionError(f"text frame on the y-websocket endpoint: {frame!r}")
            message = yprotocol.decode_message(frame)
            self.received.append(message)
            if message.kind == yprotocol.MESSAGE_SYNC and message.subtype != yprotocol.SYNC_STEP1:
                self.shared.apply_update(message.payload)
            return frame

    async def send(self, message: bytes) -> None:
        decoded = yprotocol.decode_message(message)
        if decoded.kind == yprotocol.MESSAGE_SYNC and decoded.subtype != yprotocol.SYNC_STEP1:
            self.shared.apply_update(decoded.payload)
        try:
            await self.ws.send(message)
        except ConnectionClosed as closed:
            self.closed = closed

    def count(self, kind: int, subtype: int | None = None) -> int:
        return sum(1 for m in self.received if m.kind == kind and m.subtype == subtype)

    def relayed(self) -> list[bytes]:
        """Payloads of the sync update messages received: what the server relayed."""
        return [
            m.payload
            for m in self.received
            if m.kind == yprotocol.MESSAGE_SYNC and m.subtype == yprotocol.SYNC_UPDATE
        ]


class YPeer:
    """A y-websocket client: ``async with YPeer(server, note_id, token) as peer`` (synced).

    Use ``start()`` / ``leave()`` instead of ``async with`` to leave in any order.
    """

    def __init__(
        self,
        server: DaphneServer,
        note_id: object,
        token: str,
        doc: Doc | None = None,
        name: str = "ypeer",
    ) -> None:
        self.server = server
        self.note_id = note_id
        self.token = token
        self.doc = doc if doc is not None else Doc()
        self.name = name
        self.ws: ClientConnection | None = None
        self.channel: WsChannel | None = None
        self.provider: Provider | None = None
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()

    def __repr__(self) -> str:
        return f"<YPeer {self.name} on :{self.server.port}>"

    async def start(self, timeout: float = 5.0, barrier: bool = True) -> YPeer:
        """Connect, run the Provider and wait for the initial sync (both ways, unless
        ``barrier`` is false: then only until the server's step 2 arrived)."""
        self.ws = await ws_connect(
            yjs_url(self.server, self.note_id, self.token),
            ping_interval=None,
            open_timeout=5,
            max_size=16 * 2**20,  # as the server's limit: documents may exceed 1 MiB
        )
        self.channel = WsChannel(self.ws, f"/ws/yjs/note:{self.note_id}")
        self._task = asyncio.create_task(self._run(), name=f"ypeer-{self.name}")
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        if self._task in done:
            self._task.result()  # raises what the provider raised
            raise AssertionError(f"{self.name}: the provider ended before syncing")
        if not done:
            raise AssertionError(f"{self.name}: provider did not start within {timeout}s")
        try:
            await asyncio.wait_for(self.provider.synced.wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: not synced within {timeout}s (closed: {self.channel.closed})"
            ) from None
        if barrier:  # the server has also handled our step 2 (nothing in flight any more)
            await self.barrier(timeout)
        return self

    async def _run(self) -> None:
        async with Provider(self.doc, self.channel) as provider:
            self.provider = provider
            self._ready.set()
            await self._stop.wait()

    def flushed(self) -> bool:
        """Every change of the local Doc has been handed to the connection (compared by
        state vector, and by content: a deletion does not advance a state vector)."""
        shared = self.channel.shared
        return covers(state_vector(shared), state_vector(self.doc)) and content(shared) == content(
            self.doc
        )

    async def barrier(self, timeout: float = 5.0) -> None:
        """Return once the server has handled everything this peer sent so far."""
        await eventually(self.flushed, timeout, every=0.01)
        before = self.channel.count(yprotocol.MESSAGE_SYNC, yprotocol.SYNC_STEP2)
        await self.ws.send(yprotocol.encode_sync_step1(self.doc.get_state()))
        await eventually(
            lambda: self.channel.count(yprotocol.MESSAGE_SYNC, yprotocol.SYNC_STEP2) > before,
            timeout,
            every=0.01,
        )

    async def leave(self, timeout: float = 5.0) -> None:
        """Leave gracefully: queued updates are sent, then the connection is closed."""
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, timeout)
        finally:
            self._task = None
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    await self.ws.close()

    async def abandon(self) -> None:
        """Teardown: leave if possible, else cancel; never raises."""
        task = self._task
        with contextlib.suppress(Exception):
            await self.leave(timeout=2.0)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def closed(self, timeout: float = 10.0) -> ConnectionClosed:
        """Wait until the server's side ends the connection; returns why."""
        await eventually(lambda: self.channel.closed is not None, timeout)
        return self.channel.closed

    async def __aenter__(self) -> YPeer:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.leave()


class PeerPool:
    """``pool(server, note_id, token, doc=None, name=...)`` -> an unstarted ``YPeer``; every peer
    made is abandoned at teardown (a fixture of each test module)."""

    def __init__(self) -> None:
        self.made: list[YPeer] = []

    def __call__(
        self,
        server: DaphneServer,
        note_id: object,
        token: str,
        doc: Doc | None = None,
        name: str = "ypeer",
    ) -> YPeer:
        peer = YPeer(server, note_id, token, doc, name)
        self.made.append(peer)
        return peer

    async def close_all(self) -> None:
        for peer in reversed(self.made):
            await peer.abandon()


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read (answering nothing) until the server closes ``ws``; the close code it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("unreachable")


async def refused_close_code(
    server: DaphneServer, note_id: object, token: str | None, timeout: float = 5.0
) -> int | None:
    """Open the y-websocket endpoint expecting the server to close it; returns the code."""
    async with ws_connect(yjs_url(server, note_id, token), ping_interval=None) as ws:
        return await close_code(ws, timeout)


# --- Socket.IO -----------------------------------------------------------------------------------


class SioPeer:
    """A Socket.IO client in one document, with its own Doc kept up to date on ``pull()``."""

    def __init__(self, client: Client, note_id: object) -> None:
        self.client = client
        self.note_id = note_id
        self.document_id = f"note:{note_id}"
        self.doc = Doc()
        self.ack: dict | None = None
        self._applied = 0

    def __repr__(self) -> str:
        return f"<SioPeer {self.client.name}>"

    async def join(self) -> dict:
        """``ydoc:document:join``; asserts success and applies the state."""
        ack = await self.client.call("ydoc:document:join", {"document_id": self.document_id})
        assert "error" not in ack, f"{self.client.name}: join refused: {ack}"
        assert ack["document_id"] == self.document_id, ack
        self.ack = ack
        self.doc.apply_update(bytes(ack["state"]))
        return ack

    def relayed(self) -> list[dict]:
        return self.client.received("ydoc:document:update")

    def pull(self) -> Doc:
        """Apply the updates received since the last pull; returns the Doc."""
        updates = self.relayed()
        for payload in updates[self._applied :]:
            assert payload["document_id"] == self.document_id, payload
            self.doc.apply_update(bytes(payload["update"]))
        self._applied = len(updates)
        return self.doc

    async def send(self, update: bytes, **extra: Any) -> dict:
        """``ydoc:document:update`` with ``update``; returns the ack."""
        return await self.client.call(
            "ydoc:document:update",
            {"document_id": self.document_id, "update": list(update), **extra},
        )

    async def edit(self, change: Callable[[Doc], bytes]) -> bytes:
        """Make ``change`` on the local Doc and send it; asserts the ack is ``{}``."""
        update = change(self.doc)
        ack = await self.send(update)
        assert ack == {}, f"{self.client.name}: update refused: {ack}"
        return update

    async def leave(self) -> None:
        ack = await self.client.call("ydoc:document:leave", {"document_id": self.document_id})
        assert ack == {}, ack


# --- waiting --------------------------------------------------------------------------------------


async def stays(check: Callable[[], Any], within: float = 0.5, every: float = 0.05) -> None:
    """Fail if ``check`` (sync or async) is ever falsy now or within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        assert result, "a condition that must keep holding stopped holding"
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(every)


# --- convergence ---------------------------------------------------------------------------------


def _doc_of(peer: YPeer | SioPeer | Doc) -> Doc:
    if isinstance(peer, SioPeer):
        return peer.pull()
    if isinstance(peer, YPeer):
        return peer.doc
    return peer


async def converged(*peers: YPeer | SioPeer | Doc, timeout: float = 5.0) -> dict:
    """Wait until every peer holds the same content and state vector; returns the content."""

    def same() -> bool:
        docs = [_doc_of(peer) for peer in peers]
        first = (content(docs[0]), state_vector(docs[0]))
        return all((content(d), state_vector(d)) == first for d in docs[1:])

    try:
        await eventually(same, timeout)
    except AssertionError:
        views = [(peer, content(_doc_of(peer)), state_vector(_doc_of(peer))) for peer in peers]
        raise AssertionError(f"peers did not converge within {timeout}s: {views!r}") from None
    return content(_doc_of(peers[0]))


# --- shared by the live document tests ------------------------------------------------------


async def sio_peer(clients, server, user, note_id, name: str) -> SioPeer:
    """A Socket.IO client of ``user`` that joined the note's document."""
    from tests.live.harness import access

    peer = SioPeer(await clients(server, name).connect(await access(user)), note_id)
    await peer.join()
    return peer


def sorted_parts(text: str) -> list[str]:
    """The ``;``-separated parts of a test text, sorted (order-free comparison)."""
    return sorted(part for part in text.split(";") if part)

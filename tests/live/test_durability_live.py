"""Acknowledged means durable, whatever the client does (issue 15, points 1 and 2).

The client here behaves like Open WebUI's note editor: it joins, applies the server's state,
sends each edit as ``ydoc:document:update`` and waits for the ack — and after a reconnect it
only applies the server's state again, never sending back what the server may lack. The
server is SIGKILLed at a random moment while it types, inside the save debounce (saves are
set far off: only the update log can keep an edit), then started again. Every edit that was
acked must be in the database (stored state + update log) and in a fresh client's document.

An update that builds on changes the server does not have (the client kept text typed
before the crash that was never acked) is never acked as success: the ack is the error
``missing_updates`` with the server's state vector, and the server asks for the difference
(``ydoc:document:sync`` over Socket.IO, a sync step 1 over y-websocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, Text
from websockets.asyncio.client import connect as ws_connect

from notes.models import Note, NoteUpdate
from notes.yjs import doc_from_state
from realtime.protocol import yprotocol
from tests.live.doc_peers import create_note, durable_doc, stored_state, text_of, yjs_url
from tests.live.harness import Client, access, eventually

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: Saves far off: within a test only the update log can keep an edit.
NO_SAVES = {"DOC_SAVE_DEBOUNCE": 60, "DOC_SAVE_MAX_WAIT": 120}
ROUNDS = 4


@pytest.fixture
def people(alice, bob) -> SimpleNamespace:
    return SimpleNamespace(owner=alice, writer=bob)


@pytest.fixture
def make_note(people):
    @database_sync_to_async
    def make() -> Note:
        return create_note(people.owner, [people.writer], [], None)

    return make


async def durable_text(note_id: object) -> str:
    """The text the database holds for the note: stored state plus update log."""
    return text_of(await durable_doc(note_id))


class OpenWebUILike:
    """An editor that, like Open WebUI's, keeps its Doc across reconnects, applies the
    server's state on (re)join and never re-sends its own state. Its text is appended
    to the Yjs ``Text`` ``"t"`` (what ``text_of`` reads) one token per update."""

    def __init__(self, note_id: object, token: str) -> None:
        self.document_id = f"note:{note_id}"
        self.token = token
        self.doc = Doc()
        self.acked: list[str] = []
        self.refused: list[dict] = []
        self.client: Client | None = None

    async def join(self, server) -> None:
        self.client = await Client(server, "openwebui-like").connect(self.token)
        ack = await self.client.call("ydoc:document:join", {"document_id": self.document_id})
        assert "error" not in ack, ack
        self.doc.apply_update(bytes(ack["state"]))

    async def type(self, tokens: list[str]) -> None:
        """Send one update per token until the server stops answering."""
        text = self.doc.get("t", type=Text)
        for token in tokens:
            before = self.doc.get_state()
            text += token
            update = self.doc.get_update(before)
            try:
                ack = await self.client.call(
                    "ydoc:document:update",
                    {"document_id": self.document_id, "update": list(update)},
                    timeout=3,
                )
            except Exception:  # the server died under us: unacked
                return
            if ack == {}:
                self.acked.append(token)
            else:
                self.refused.append(ack)

    async def drop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # already gone with the server
                await self.client.sio.disconnect()


async def fresh_text(server, note_id: object, token: str) -> str:
    """The document's text as a client that just joined sees it."""
    client = await Client(server, "fresh").connect(token)
    try:
        ack = await client.call("ydoc:document:join", {"document_id": f"note:{note_id}"})
        assert "error" not in ack, ack
        doc = Doc()
        doc.apply_update(bytes(ack["state"]))
        return text_of(doc)
    finally:
        await client.sio.disconnect()


def a_gap(known: str, builds_on_it: str) -> tuple[Doc, bytes]:
    """A local Doc holding ``known`` then ``builds_on_it`` in the Text ``t``, and the update
    of the second alone: it builds on a change the server never got."""
    local = Doc()
    text = local.get("t", type=Text)
    text += known
    before = local.get_state()
    text += builds_on_it
    return local, local.get_update(before)


def assert_all_there(text: str, acked: list[str]) -> None:
    missing = [token for token in acked if token not in text]
    assert not missing, f"acked but lost: {missing} (text: {text!r})"


async def test_acked_edits_survive_sigkill_for_a_client_that_never_resends(
    servers, people, make_note
):
    note = await make_note()
    editor = OpenWebUILike(note.id, await access(people.writer))
    reader_token = await access(people.owner)
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    for round_ in range(ROUNDS):
        server = servers(f"daphne-{round_}", **NO_SAVES)
        await editor.join(server)
        typing = asyncio.create_task(editor.type([f"r{round_}t{n};" for n in range(400)]))
        await asyncio.sleep(rng.uniform(0.05, 0.6))  # kill at a random moment while it types
        await asyncio.to_thread(server.kill)
        await typing
        await editor.drop()
        assert_all_there(await durable_text(note.id), editor.acked)
    assert len(editor.acked) > ROUNDS, f"seed {seed}: too few edits acked to mean anything"
    restarted = servers("daphne-final", **NO_SAVES)
    assert_all_there(await fresh_text(restarted, note.id, reader_token), editor.acked)


async def test_an_update_the_server_cannot_integrate_is_not_acked_and_the_gap_is_asked_for(
    servers, people, make_note
):
    server = servers("daphne", **NO_SAVES)
    note = await make_note()
    client = await Client(server, "editor").connect(await access(people.writer))
    document_id = f"note:{note.id}"
    assert "error" not in await client.call("ydoc:document:join", {"document_id": document_id})
    local, second = a_gap("known;", "builds-on-it;")

    # Only the second update: the server lacks what it builds on.
    ack = await client.call(
        "ydoc:document:update", {"document_id": document_id, "update": list(second)}
    )
    assert ack["error"]["code"] == "missing_updates", ack
    vector = bytes(ack["error"]["state_vector"])
    asked = await client.wait_for("ydoc:document:sync")
    assert asked == {"document_id": document_id, "state_vector": list(vector)}
    assert await durable_text(note.id) == ""

    # The client answers with the difference against the server's vector: now all is acked.
    diff = local.get_update(vector)
    ack = await client.call(
        "ydoc:document:update", {"document_id": document_id, "update": list(diff)}
    )
    assert ack == {}, ack
    assert await durable_text(note.id) == "known;builds-on-it;"
    assert await fresh_text(server, note.id, await access(people.owner)) == "known;builds-on-it;"


async def test_a_y_websocket_update_with_a_gap_gets_a_sync_step1_and_the_answer_fills_it(
    servers, people, make_note
):
    server = servers("daphne", **NO_SAVES)
    note = await make_note()
    local, second = a_gap("known;", "builds-on-it;")
    async with ws_connect(yjs_url(server, note.id, await access(people.writer))) as ws:
        first_step1 = yprotocol.decode_message(await ws.recv())
        assert (first_step1.kind, first_step1.subtype) == (
            yprotocol.MESSAGE_SYNC,
            yprotocol.SYNC_STEP1,
        )
        await ws.send(yprotocol.encode_sync_update(second))

        async def asked() -> bytes:
            while True:
                message = yprotocol.decode_message(await ws.recv())
                if (message.kind, message.subtype) == (
                    yprotocol.MESSAGE_SYNC,
                    yprotocol.SYNC_STEP1,
                ):
                    return message.payload

        vector = await asyncio.wait_for(asked(), 5)
        await ws.send(yprotocol.encode_sync_step2(local.get_update(vector)))

        async def stored_all() -> bool:
            return await durable_text(note.id) == "known;builds-on-it;"

        await eventually(stored_all, timeout=5)


@pytest.mark.services
async def test_acked_edits_survive_killing_the_instance_the_client_is_on(
    servers, clean_redis, people, make_note
):
    """Two instances on PostgreSQL + Redis: the client types on A, A is SIGKILLed inside
    the debounce; B (which never saves here either) and a restarted A both have every
    acked edit, and so has the database."""
    note = await make_note()
    editor = OpenWebUILike(note.id, await access(people.writer))
    owner_token = await access(people.owner)
    b = servers("instance-B", clean_redis, **NO_SAVES)
    watcher = await Client(b, "watcher@B").connect(owner_token)
    ack = await watcher.call("ydoc:document:join", {"document_id": f"note:{note.id}"})
    assert "error" not in ack, ack
    rng = random.Random()
    for round_ in range(3):
        a = servers(f"instance-A{round_}", clean_redis, **NO_SAVES)
        await editor.join(a)
        typing = asyncio.create_task(editor.type([f"r{round_}t{n};" for n in range(300)]))
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        await asyncio.to_thread(a.kill)
        await typing
        await editor.drop()
        assert_all_there(await durable_text(note.id), editor.acked)
        assert_all_there(await fresh_text(b, note.id, owner_token), editor.acked)
    assert len(editor.acked) > 3
    restarted = servers("instance-A-final", clean_redis, **NO_SAVES)
    assert_all_there(await fresh_text(restarted, note.id, owner_token), editor.acked)
    await watcher.sio.disconnect()


@database_sync_to_async
def log_rows(note_id: object) -> int:
    return NoteUpdate.objects.filter(note_id=note_id).count()


async def test_a_save_compacts_the_log_into_the_stored_state(servers, people, make_note):
    server = servers("daphne", DOC_SAVE_DEBOUNCE=0.2, DOC_SAVE_MAX_WAIT=1)
    note = await make_note()
    editor = OpenWebUILike(note.id, await access(people.writer))
    await editor.join(server)
    await editor.type([f"t{n};" for n in range(20)])
    assert len(editor.acked) == 20

    async def compacted() -> bool:
        stored = await stored_state(note.id)
        return (
            stored is not None
            and text_of(doc_from_state(stored)) == "".join(editor.acked)
            and await log_rows(note.id) == 0
        )

    await eventually(compacted, timeout=5)
    await editor.drop()


async def test_an_answer_that_does_not_fill_the_gap_is_not_asked_for_again(
    servers, people, make_note
):
    """The server asks once per state of its document: a client whose answer still builds
    on changes nobody has (found by the fuzzer: junk relayed to an editor) is not asked
    again and again, and its repeated answer is kept once, not until the pending bound."""
    server = servers("daphne", **NO_SAVES, DOC_MAX_PENDING_UPDATES=5)
    note = await make_note()
    _, orphan = a_gap("never-sent;", "orphan;")
    async with ws_connect(yjs_url(server, note.id, await access(people.writer))) as ws:
        await ws.recv()  # the server's own step 1

        async def step1s(within: float) -> int:
            count = 0
            try:
                async with asyncio.timeout(within):
                    while True:
                        message = yprotocol.decode_message(await ws.recv())
                        if (message.kind, message.subtype) == (
                            yprotocol.MESSAGE_SYNC,
                            yprotocol.SYNC_STEP1,
                        ):
                            count += 1
            except TimeoutError:
                return count

        await ws.send(yprotocol.encode_sync_update(orphan))
        assert await step1s(1.0) == 1  # asked once
        for _ in range(10):  # "answers" that fill nothing, more than the pending bound
            await ws.send(yprotocol.encode_sync_step2(orphan))
        assert await step1s(1.0) == 0  # not asked again: the server's state did not move
        assert ws.close_code is None  # and not closed for too many waiting updates

"""Collaborative notes end to end, on one real daphne process (spec §1, §6-9).

Real peers: pycrdt ``Provider`` over ``websockets`` on ``/ws/yjs/note:<id>`` (y-websocket) and
python-socketio clients speaking ``ydoc:*`` on ``/ws/socket.io/``; each keeps its own pycrdt
``Doc``. Documents are compared by content (Text ``t`` + the ProseMirror JSON of the
``prosemirror`` fragment) and by state vector; what is stored is read back from
``Note.yjs_state``. The consumer-level cases (payload shapes, awareness, grant changes, save
retries) are in tests/realtime/test_documents.py; these go through real servers.

No Redis: the in-memory channel layer of the one process. Runs on SQLite (pass 1) and on
PostgreSQL (pass 2, ``DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, YMessageType, handle_sync_message
from websockets.asyncio.client import connect as ws_connect

from notes.models import Note
from tests.live.doc_peers import (
    SioPeer,
    add_paragraph,
    append_text,
    clear_fragment,
    content,
    converged,
    create_note,
    insert_text,
    paragraphs,
    prosemirror,
    refused_close_code,
    sio_peer,
    sorted_parts,
    state_vector,
    stays,
    stored_data,
    stored_doc,
    stored_is_empty,
    stored_state,
    text_of,
    until_stored,
    yjs_url,
)
from tests.live.harness import access, eventually

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: Saves soon after an edit (debounced saves are observable within a test).
FAST_SAVES = {"DOC_SAVE_DEBOUNCE": 0.2, "DOC_SAVE_MAX_WAIT": 1}
#: No debounced save can happen within a test: only a flush (last leave, SIGTERM) saves.
FLUSH_ONLY = {"DOC_SAVE_DEBOUNCE": 30, "DOC_SAVE_MAX_WAIT": 60}

PM = {
    "type": "doc",
    "content": [
        {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Plan"}]},
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "Hello "},
                {"type": "text", "text": "world", "marks": [{"type": "bold"}]},
            ],
        },
    ],
}


@pytest.fixture
def people(alice, bob, make_user) -> SimpleNamespace:
    """owner (alice), writer (bob, write grant), reader (read grant), stranger (no access)."""
    return SimpleNamespace(
        owner=alice,
        writer=bob,
        reader=make_user("reader", name="Reader"),
        stranger=make_user("stranger", name="Stranger"),
    )


@pytest.fixture
def make_note(people):
    """``await make_note(data=None)`` -> a note of the owner shared with writer and reader."""

    @database_sync_to_async
    def make(data: dict | None = None) -> Note:
        return create_note(people.owner, [people.writer], [people.reader], data)

    return make


# --- 1. two y-websocket peers --------------------------------------------------------------------


async def test_two_ywebsocket_peers_converge_on_concurrent_edits(
    servers, ypeers, people, make_note
):
    server = servers("daphne", **FAST_SAVES)
    note = await make_note()
    one = await ypeers(server, note.id, await access(people.owner), name="owner").start()
    two = await ypeers(server, note.id, await access(people.writer), name="writer").start()

    # Concurrent: both change their Doc before either Provider has sent anything.
    append_text(one.doc, "one;")
    add_paragraph(one.doc, "from one")
    append_text(two.doc, "two;")
    add_paragraph(two.doc, "from two")
    view = await converged(one, two)
    assert sorted_parts(view["text"]) == ["one", "two"]
    assert sorted(paragraphs(one.doc)) == ["from one", "from two"]

    # A second concurrent round, inserting at the same position (the start).
    insert_text(one.doc, 0, "A;")
    add_paragraph(one.doc, "first from one", index=0)
    insert_text(two.doc, 0, "B;")
    add_paragraph(two.doc, "first from two", index=0)
    view = await converged(one, two)
    assert sorted_parts(view["text"]) == ["A", "B", "one", "two"]
    assert sorted(paragraphs(two.doc)[:2]) == ["first from one", "first from two"]
    assert sorted(paragraphs(two.doc)[2:]) == ["from one", "from two"]

    vector = state_vector(one.doc)
    assert {one.doc.client_id, two.doc.client_id} <= set(vector)
    await one.leave()
    await two.leave()
    stored = await until_stored(note.id, lambda doc: state_vector(doc) == vector)
    assert content(stored) == view


# --- 2. across the two endpoints -----------------------------------------------------------------


async def test_ywebsocket_and_socketio_peers_converge(servers, ypeers, clients, people, make_note):
    server = servers("daphne", **FAST_SAVES)
    note = await make_note()
    yws = await ypeers(server, note.id, await access(people.owner), name="owner@yws").start()
    sio = await sio_peer(clients, server, people.writer, note.id, "writer@sio")

    # Both edit before seeing the other's edit (the Socket.IO peer pulls nothing yet).
    append_text(yws.doc, "yws;")
    add_paragraph(yws.doc, "typed in a Yjs editor")
    await sio.edit(lambda doc: append_text(doc, "sio;"))
    await sio.edit(lambda doc: add_paragraph(doc, "typed in Open WebUI"))
    view = await converged(yws, sio)
    assert sorted_parts(view["text"]) == ["sio", "yws"]
    assert sorted(paragraphs(yws.doc)) == ["typed in Open WebUI", "typed in a Yjs editor"]

    # What the Socket.IO peer got from the y-websocket peer is stamped by the server.
    stamped = [u for u in sio.relayed() if u["user_id"] == str(people.owner.id)]
    assert stamped and all(u["socket_id"].startswith("y:") for u in stamped)

    # And one more edit each way, after convergence.
    await sio.edit(lambda doc: append_text(doc, "sio2;"))
    append_text(yws.doc, "yws2;")
    view = await converged(yws, sio)
    assert sorted_parts(view["text"]) == ["sio", "sio2", "yws", "yws2"]

    vector = state_vector(yws.doc)
    await yws.leave()
    await sio.leave()
    stored = await until_stored(note.id, lambda doc: state_vector(doc) == vector)
    assert content(stored) == view


# --- 3. read-only peers --------------------------------------------------------------------------


async def test_read_only_peer_edits_are_dropped_and_never_stored(
    servers, ypeers, clients, people, make_note
):
    server = servers("daphne", **FAST_SAVES)
    note = await make_note()
    writer = await ypeers(server, note.id, await access(people.writer), name="writer").start()
    reader = await ypeers(server, note.id, await access(people.reader), name="reader").start()
    add_paragraph(writer.doc, "shared")
    await converged(writer, reader)  # the reader does receive the writer's edits

    append_text(reader.doc, "vandal")
    clear_fragment(reader.doc)
    await reader.barrier()  # the server has handled (dropped) the reader's updates
    # The marker: the writer's barrier (a step 2 answered after the reader's updates were
    # handled, each relayed before the next message is read), and the writer's Doc applies
    # what it receives in order: a relayed update would be in it by now.
    await writer.barrier()
    assert paragraphs(writer.doc) == ["shared"] and text_of(writer.doc) == ""
    assert reader.doc.client_id not in state_vector(writer.doc)
    assert reader.channel.closed is None  # dropped silently, not disconnected

    # A save made after the dropped edit holds the server's whole Doc: no trace of it.
    append_text(writer.doc, "ok")
    stored = await until_stored(note.id, lambda doc: text_of(doc) == "ok")
    assert paragraphs(stored) == ["shared"]
    assert reader.doc.client_id not in state_vector(stored)
    await eventually(lambda: "ok" in text_of(reader.doc))  # still receiving

    # Over Socket.IO the reader may join (read) but an update is refused with forbidden.
    sio_reader = await sio_peer(clients, server, people.reader, note.id, "reader@sio")
    assert paragraphs(sio_reader.doc) == ["shared"]
    ack = await sio_reader.send(append_text(sio_reader.doc, "nope"))
    assert ack.get("error", {}).get("code") == "forbidden", ack
    await writer.barrier()  # the marker: a relay of the refused update would come before
    assert text_of(writer.doc) == "ok"
    stored = await stored_doc(note.id)
    assert text_of(stored) == "ok" and sio_reader.doc.client_id not in state_vector(stored)


# --- 4. late joiners -----------------------------------------------------------------------------


async def test_late_joiners_on_either_endpoint_receive_the_full_state(
    servers, ypeers, clients, people, make_note
):
    server = servers("daphne", **FAST_SAVES)
    note = await make_note()
    yws = await ypeers(server, note.id, await access(people.owner), name="owner@yws").start()
    sio = await sio_peer(clients, server, people.writer, note.id, "writer@sio")
    for index in range(5):
        append_text(yws.doc, f"y{index};")
        await sio.edit(lambda doc, i=index: add_paragraph(doc, f"s{i}"))
    view = await converged(yws, sio)
    vector = state_vector(yws.doc)

    # The initial sync alone (no later update) carries everything.
    late_yws = await ypeers(server, note.id, await access(people.reader), name="late@yws").start()
    assert (content(late_yws.doc), state_vector(late_yws.doc)) == (view, vector)
    late_sio = SioPeer(
        await clients(server, "late@sio").connect(await access(people.reader)), note.id
    )
    ack = await late_sio.join()
    from_ack = Doc()
    from_ack.apply_update(bytes(ack["state"]))
    assert (content(from_ack), state_vector(from_ack)) == (view, vector)
    assert len(ack["sessions"]) == 4  # every connection: two Socket.IO, two y-websocket
    state_event = await late_sio.client.wait_for("ydoc:document:state")
    assert state_event["state"] == ack["state"]


async def test_large_frames_to_a_slow_reader_arrive_whole_and_in_order(
    servers, ypeers, people, make_note
):
    """A reader that stops reading makes the server's socket buffer fill: Chorus's direct
    write (realtime/transport/direct.py) then sends part of a frame and Twisted queues the rest, and
    every later frame must queue behind it. Read afterwards, every message decodes and the
    reader's document equals the writer's."""
    server = servers("daphne", **FAST_SAVES)
    note = await make_note()
    writer = await ypeers(server, note.id, await access(people.owner), name="writer").start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small TCP window
    sock.connect(("127.0.0.1", server.port))
    slow = await ws_connect(
        yjs_url(server, note.id, await access(people.writer)),
        sock=sock,
        ping_interval=None,
        max_size=16 * 2**20,
        max_queue=1,  # the client stops reading its socket after one unread message
    )
    for index in range(8):  # 7.2 MB in a burst: more than the kernel's buffers hold
        append_text(writer.doc, f"{index}:" + "x" * 900_000)  # one ~900 KB update each
        append_text(writer.doc, f"small {index};")  # right behind it on the same socket
    await writer.barrier(timeout=60)
    doc = Doc()
    async with asyncio.timeout(60):
        while text_of(doc) != text_of(writer.doc):
            message = await slow.recv()
            if message[0] == YMessageType.SYNC:
                handle_sync_message(message[1:], doc)
    assert text_of(doc).count("x" * 900_000) == 8
    await slow.close()


# --- 5. server-side seeding ----------------------------------------------------------------------


async def test_seeded_note_read_only_first_viewer_sees_it_and_cannot_blank_it(
    servers, ypeers, clients, people, make_note
):
    server = servers("daphne", **FAST_SAVES)
    rendered = {"json": PM, "md": "# Plan\n\nHello **world**", "html": "<h1>Plan</h1>"}
    note = await make_note({"content": rendered})
    assert await stored_state(note.id) is None

    viewer = await ypeers(server, note.id, await access(people.reader), name="reader").start()
    assert prosemirror(viewer.doc) == PM  # seeded on the server, before anyone could edit
    seeded = await stored_doc(note.id)
    assert prosemirror(seeded) == PM

    # A viewer that would "seed" (or blank) the note client-side changes nothing.
    clear_fragment(viewer.doc)
    add_paragraph(viewer.doc, "client-side seed")
    await viewer.barrier()
    sio_viewer = await sio_peer(clients, server, people.reader, note.id, "reader@sio")
    assert prosemirror(sio_viewer.doc) == PM
    ack = await sio_viewer.send(clear_fragment(sio_viewer.doc))
    assert ack["error"]["code"] == "forbidden"

    editor = await ypeers(server, note.id, await access(people.writer), name="writer").start()
    assert prosemirror(editor.doc) == PM
    append_text(editor.doc, "edited")
    stored = await until_stored(note.id, lambda doc: text_of(doc) == "edited")
    assert prosemirror(stored) == PM
    await viewer.leave()
    await editor.leave()
    await sio_viewer.leave()
    stored = await until_stored(note.id, lambda doc: text_of(doc) == "edited")
    assert prosemirror(stored) == PM
    assert viewer.doc.client_id not in state_vector(stored)
    # The server's rendering of PM (issue 15: its own html, not the legacy copy's): the
    # reader's blanking reached nothing.
    server_html = "<h1>Plan</h1><p>Hello <strong>world</strong></p>"
    assert (await stored_data(note.id))["content"] == {**rendered, "html": server_html}


# --- 6. restart ----------------------------------------------------------------------------------


async def test_state_survives_every_client_leaving_and_a_restart(
    servers, ypeers, clients, people, make_note
):
    server = servers("daphne", **FLUSH_ONLY)
    note = await make_note()
    yws = await ypeers(server, note.id, await access(people.owner), name="owner@yws").start()
    sio = await sio_peer(clients, server, people.writer, note.id, "writer@sio")
    append_text(yws.doc, "kept;")
    add_paragraph(yws.doc, "a paragraph")
    await sio.edit(lambda doc: append_text(doc, "also kept;"))
    await sio.edit(lambda doc: add_paragraph(doc, "another paragraph"))
    view = await converged(yws, sio)
    vector = state_vector(yws.doc)

    await yws.leave()
    await sio.client.disconnect()  # the last editor goes: the document is flushed
    stored = await until_stored(note.id, lambda doc: state_vector(doc) == vector)
    assert content(stored) == view

    await asyncio.to_thread(server.stop)
    assert server.process.returncode != -signal.SIGKILL
    restarted = servers("daphne-restarted", **FLUSH_ONLY)
    fresh = await ypeers(restarted, note.id, await access(people.reader), name="after").start()
    assert (content(fresh.doc), state_vector(fresh.doc)) == (view, vector)
    sio_after = await sio_peer(clients, restarted, people.writer, note.id, "writer@sio2")
    assert (content(sio_after.doc), state_vector(sio_after.doc)) == (view, vector)
    stored = await stored_doc(note.id)
    assert (content(stored), state_vector(stored)) == (view, vector)


# --- 7. SIGTERM flush ----------------------------------------------------------------------------


async def test_sigterm_mid_edit_flushes_before_exit(servers, ypeers, clients, people, make_note):
    server = servers("daphne", **FLUSH_ONLY)
    note = await make_note()
    yws = await ypeers(server, note.id, await access(people.owner), name="owner@yws").start()
    sio = await sio_peer(clients, server, people.writer, note.id, "writer@sio")
    append_text(yws.doc, "unsaved;")
    add_paragraph(yws.doc, "typed just before the deploy")
    await sio.edit(lambda doc: append_text(doc, "mine too;"))
    view = await converged(yws, sio)
    vector = state_vector(yws.doc)
    await yws.barrier()
    assert await stored_state(note.id) is None  # nothing saved yet: both are still editing

    await asyncio.to_thread(server.stop)  # SIGTERM, with both peers connected
    assert not server.running
    assert server.process.returncode != -signal.SIGKILL, "daphne did not exit on SIGTERM"
    stored = await stored_doc(note.id)
    assert (content(stored), state_vector(stored)) == (view, vector)
    await yws.closed()
    await sio.client.wait_disconnected()


# --- 8. refusals through Socket.IO ---------------------------------------------------------------


async def test_socketio_refusals_change_nothing(servers, ypeers, clients, people, make_note):
    server = servers("daphne", DOC_MAX_UPDATE_BYTES=64, **FAST_SAVES)
    note = await make_note()
    watcher = await ypeers(server, note.id, await access(people.owner), name="owner@yws").start()
    sio_watcher = await sio_peer(clients, server, people.owner, note.id, "owner@sio")
    writer = await sio_peer(clients, server, people.writer, note.id, "writer@sio")
    reader = await sio_peer(clients, server, people.reader, note.id, "reader@sio")
    updates_before = len(watcher.channel.relayed())

    def refused(ack: dict, code: str) -> None:
        assert set(ack) == {"error"} and ack["error"]["code"] == code, ack
        assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]

    truncated = list(append_text(Doc(), "almost an update"))[:-1]
    for malformed in ([], [1, 2, 3], truncated, [300], [-1], "not an update", {"a": 1}):
        ack = await writer.client.call(
            "ydoc:document:update", {"document_id": writer.document_id, "update": malformed}
        )
        refused(ack, "bad_request")
    refused(await writer.send(append_text(Doc(), "x" * 200)), "too_large")
    refused(await reader.send(append_text(reader.doc, "read-only")), "forbidden")
    stranger = SioPeer(
        await clients(server, "stranger@sio").connect(await access(people.stranger)), note.id
    )
    joined = await stranger.client.call("ydoc:document:join", {"document_id": stranger.document_id})
    refused(joined, "not_found")  # as for a note that does not exist: not told apart
    refused(await stranger.send(append_text(stranger.doc, "intruder")), "bad_request")
    assert await refused_close_code(server, note.id, await access(people.stranger)) == 4403

    # Nothing reached anyone, nothing was stored, and every refused socket is still there.
    await watcher.barrier()
    assert len(watcher.channel.relayed()) == updates_before
    # Markers: the ack of a later request on each socket. Every refusal was answered before
    # it, and a relay goes to the room's sockets before the sender's ack.
    for peer in (sio_watcher, writer):
        heartbeat = peer.client.call("heartbeat")
        await peer.client.assert_no_event_before("ydoc:document:update", heartbeat)
    await stays(lambda: stored_is_empty(note.id), within=0.6)  # 3x the debounce
    assert content(watcher.doc) == content(Doc())
    assert all(peer.client.connected for peer in (writer, reader, stranger))

    # The same sockets still work: a valid update reaches both watchers and is stored.
    await writer.edit(lambda doc: append_text(doc, "ok"))
    await sio_watcher.client.wait_for("ydoc:document:update")
    view = await converged(watcher, sio_watcher, writer)
    assert view["text"] == "ok"
    await until_stored(note.id, lambda doc: text_of(doc) == "ok")

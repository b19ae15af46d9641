"""Collaborative notes across two daphne instances sharing Redis and the database (spec §9).

Instances A and B run with the same ``REDIS_URL`` (channel layer: ``chorus.doc`` messages
carry every applied update to the other instance) and the same ``DATABASE_URL`` (the test
database; saves merge into ``Note.yjs_state`` under a row lock). ``clean_redis`` deletes the
``chorus:*`` keys of that Redis database first (never FLUSHALL). Peers are real: pycrdt
``Provider`` over y-websocket and python-socketio clients (tests/live/doc_peers.py).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc

from notes.models import Note
from tests.live.doc_peers import (
    add_paragraph,
    append_text,
    content,
    converged,
    covers,
    create_note,
    durable_doc,
    paragraphs,
    sio_peer,
    sorted_parts,
    state_vector,
    stored_state,
    text_of,
    until_stored,
)
from tests.live.harness import access, eventually

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]

FAST_SAVES = {"DOC_SAVE_DEBOUNCE": 0.2, "DOC_SAVE_MAX_WAIT": 1}
FLUSH_ONLY = {"DOC_SAVE_DEBOUNCE": 30, "DOC_SAVE_MAX_WAIT": 60}


@pytest.fixture
def people(alice, bob, make_user) -> SimpleNamespace:
    return SimpleNamespace(owner=alice, writer=bob, reader=make_user("reader", name="Reader"))


@pytest.fixture
def make_note(people):
    @database_sync_to_async
    def make(data: dict | None = None) -> Note:
        return create_note(people.owner, [people.writer], [people.reader], data)

    return make


@pytest.fixture
def instance(servers, clean_redis):
    """``instance(name, **knobs)`` -> a daphne on the shared Redis and database."""

    def start(name: str, **knobs):
        return servers(name, clean_redis, **knobs)

    return start


# --- 9. one document, three peers, two instances -------------------------------------------------


async def test_peers_on_both_instances_converge_and_every_edit_is_stored(
    instance, ypeers, clients, people, make_note
):
    a = instance("instance-A", **FAST_SAVES)
    b = instance("instance-B", **FAST_SAVES)
    note = await make_note()
    y_a = await ypeers(a, note.id, await access(people.owner), name="owner@A/yws").start()
    s_b = await sio_peer(clients, b, people.writer, note.id, "writer@B/sio")
    y_b = await ypeers(b, note.id, await access(people.writer), name="writer@B/yws").start()

    for round_ in range(3):  # concurrent edits from all three, three times
        append_text(y_a.doc, f"a{round_};")
        add_paragraph(y_b.doc, f"b{round_}")
        append_text(y_b.doc, f"b{round_};")
        await s_b.edit(lambda doc, r=round_: add_paragraph(doc, f"s{r}"))
        await s_b.edit(lambda doc, r=round_: append_text(doc, f"s{r};"))
    view = await converged(y_a, s_b, y_b)
    expected = sorted(f"{who}{r}" for who in "abs" for r in range(3))
    assert sorted_parts(view["text"]) == expected
    assert sorted(paragraphs(y_a.doc)) == sorted(f"{who}{r}" for who in "bs" for r in range(3))
    vector = state_vector(y_a.doc)

    await y_a.leave()
    await y_b.leave()
    await s_b.client.disconnect()
    stored = await until_stored(note.id, lambda doc: state_vector(doc) == vector)
    assert content(stored) == view


async def test_a_burst_of_edits_reaches_the_other_instance_whole(
    instance, ypeers, people, make_note
):
    """Edits made faster than the layer takes them are merged per editor while they wait in
    the outbox (``Coalesce``): the peer on the other instance still ends with every one."""
    a = instance("instance-A")
    b = instance("instance-B")
    note = await make_note()
    y_a = await ypeers(a, note.id, await access(people.owner), name="owner@A/yws").start()
    y_b = await ypeers(b, note.id, await access(people.writer), name="writer@B/yws").start()
    for n in range(300):
        append_text(y_a.doc, f"{n};")
    view = await converged(y_a, y_b, timeout=15)
    assert sorted_parts(view["text"]) == sorted(str(n) for n in range(300))
    await y_a.leave()
    await y_b.leave()


# --- 10. kill -9 inside the debounce window ------------------------------------------------------


async def test_killed_instance_loses_nothing_the_peer_resyncs_to_the_other(
    instance, ypeers, people, make_note
):
    a = instance("instance-A", **FLUSH_ONLY)  # A never saves on its own within the test
    b = instance("instance-B", **FAST_SAVES)
    note = await make_note()
    doc = Doc()  # the editor's document, kept across the reconnect
    first = await ypeers(a, note.id, await access(people.owner), doc=doc, name="owner@A").start()
    append_text(doc, "before the crash;")
    add_paragraph(doc, "typed on A")
    await first.barrier()  # A has applied the edits ...
    assert await stored_state(note.id) is None  # ... and saved none of them
    typed_on_a = content(doc)
    assert content(await durable_doc(note.id)) == typed_on_a  # ... but logged all of them

    await asyncio.to_thread(a.kill)  # SIGKILL: no flush, no disconnect handling
    await first.closed()
    append_text(doc, "while offline;")  # an editor keeps typing while reconnecting
    await first.leave()
    assert await stored_state(note.id) is None
    edits = (content(doc), state_vector(doc))

    # B loads the stored state plus A's log; the Provider's answer to B's step 1 re-sends
    # what only the editor had (typed while offline, never acknowledged).
    again = ypeers(b, note.id, await access(people.owner), doc=doc, name="owner@B")
    await again.start(barrier=False)
    late = await ypeers(b, note.id, await access(people.reader), name="reader@B").start()
    await eventually(lambda: (content(late.doc), state_vector(late.doc)) == edits)
    assert (content(doc), state_vector(doc)) == edits  # nothing was lost locally either

    await again.leave()
    await late.leave()
    stored = await until_stored(note.id, lambda d: state_vector(d) == edits[1])
    assert content(stored) == edits[0]


# --- 11. saves from both instances, in either order ----------------------------------------------


@pytest.mark.parametrize("first", ["A", "B"])
async def test_saves_from_both_instances_in_any_order_keep_every_edit(
    instance, ypeers, people, make_note, first
):
    # Only flushes save (last local editor leaving), so the test decides the order of saves.
    a = instance("instance-A", **FLUSH_ONLY)
    b = instance("instance-B", **FLUSH_ONLY)
    note = await make_note()
    on = {
        "A": await ypeers(a, note.id, await access(people.owner), name="owner@A").start(),
    }
    add_paragraph(on["A"].doc, "A early")  # before B has the document open
    append_text(on["A"].doc, "A0;")
    await on["A"].barrier()
    on["B"] = await ypeers(b, note.id, await access(people.writer), name="writer@B").start()

    # Concurrent edits on both instances.
    add_paragraph(on["A"].doc, "A late")
    append_text(on["A"].doc, "A1;")
    add_paragraph(on["B"].doc, "B late")
    append_text(on["B"].doc, "B1;")
    await on["A"].barrier()
    await on["B"].barrier()

    # The first instance saves (its only editor leaves); the other then edits alone (the
    # first has unloaded the document) and saves second, from a Doc that differs.
    second = "B" if first == "A" else "A"
    own = state_vector(on[first].doc)
    await on[first].leave()
    await until_stored(note.id, lambda doc: covers(state_vector(doc), own))
    add_paragraph(on[second].doc, f"{second} after")
    append_text(on[second].doc, f"{second}2;")
    own = state_vector(on[second].doc)
    await on[second].leave()
    stored = await until_stored(note.id, lambda doc: covers(state_vector(doc), own))

    assert sorted_parts(text_of(stored)) == sorted(["A0", "A1", "B1", f"{second}2"])
    assert sorted(paragraphs(stored)) == sorted(["A early", "A late", "B late", f"{second} after"])
    for peer in on.values():  # every edit each peer made itself is stored
        mine = peer.doc.client_id
        assert state_vector(stored)[mine] == state_vector(peer.doc)[mine]


# --- a late joiner on the other instance ---------------------------------------------------------


async def test_late_joiner_on_the_other_instance_gets_edits_not_yet_saved(
    instance, ypeers, clients, people, make_note
):
    """A document opened on B while A holds edits it has not saved yet (inside A's debounce
    window) must still show them to B's clients."""
    a = instance("instance-A", **FLUSH_ONLY)
    b = instance("instance-B", **FAST_SAVES)
    note = await make_note()
    editor = await ypeers(a, note.id, await access(people.owner), name="owner@A").start()
    add_paragraph(editor.doc, "typed on A, not saved yet")
    await editor.barrier()
    assert await stored_state(note.id) is None

    viewer = await ypeers(b, note.id, await access(people.reader), name="reader@B").start()
    sio_viewer = await sio_peer(clients, b, people.reader, note.id, "reader@B/sio")
    await converged(editor, viewer, sio_viewer, timeout=3)

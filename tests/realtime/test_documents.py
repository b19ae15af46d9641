"""Collaborative documents through both endpoints (WebsocketCommunicator), and persistence."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from pycrdt import Doc, Text, XmlFragment

from accounts.tokens import issue_access_token
from notes.models import Note, NoteGrant, NoteUpdate, Permission, PrincipalType
from notes.render import render_content
from notes.yjs import (
    FRAGMENT,
    append_updates,
    current_state,
    doc_from_state,
    fragment_to_prosemirror,
    load,
    load_state,
    merge_save,
    save_state,
    state_digest,
)
from realtime.documents import _managers
from realtime.protocol import yprotocol
from realtime.routing import websocket_application

pytestmark = [pytest.mark.django_db(transaction=True)]

PM = {
    "type": "doc",
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Hello"}]}],
}


@pytest.fixture
def fast_saves(settings):
    settings.CHORUS = {"DOC_SAVE_DEBOUNCE": 0.1, "DOC_SAVE_MAX_WAIT": 0.5}


@pytest.fixture
def note(alice, bob, make_user):
    note = Note.objects.create(owner=alice, title="plan", data={"content": {"json": PM}})
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.USER, user=bob, permission=Permission.WRITE
    )
    reader = make_user("reader")
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.USER, user=reader, permission=Permission.READ
    )
    note.reader = reader
    return note


def edit(doc: Doc, text: str) -> bytes:
    """Append ``text`` to the doc's Text 't'; return the update it made."""
    before = doc.get_state()
    doc.get("t", type=Text).insert(len(str(doc.get("t", type=Text))), text)
    return doc.get_update(before)


async def stored(note_id) -> Doc:
    note = await database_sync_to_async(Note.objects.get)(pk=note_id)
    return doc_from_state(bytes(note.yjs_state) if note.yjs_state else None)


async def until(predicate, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def editor(sio, user, note) -> tuple:
    """A connected Socket.IO socket that joined ``note``; returns (socket, its Doc)."""
    socket = sio()
    await socket.connected(issue_access_token(user))
    ack = await socket.call("ydoc:document:join", {"document_id": f"note:{note.id}"})
    assert "state" in ack, ack
    doc = Doc()
    doc.apply_update(bytes(ack["state"]))
    name, event = await socket.next_event()
    assert name == "ydoc:document:state" and event["state"] == ack["state"]
    return socket, doc, ack


# --- Socket.IO ydoc:* -------------------------------------------------------------------------


async def test_join_seeds_from_prosemirror_on_the_server(sio, note, alice):
    _, doc, ack = await editor(sio, alice, note)
    assert fragment_to_prosemirror(doc.get(FRAGMENT, type=XmlFragment)) == PM
    assert ack["document_id"] == f"note:{note.id}" and len(ack["sessions"]) == 1
    seeded = await stored(note.id)
    assert fragment_to_prosemirror(seeded.get(FRAGMENT, type=XmlFragment)) == PM


async def test_join_refusals(sio, note, make_user):
    stranger = await database_sync_to_async(make_user)("stranger")
    socket = sio()
    await socket.connected(issue_access_token(stranger))
    for document_id, code in (
        (f"note:{note.id}", "not_found"),  # unreadable and missing are not told apart
        ("note:00000000-0000-0000-0000-000000000000", "not_found"),
        (f"chat:{note.id}", "bad_request"),
        ("note:xyz", "bad_request"),
    ):
        ack = await socket.call("ydoc:document:join", {"document_id": document_id})
        assert ack["error"]["code"] == code, document_id
    unreadable, missing = [
        await socket.call("ydoc:document:join", {"document_id": f"note:{note_id}"})
        for note_id in (note.id, "00000000-0000-0000-0000-000000000000")
    ]
    assert unreadable == missing  # the same words too


async def test_note_underscore_id_is_canonicalised(sio, note, alice):
    socket = sio()
    await socket.connected(issue_access_token(alice))
    ack = await socket.call("ydoc:document:join", {"document_id": f"note_{note.id}"})
    assert ack["document_id"] == f"note:{note.id}"


async def test_updates_relay_to_others_with_server_identity_and_are_saved(
    sio, note, alice, bob, fast_saves
):
    a, doc_a, _ = await editor(sio, alice, note)
    b, doc_b, _ = await editor(sio, bob, note)
    name, joined = await a.next_event()
    assert name == "ydoc:user:joined" and joined["user_id"] == str(bob.id)
    update = edit(doc_a, "hi")
    ack = await a.call(
        "ydoc:document:update",
        {
            "document_id": f"note:{note.id}",
            "update": list(update),
            "user_id": str(bob.id),
            "data": {"content": {"md": "hi", "html": "<p>hi</p>"}},
        },
    )
    assert ack == {}
    name, relayed = await b.next_event()
    assert name == "ydoc:document:update"
    assert relayed["user_id"] == str(alice.id) and relayed["socket_id"]
    doc_b.apply_update(bytes(relayed["update"]))
    assert str(doc_b.get("t", type=Text)) == "hi"
    # No echo to the sender: the room's delivery that reached b is over, so the next frame a
    # gets is a later marker (b's awareness, which is never stored).
    awareness = yprotocol.encode_awareness_update([(9, 1, '{"user":{"name":"B"}}')])
    await b.call(
        "ydoc:awareness:update", {"document_id": f"note:{note.id}", "update": list(awareness)}
    )
    name, _ = json.loads((await a.recv())[2:])
    assert name == "ydoc:awareness:update"

    async def saved() -> bool:
        return str((await stored(note.id)).get("t", type=Text)) == "hi"

    async def rendered() -> bool:  # stored just after the Yjs state
        data = (await database_sync_to_async(Note.objects.get)(pk=note.id)).data
        return data["content"] == render_content(PM)  # the server's rendering, not the client's

    await until(saved)
    await until(rendered)


async def test_binary_attachment_update_is_accepted(sio, note, alice, bob):
    a, doc_a, _ = await editor(sio, alice, note)
    b, doc_b, _ = await editor(sio, bob, note)
    await a.next_event()  # bob joined
    payload = {"document_id": f"note:{note.id}", "update": {"_placeholder": True, "num": 0}}
    await a.send("451-9" + json.dumps(["ydoc:document:update", payload]))
    await a.send(edit(doc_a, "bin"))
    assert await a.recv() == "439[{}]"
    _name, relayed = await b.next_event()
    doc_b.apply_update(bytes(relayed["update"]))
    assert str(doc_b.get("t", type=Text)) == "bin"


async def test_bad_updates_are_refused_and_change_nothing(sio, note, alice, bob, settings):
    settings.CHORUS = {"DOC_MAX_UPDATE_BYTES": 64, "DOC_SAVE_DEBOUNCE": 0.05}
    a, doc_a, _ = await editor(sio, alice, note)
    b, doc_b, _ = await editor(sio, bob, note)
    await a.next_event()
    doc_id = f"note:{note.id}"
    cases = [
        ([1, 2, 3], "bad_request"),
        ([300], "bad_request"),
        ("text", "bad_request"),
        (list(edit(Doc(), "x" * 200)), "too_large"),
    ]
    for update, code in cases:
        ack = await a.call("ydoc:document:update", {"document_id": doc_id, "update": update})
        assert ack["error"]["code"] == code, update
    # A good update after them is the next thing b gets and the only change stored: the
    # refused ones were neither relayed nor applied.
    good = list(edit(doc_a, "ok"))
    assert await a.call("ydoc:document:update", {"document_id": doc_id, "update": good}) == {}
    name, relayed = json.loads((await b.recv())[2:])
    assert name == "ydoc:document:update" and relayed["user_id"] == str(alice.id)
    doc_b.apply_update(bytes(relayed["update"]))
    assert str(doc_b.get("t", type=Text)) == "ok"

    async def only_the_good_one_stored() -> bool:
        return str((await stored(note.id)).get("t", type=Text)) == "ok"

    await until(only_the_good_one_stored)


async def test_read_only_user_cannot_update(sio, note, alice, fast_saves):
    socket, doc, _ = await editor(sio, note.reader, note)
    writer, writer_doc, _ = await editor(sio, alice, note)
    ack = await socket.call(
        "ydoc:document:update", {"document_id": f"note:{note.id}", "update": list(edit(doc, "x"))}
    )
    assert ack["error"]["code"] == "forbidden"
    # A writer's update after it: what is stored is the writer's text alone.
    update = list(edit(writer_doc, "ok"))
    ack = await writer.call(
        "ydoc:document:update", {"document_id": f"note:{note.id}", "update": update}
    )
    assert ack == {}

    async def only_the_writers_text_stored() -> bool:
        return str((await stored(note.id)).get("t", type=Text)) == "ok"

    await until(only_the_writers_text_stored)


async def test_update_or_awareness_before_join_is_refused(sio, note, alice):
    socket = sio()
    await socket.connected(issue_access_token(alice))
    for event in ("ydoc:document:update", "ydoc:awareness:update", "ydoc:document:state"):
        ack = await socket.call(event, {"document_id": f"note:{note.id}", "update": [0, 0]})
        assert ack["error"]["code"] == "bad_request", event


async def test_awareness_relays_but_is_never_stored(sio, note, alice, bob, settings):
    a, _, _ = await editor(sio, alice, note)
    b, _, _ = await editor(sio, bob, note)
    await a.next_event()
    update = yprotocol.encode_awareness_update([(7, 1, '{"user":{"name":"A"}}')])
    ack = await a.call(
        "ydoc:awareness:update", {"document_id": f"note:{note.id}", "update": list(update)}
    )
    assert ack == {}
    name, relayed = await b.next_event()
    # b has sent no awareness: it gets Open WebUI's JSON form
    assert name == "ydoc:awareness:update"
    assert bytes(relayed["update"]) == b'{"7":{"user":{"name":"A"}}}'
    assert relayed["user_id"] == str(alice.id)
    bad = await a.call(
        "ydoc:awareness:update", {"document_id": f"note:{note.id}", "update": [5, 1]}
    )
    assert bad["error"]["code"] == "bad_request"
    settings.CHORUS = {"DOC_MAX_AWARENESS_BYTES": 8}
    big = await a.call(
        "ydoc:awareness:update", {"document_id": f"note:{note.id}", "update": list(update)}
    )
    assert big["error"]["code"] == "too_large"


async def test_leave_and_disconnect_tell_the_room_and_last_leave_flushes(
    sio, note, alice, bob, settings
):
    settings.CHORUS = {"DOC_SAVE_DEBOUNCE": 30, "DOC_SAVE_MAX_WAIT": 60}  # only a flush saves
    a, doc_a, _ = await editor(sio, alice, note)
    b, _, _ = await editor(sio, bob, note)
    await a.next_event()
    assert (
        await a.call(
            "ydoc:document:update",
            {"document_id": f"note:{note.id}", "update": list(edit(doc_a, "kept"))},
        )
        == {}
    )
    await b.next_event()  # the relayed update
    assert await a.call("ydoc:document:leave", {"document_id": f"note:{note.id}"}) == {}
    name, left = await b.next_event()
    assert (name, left) == (
        "ydoc:user:left",
        {"document_id": f"note:{note.id}", "user_id": str(alice.id)},
    )
    assert str((await stored(note.id)).get("t", type=Text)) == ""  # bob is still editing
    await b.close()  # disconnect of the last editor: flushed, then unloaded
    assert str((await stored(note.id)).get("t", type=Text)) == "kept"
    manager = _managers.get(asyncio.get_running_loop())
    assert manager is not None and str(note.id) not in manager.rooms


async def test_failed_save_is_retried_and_keeps_the_document(sio, note, alice, settings, caplog):
    settings.CHORUS = {"DOC_SAVE_DEBOUNCE": 0.05, "DOC_SAVE_MAX_WAIT": 0.1}
    a, doc_a, _ = await editor(sio, alice, note)

    def break_table(broken: bool) -> None:
        names = ("notes_note", "notes_note_away") if broken else ("notes_note_away", "notes_note")
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {names[0]} RENAME TO {names[1]}")

    await database_sync_to_async(break_table)(True)
    try:
        assert (
            await a.call(
                "ydoc:document:update",
                {"document_id": f"note:{note.id}", "update": list(edit(doc_a, "survives"))},
            )
            == {}
        )

        async def failed_twice() -> bool:  # the first attempt and its retry
            failures = [r for r in caplog.records if r.getMessage().startswith("Saving note")]
            return len(failures) >= 2

        await until(failed_twice, timeout=5)
        room = _managers[asyncio.get_running_loop()].rooms[str(note.id)]
        assert room.dirty and room.saves == 0
    finally:
        await database_sync_to_async(break_table)(False)

    async def saved() -> bool:
        return str((await stored(note.id)).get("t", type=Text)) == "survives"

    await until(saved, timeout=5)


async def test_a_change_whose_log_write_failed_goes_with_the_next_write(sio, note, alice, bob):
    """A failed log write (``internal_error``) leaves the change in the server's document:
    a later update that builds on it is acknowledged only once both are in the log, and
    the other editors get the first change then (found in review: it was never logged)."""
    a, doc_a, _ = await editor(sio, alice, note)
    b, doc_b, _ = await editor(sio, bob, note)
    document = {"document_id": f"note:{note.id}"}

    def hide_log(hidden: bool) -> None:
        names = ("notes_noteupdate", "log_away") if hidden else ("log_away", "notes_noteupdate")
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {names[0]} RENAME TO {names[1]}")

    await database_sync_to_async(hide_log)(True)
    try:
        ack = await a.call(
            "ydoc:document:update", {**document, "update": list(edit(doc_a, "one;"))}
        )
        assert ack["error"]["code"] == "internal_error", ack
    finally:
        await database_sync_to_async(hide_log)(False)
    ack = await a.call("ydoc:document:update", {**document, "update": list(edit(doc_a, "two;"))})
    assert ack == {}

    @database_sync_to_async
    def logged_text() -> str:
        return str(doc_from_state(current_state(note.id)).get("t", type=Text))

    assert await logged_text() == "one;two;"  # both durable, though nothing was saved

    for _ in range(2):  # "one;" (now that it is durable), then "two;"
        name, event = await b.next_event(timeout=5)
        while name != "ydoc:document:update":
            name, event = await b.next_event(timeout=5)
        doc_b.apply_update(bytes(event["update"]))
    assert str(doc_b.get("t", type=Text)) == "one;two;"


# --- persistence --------------------------------------------------------------------------------


def test_merge_save_keeps_every_edit_in_any_order(note):
    base = doc_from_state(None)
    one, two = Doc(), Doc()
    one.apply_update(base.get_update())
    two.apply_update(base.get_update())
    edit(one, "A")
    edit(two, "B")
    for first, second in ((one, two), (two, one)):
        Note.objects.filter(pk=note.id).update(yjs_state=None)
        merge_save(note.id, first.get_update())
        merge_save(note.id, second.get_update())
        merge_save(note.id, first.get_update())  # an older state saved again changes nothing
        text = str(
            doc_from_state(bytes(Note.objects.get(pk=note.id).yjs_state)).get("t", type=Text)
        )
        assert sorted(text) == ["A", "B"]


def test_a_save_without_merge_keeps_the_log_rows_it_was_not_promised(note):
    """``save_state``'s shortcut (one process, its last save still stored) stores the state
    as given and deletes only the log rows up to ``upto``: a row written after the state
    was taken stays, and a load still has it."""
    doc = doc_from_state(load_state(note.id))
    first = save_state(note.id, doc.get_update())
    assert first.merged and first.digest == state_digest(first.state)
    [upto] = set(append_updates([(str(note.id), edit(doc, "in"))]))
    state = doc.get_update()  # holds "in", not what follows
    [later] = set(append_updates([(str(note.id), edit(doc, "-late"))]))
    saved = save_state(note.id, state, first.digest, upto)
    assert not saved.merged and saved.state == state
    assert list(NoteUpdate.objects.filter(note_id=note.id).values_list("id", flat=True)) == [later]
    assert str(doc_from_state(load_state(note.id)).get("t", type=Text)) == "in-late"


def test_what_a_load_read_is_what_the_first_save_may_skip_merging(note):
    """``load`` names the stored state and the log rows it read: a save of a state holding
    them stores it as it is and deletes exactly those rows."""
    doc = doc_from_state(load_state(note.id))
    merge_save(note.id, doc.get_update())
    append_updates([(str(note.id), edit(doc, "a"))])
    append_updates([(str(note.id), edit(doc, "b"))])
    loaded = load(note.id)
    assert loaded.digest == state_digest(bytes(Note.objects.get(pk=note.id).yjs_state))
    assert loaded.upto == NoteUpdate.objects.filter(note_id=note.id).latest("id").id
    room_doc = doc_from_state(loaded.state)
    assert str(room_doc.get("t", type=Text)) == "ab"
    [later] = set(append_updates([(str(note.id), edit(doc, "c"))]))  # not in the load
    room_doc.apply_update(doc.get_update())
    saved = save_state(note.id, room_doc.get_update(), loaded.digest, loaded.upto)
    assert not saved.merged
    assert list(NoteUpdate.objects.filter(note_id=note.id).values_list("id", flat=True)) == [later]
    assert str(doc_from_state(load_state(note.id)).get("t", type=Text)) == "abc"


def test_a_save_without_merge_is_refused_when_the_stored_state_moved(note):
    """Anything stored since the caller's last save (a REST content change, another
    instance) fails the digest check: the save merges, and keeps both."""
    doc = doc_from_state(load_state(note.id))
    first = save_state(note.id, doc.get_update())
    other = doc_from_state(first.state)  # another writer, from the same stored state
    edit(other, "B")
    merge_save(note.id, other.get_update())
    edit(doc, "A")
    saved = save_state(note.id, doc.get_update(), first.digest, 0)
    assert saved.merged
    text = str(doc_from_state(bytes(Note.objects.get(pk=note.id).yjs_state)).get("t", type=Text))
    assert sorted(text) == ["A", "B"]


async def test_many_saves_during_steady_edits_lose_nothing(sio, note, alice, bob, settings):
    """Edits acknowledged while saves come and go (each a shortcut save after the first):
    the database holds every one, and after the last editor leaves, the stored state alone."""
    settings.CHORUS = {
        "DOC_SAVE_DEBOUNCE": 0.02,
        "DOC_SAVE_MAX_WAIT": 0.05,
        "EVENT_RATE": 1000.0,
        "EVENT_BURST": 1000,
    }
    a, doc_a, _ = await editor(sio, alice, note)
    typed = ""
    for i in range(60):
        piece = f"{i % 10}"
        typed += piece
        update = edit(doc_a, piece)
        ack = await a.call(
            "ydoc:document:update", {"document_id": f"note:{note.id}", "update": list(update)}
        )
        assert ack == {}
        if i % 7 == 0:
            await asyncio.sleep(0.06)  # let a save run
    room = _managers[asyncio.get_running_loop()].rooms[str(note.id)]
    assert room.saves >= 3
    state = await database_sync_to_async(current_state)(note.id)
    assert str(doc_from_state(state).get("t", type=Text)) == typed
    await a.close()
    assert str((await stored(note.id)).get("t", type=Text)) == typed
    assert not await database_sync_to_async(NoteUpdate.objects.filter(note_id=note.id).exists)()


# --- y-websocket --------------------------------------------------------------------------------


async def yws(note, user=None, path: str | None = None) -> WebsocketCommunicator:
    url = path or f"/ws/yjs/note:{note.id}"
    if user is not None:
        url += f"?token={issue_access_token(user)}"
    comm = WebsocketCommunicator(websocket_application, url)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_yws_refusals(note, make_user):
    anonymous = await yws(note)
    assert (await anonymous.receive_output())["code"] == 4401
    stranger = await yws(note, await database_sync_to_async(make_user)("stranger"))
    assert (await stranger.receive_output())["code"] == 4403
    bad = await yws(note, note.owner, f"/ws/yjs/chat:{note.id}")
    assert (await bad.receive_output())["code"] == 4400


async def test_yws_sync_and_cross_endpoint_relay(sio, note, alice, bob, fast_saves):
    comm = await yws(note, alice)
    step1 = yprotocol.decode_message(await comm.receive_from())
    assert (step1.kind, step1.subtype) == (yprotocol.MESSAGE_SYNC, yprotocol.SYNC_STEP1)
    peer = Doc()
    await comm.send_to(bytes_data=yprotocol.encode_sync_step1(peer.get_state()))
    step2 = yprotocol.decode_message(await comm.receive_from())
    assert step2.subtype == yprotocol.SYNC_STEP2
    peer.apply_update(step2.payload)
    assert fragment_to_prosemirror(peer.get(FRAGMENT, type=XmlFragment)) == PM
    b, doc_b, _ = await editor(sio, bob, note)
    await comm.send_to(bytes_data=yprotocol.encode_sync_update(edit(peer, "yws")))
    name, relayed = await b.next_event()
    assert name == "ydoc:document:update" and relayed["user_id"] == str(alice.id)
    doc_b.apply_update(bytes(relayed["update"]))
    await b.call(
        "ydoc:document:update",
        {"document_id": f"note:{note.id}", "update": list(edit(doc_b, "+sio"))},
    )
    message = yprotocol.decode_message(await comm.receive_from())
    assert message.subtype == yprotocol.SYNC_UPDATE
    peer.apply_update(message.payload)
    assert str(peer.get("t", type=Text)) == "yws+sio"
    await comm.disconnect()


async def test_yws_read_only_writes_are_dropped_and_awareness_nulled_on_close(
    sio, note, alice, fast_saves
):
    a, doc_a, _ = await editor(sio, alice, note)
    comm = await yws(note, note.reader)
    await comm.receive_from()  # step 1
    awareness = yprotocol.encode_awareness_update([(42, 3, '{"user":"r"}')])
    await comm.send_to(bytes_data=yprotocol.encode_awareness(awareness))
    name, relayed = await a.next_event()
    assert name == "ydoc:awareness:update"
    await comm.send_to(bytes_data=yprotocol.encode_sync_update(edit(Doc(), "nope")))
    # A marker on the same connection (its messages are handled in order): the next frame a
    # gets is that awareness update, so the write before it was not relayed.
    awareness = yprotocol.encode_awareness_update([(42, 4, '{"user":"r2"}')])
    await comm.send_to(bytes_data=yprotocol.encode_awareness(awareness))
    name, relayed = json.loads((await a.recv())[2:])
    assert name == "ydoc:awareness:update" and b"r2" in bytes(relayed["update"])
    await comm.disconnect()
    name, relayed = await a.next_event()
    assert name == "ydoc:awareness:update"
    assert bytes(relayed["update"]) == b'{"42":{}}'  # gone, in Open WebUI's JSON form
    # A writer's update after it: what is stored is the writer's text alone.
    update = list(edit(doc_a, "ok"))
    ack = await a.call("ydoc:document:update", {"document_id": f"note:{note.id}", "update": update})
    assert ack == {}

    async def only_the_writers_text_stored() -> bool:
        return str((await stored(note.id)).get("t", type=Text)) == "ok"

    await until(only_the_writers_text_stored)


async def test_yws_new_client_gets_known_awareness_and_query_is_answered(note, alice, bob):
    first = await yws(note, alice)
    await first.receive_from()
    awareness = yprotocol.encode_awareness_update([(9, 1, '{"n":1}')])
    await first.send_to(bytes_data=yprotocol.encode_awareness(awareness))
    second = await yws(note, bob)
    await second.receive_from()  # step 1
    known = yprotocol.decode_message(await second.receive_from())
    assert known.kind == yprotocol.MESSAGE_AWARENESS
    assert yprotocol.decode_awareness_update(known.payload) == [(9, 1, '{"n":1}')]
    await second.send_to(bytes_data=yprotocol.encode_query_awareness())
    again = yprotocol.decode_message(await second.receive_from())
    assert again.payload == known.payload
    await first.disconnect()
    await second.disconnect()


async def test_yws_bad_and_oversized_frames_close(note, alice, settings):
    comm = await yws(note, alice)
    await comm.receive_from()
    await comm.send_to(bytes_data=b"\x09\x00")
    assert (await comm.receive_output())["code"] == 4400
    settings.CHORUS = {"DOC_MAX_BYTES": 10}
    comm = await yws(note, alice)
    await comm.receive_from()
    await comm.send_to(bytes_data=yprotocol.encode_sync_update(b"\x00" * (70 * 1024)))
    assert (await comm.receive_output())["code"] == 1009


async def test_grant_changes_reach_live_editors(sio, note, alice, bob):
    """Write downgraded to read refuses updates; no access left lets the editor go."""
    from rest_framework.test import APIClient

    socket, _doc, _ = await editor(sio, bob, note)
    comm = await yws(note, bob)
    await comm.receive_from()  # step 1
    owner = APIClient()
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_access_token(alice)}")
    grant = await database_sync_to_async(NoteGrant.objects.get)(note=note, user=bob)
    url = f"/api/notes/{note.id}/grants/"
    response = await database_sync_to_async(owner.post)(
        url,
        {"principal_type": "user", "principal_id": str(bob.id), "permission": "read"},
        format="json",
    )
    assert response.status_code == 200, response.content

    async def downgraded() -> bool:
        ack = await socket.call(
            "ydoc:document:update",
            {"document_id": f"note:{note.id}", "update": list(edit(Doc(), "x"))},
        )
        return ack.get("error", {}).get("code") == "forbidden"

    await until(downgraded)
    response = await database_sync_to_async(owner.delete)(f"{url}{grant.id}/")
    assert response.status_code == 204
    name, data = await socket.next_event()
    while name != "error":  # skip the note's own events until the revoke arrives
        name, data = await socket.next_event()
    assert data["code"] == "forbidden" and data["document_id"] == f"note:{note.id}"
    ack = await socket.call("ydoc:document:state", {"document_id": f"note:{note.id}"})
    assert ack["error"]["code"] == "bad_request"  # no longer joined
    while (output := await comm.receive_output())["type"] != "websocket.close":
        pass
    assert output["code"] == 4403


async def test_concurrent_joins_share_one_load(note):
    from realtime.documents import get_manager

    rooms = await asyncio.gather(*(get_manager().open(note.id) for _ in range(8)))
    assert len({id(room) for room in rooms}) == 1


async def test_unreadable_stored_state_fails_the_join_and_is_never_overwritten(sio, note, alice):
    garbage = b"\xff\x01garbage"
    await database_sync_to_async(Note.objects.filter(pk=note.id).update)(yjs_state=garbage)
    socket = sio()
    await socket.connected(issue_access_token(alice))
    ack = await socket.call("ydoc:document:join", {"document_id": f"note:{note.id}"})
    assert ack["error"]["code"] == "internal_error"
    manager = _managers[asyncio.get_running_loop()]
    assert str(note.id) not in manager.rooms
    stored_note = await database_sync_to_async(Note.objects.get)(pk=note.id)
    assert bytes(stored_note.yjs_state) == garbage

"""``ydoc:document:update`` with a ``data.content``: checked before anything is accepted.

Content the rules refuse (notes/content.py) is acked ``bad_request`` / ``too_large`` and the
update that carried it is not applied, relayed or stored; a number that overflows to
infinity does not even parse (close 4400). Through WebsocketCommunicator; the same payloads
against a real daphne are in tests/live/test_content_live.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, Text

from accounts.tokens import issue_access_token
from notes.models import Note, NoteGrant, Permission, PrincipalType
from notes.yjs import doc_from_state
from realtime.documents import _managers

pytestmark = [pytest.mark.django_db(transaction=True)]

PM = {"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "a"}]}]}


@pytest.fixture
def note(alice, bob):
    note = Note.objects.create(owner=alice, title="plan", data={"content": {"md": "before"}})
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.USER, user=bob, permission=Permission.WRITE
    )
    return note


@pytest.fixture
def content_limit(settings):
    settings.CHORUS = {
        "DOC_MAX_CONTENT_BYTES": 1_000,
        "DOC_SAVE_DEBOUNCE": 0.05,
        "DOC_SAVE_MAX_WAIT": 0.1,
    }


def typed(text: str) -> list[int]:
    """A standalone Yjs update inserting ``text`` into the Text ``t``, as an int list."""
    doc = Doc()
    doc.get("t", type=Text).insert(0, text)
    return list(doc.get_update())


async def joined(sio, user, note):
    socket = sio()
    await socket.connected(issue_access_token(user))
    ack = await socket.call("ydoc:document:join", {"document_id": f"note:{note.id}"})
    assert "state" in ack, ack
    return socket


@database_sync_to_async
def stored(note_id) -> tuple[str, dict]:
    """(text of the stored Yjs document, stored ``data``)."""
    state, data = Note.objects.values_list("yjs_state", "data").get(pk=note_id)
    return str(doc_from_state(bytes(state) if state else None).get("t", type=Text)), data


def server_text(note) -> str:
    room = _managers[asyncio.get_running_loop()].rooms[str(note.id)]
    return str(room.doc.get("t", type=Text))


REFUSED = [
    ({"md": "x\x00y"}, "bad_request"),
    ({"html": 5}, "bad_request"),
    ({"json": {"type": "paragraph"}}, "bad_request"),
    ({"json": {"type": "doc", "content": [{"type": "p", "attrs": {"n": 2**64}}]}}, "bad_request"),
    ({"json": {"type": "doc", "content": [{"type": "p", "attrs": ["x"]}]}}, "bad_request"),
    ({"md": "x" * 2_000}, "too_large"),
]


@pytest.mark.parametrize(("content", "code"), REFUSED)
async def test_refused_content_refuses_the_whole_update(
    sio, note, alice, bob, content_limit, content, code
):
    writer = await joined(sio, bob, note)
    watcher = await joined(sio, alice, note)
    ack = await writer.call(
        "ydoc:document:update",
        {"document_id": f"note:{note.id}", "update": typed("evil"), "data": {"content": content}},
    )
    assert set(ack) == {"error"} and ack["error"]["code"] == code, ack
    assert server_text(note) == ""  # not applied to the server's document

    # The same socket goes on: an acceptable update is applied and stored; its content is
    # checked and ignored (the server renders the content from the document, issue 15: this
    # one's fragment is empty, so the legacy md stays).
    ack = await writer.call(
        "ydoc:document:update",
        {
            "document_id": f"note:{note.id}",
            "update": typed("ok"),
            "data": {"content": {"json": PM}},
        },
    )
    assert ack == {}
    # The first update the watcher gets is this one: the refused one was not relayed.
    name, relayed = await watcher.next_event()
    while name != "ydoc:document:update":
        name, relayed = await watcher.next_event()
    seen = Doc()
    seen.apply_update(bytes(relayed["update"]))
    assert str(seen.get("t", type=Text)) == "ok"
    # What is stored is this update alone, and the legacy md: the refused one was not stored.
    deadline = asyncio.get_running_loop().time() + 3
    while await stored(note.id) != ("ok", {"content": {"md": "before"}}):
        assert asyncio.get_running_loop().time() < deadline, await stored(note.id)
        await asyncio.sleep(0.05)


async def test_bytes_in_content_from_a_binary_attachment_are_bad_request(
    sio, note, bob, content_limit
):
    writer = await joined(sio, bob, note)
    payload = {
        "document_id": f"note:{note.id}",
        "update": typed("evil"),
        "data": {"content": {"json": {"type": "doc", "x": {"_placeholder": True, "num": 0}}}},
    }
    await writer.send("451-7" + json.dumps(["ydoc:document:update", payload]))
    await writer.send(b"\x00\x01binary")
    frame = await writer.recv()
    while not frame.startswith("437["):
        frame = await writer.recv()
    assert json.loads(frame[3:])[0]["error"]["code"] == "bad_request"
    assert server_text(note) == ""


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
async def test_a_number_that_overflows_closes_the_socket_4400(sio, note, alice, bob, number):
    writer = await joined(sio, bob, note)
    watcher = await joined(sio, alice, note)
    payload = {
        "document_id": f"note:{note.id}",
        "update": typed("evil"),
        "data": {"content": {"json": {"type": "doc", "attrs": {"n": "NUMBER"}}}},
    }
    frame = "427" + json.dumps(["ydoc:document:update", payload]).replace('"NUMBER"', number)
    assert number in frame  # literally on the wire: json.dumps would write inf as Infinity
    await writer.send(frame)
    assert await writer.closed_with() == 4400
    assert server_text(note) == ""
    # The next update the watcher gets is a later one: the refused one was not relayed.
    other = await joined(sio, bob, note)
    ack = await other.call(
        "ydoc:document:update", {"document_id": f"note:{note.id}", "update": typed("ok")}
    )
    assert ack == {}
    name, relayed = await watcher.next_event()
    while name != "ydoc:document:update":
        name, relayed = await watcher.next_event()
    seen = Doc()
    seen.apply_update(bytes(relayed["update"]))
    assert str(seen.get("t", type=Text)) == "ok"

"""Nothing a client sends can stop a note being saved (issue 14, point 3), on a real daphne.

On a note two editors are typing in — the owner over y-websocket, another writer over
Socket.IO who sent the rendered ``data.content`` with an update as Open WebUI does — a third
user with a write grant sends one hostile ``ydoc:document:update`` by hand (a raw Engine.IO
socket: ``1e999`` must be on the wire literally, which python-socketio would not write):

- ``1e999`` in ``content.json``: does not parse, close 4400 (docs/protocol.md §3);
- ``"x\\u0000y"`` as ``md``: ``bad_request`` (PostgreSQL cannot store NUL: in the services pass
  this is the payload that used to stop every save);
- ``content.json`` nested deeper than a Socket.IO packet may be: close 4400; deeper than
  storable (64) but within a packet: ``bad_request``;
- a content over ``DOC_MAX_CONTENT_BYTES``: ``too_large``.

Each is refused and its Yjs update is neither applied nor relayed nor stored; the editors'
text reaches the database (``Note.yjs_state``, polled through the ORM) and survives a SIGTERM
and a new daphne. A last test makes the database refuse every content write (a trigger) and
shows the Yjs state is saved regardless. Runs on SQLite (pass 1) and PostgreSQL (pass 2).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from pycrdt import Doc
from websockets.exceptions import ConnectionClosed

from notes.models import Note
from tests.live.doc_peers import (
    SioPeer,
    add_paragraph,
    append_text,
    converged,
    create_note,
    prosemirror,
    sio_peer,
    sorted_parts,
    state_vector,
    stored_data,
    text_of,
    until_stored,
)
from tests.live.harness import DaphneServer, RawSocket, access, eventually

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: Saves soon after an edit, and a small content limit (the oversize case stays one frame).
KNOBS = {"DOC_SAVE_DEBOUNCE": 0.2, "DOC_SAVE_MAX_WAIT": 1, "DOC_MAX_CONTENT_BYTES": 20_000}
#: The attacker's text: it must never appear anywhere.
EVIL = "EVIL;"


def deep(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: name -> (the content, the expected answer: ("close", code) or ("ack", error code)).
#: ``"NUMBER"`` is written to the wire as the bare number 1e999.
PAYLOADS = {
    "json-1e999": ({"json": {"type": "doc", "attrs": {"n": "NUMBER"}}}, ("close", 4400)),
    "md-nul": ({"md": "x\x00y", "json": {"type": "doc"}}, ("ack", "bad_request")),
    # 80 arrays deep: past the 72 a Socket.IO packet may nest (the codec's limit, §3).
    "json-deep": ({"json": {"type": "doc", "attrs": {"deep": deep(80)}}}, ("close", 4400)),
    # 64 arrays deep: a packet the codec reads, but content deeper than storable (64).
    "json-deep-content": (
        {"json": {"type": "doc", "attrs": {"deep": deep(64)}}},
        ("ack", "bad_request"),
    ),
    "oversize": ({"md": "x" * 30_000, "json": {"type": "doc"}}, ("ack", "too_large")),
}


@pytest.fixture
def people(alice, bob, carol) -> SimpleNamespace:
    """owner (alice, y-websocket); editor (carol, Socket.IO) and attacker (bob), write grants."""
    return SimpleNamespace(owner=alice, editor=carol, attacker=bob)


@pytest.fixture
def make_note(people):
    @database_sync_to_async
    def make() -> Note:
        return create_note(people.owner, [people.editor, people.attacker])

    return make


def rendered(doc: Doc) -> dict:
    """The ``data.content`` an editor renders from its document."""
    return {"md": text_of(doc), "json": prosemirror(doc)}


async def type_with_content(editor: SioPeer, text: str) -> dict:
    """The Socket.IO editor types ``text`` and sends the update with its rendered content;
    returns that content."""
    update = append_text(editor.doc, text)
    content = rendered(editor.doc)
    ack = await editor.send(update, data={"content": content})
    assert ack == {}, ack
    return content


def update_frame(note_id: object, content: dict, ack_id: int) -> str:
    """``42<ack id>["ydoc:document:update", …]`` carrying a standalone update that inserts
    ``EVIL``, with ``content`` (and the bare number ``1e999`` for ``"NUMBER"``)."""
    doc = Doc()
    payload = {
        "document_id": f"note:{note_id}",
        "update": list(append_text(doc, EVIL)),
        "data": {"content": content},
    }
    text = json.dumps(["ydoc:document:update", payload]).replace('"NUMBER"', "1e999")
    return f"42{ack_id}{text}"


async def raw_editor(raw: RawSocket, token: str, note_id: object) -> RawSocket:
    """A hand-spoken socket that connected and joined the note's document."""
    await raw.handshake(token)
    await raw.ws.send(
        "421" + json.dumps(["ydoc:document:join", {"document_id": f"note:{note_id}"}])
    )
    reply = await raw.next_frame(lambda f: isinstance(f, str) and f.startswith("431["))
    assert "state" in json.loads(reply[3:])[0], reply
    return raw


async def answer(raw: RawSocket, frame: str, ack_id: int) -> tuple[str, object]:
    """Send ``frame``; ``("ack", error code or None)`` or ``("close", close code)``."""
    await raw.ws.send(frame)
    prefix = f"43{ack_id}["
    try:
        reply = await raw.next_frame(lambda f: isinstance(f, str) and f.startswith(prefix))
    except ConnectionClosed as closed:
        return "close", closed.rcvd.code if closed.rcvd else None
    ack = json.loads(reply[len(prefix) - 1 :])[0]
    return "ack", (ack.get("error") or {}).get("code")


async def restart_and_read(
    servers, server: DaphneServer, note_id: object, ypeers, token: str
) -> Doc:
    """SIGTERM ``server`` (it flushes), start a new daphne; the document a fresh
    y-websocket peer receives there."""
    await asyncio.to_thread(server.stop)
    assert server.process.returncode != -signal.SIGKILL, "daphne did not exit on SIGTERM"
    restarted = servers("daphne-restarted", **KNOBS)
    fresh = await ypeers(restarted, note_id, token, name="after-restart").start()
    return fresh.doc


def holds(*parts: str):
    """Predicate on a Doc: its Text ``t`` holds each of ``parts`` (``;``-separated)."""
    return lambda doc: set(parts) <= set(sorted_parts(text_of(doc)))


@pytest.mark.parametrize("case", PAYLOADS)
async def test_a_hostile_content_is_refused_and_the_note_keeps_saving(
    servers, ypeers, clients, raw_sockets, people, make_note, case
):
    content, expected = PAYLOADS[case]
    server = servers("daphne", **KNOBS)
    note = await make_note()
    owner_token = await access(people.owner)
    typist = await ypeers(server, note.id, owner_token, name="owner@yws").start()
    editor = await sio_peer(clients, server, people.editor, note.id, "editor@sio")
    append_text(typist.doc, "y1;")
    last_content = await type_with_content(editor, "s1;")
    await converged(typist, editor)

    attacker = await raw_editor(raw_sockets(server), await access(people.attacker), note.id)
    got = await answer(attacker, update_frame(note.id, content, 7), 7)  # checked below

    # First what matters most: the editors' text reaches the database and survives a restart.
    # They send no content now (y-websocket clients never do): a content the server had
    # taken from the attacker would stay the newest one.
    append_text(typist.doc, "y2;")
    await editor.edit(lambda doc: append_text(doc, "s2;"))
    await converged(typist, editor)
    stored = await until_stored(note.id, holds("s1", "s2", "y1", "y2"), timeout=10)
    vector = state_vector(typist.doc)
    append_text(typist.doc, "y3;")  # typed just before the deploy: saved by the SIGTERM flush
    await typist.barrier()
    relayed = [bytes(u["update"]) for u in editor.relayed()] + typist.channel.relayed()
    after = await restart_and_read(servers, server, note.id, ypeers, owner_token)
    assert holds("s1", "s2", "y1", "y2", "y3")(after), text_of(after)

    # And the hostile update was refused as documented, and nothing of it was accepted:
    # not applied, not relayed, not stored, its content neither.
    assert got == expected
    assert sorted_parts(text_of(after)) == ["s1", "s2", "y1", "y2", "y3"]
    assert sorted_parts(text_of(stored)) == ["s1", "s2", "y1", "y2"]
    assert state_vector(stored) == vector
    assert relayed and not any(EVIL.encode() in update for update in relayed)
    # No client's content is stored (issue 15): the server renders it from the document,
    # whose ``prosemirror`` fragment these editors left empty, so there is none.
    assert last_content["md"] and "content" not in await stored_data(note.id)


# --- the database refuses the content: the state is saved all the same ---------------------

_TRIGGER = "h2_test_refuse_content"
_SQLITE_TRIGGER = f"""
CREATE TRIGGER {_TRIGGER} BEFORE UPDATE OF data ON {{table}}
WHEN json_extract(NEW.data, '$.content') IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'content refused by the test'); END
"""
_POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data ? 'content' THEN
    RAISE EXCEPTION 'content refused by the test' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$
"""
_POSTGRES_TRIGGER = f"""
CREATE TRIGGER {_TRIGGER} BEFORE UPDATE OF data ON {{table}}
FOR EACH ROW EXECUTE FUNCTION {_TRIGGER}()
"""


@pytest.fixture
def content_writes_refused(transactional_db) -> Iterator[None]:
    """A trigger makes the database refuse every write of a ``data.content`` to a note."""
    table = Note._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(_SQLITE_TRIGGER.format(table=table))
        else:
            cursor.execute(_POSTGRES_FUNCTION)
            cursor.execute(_POSTGRES_TRIGGER.format(table=table))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON {table}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {_TRIGGER}()")


async def test_a_content_the_database_refuses_never_costs_the_yjs_state(
    content_writes_refused, servers, ypeers, clients, people, make_note
):
    server = servers("daphne", **KNOBS)
    note = await make_note()
    owner_token = await access(people.owner)
    typist = await ypeers(server, note.id, owner_token, name="owner@yws").start()
    editor = await sio_peer(clients, server, people.editor, note.id, "editor@sio")
    append_text(typist.doc, "y1;")
    add_paragraph(typist.doc, "secret-paragraph")  # content the server renders (and logs not)
    await type_with_content(editor, "s1-secret-rendered;")
    await converged(typist, editor)

    stored = await until_stored(
        note.id, lambda doc: sorted_parts(text_of(doc)) == ["s1-secret-rendered", "y1"], timeout=10
    )
    assert state_vector(stored) == state_vector(typist.doc)
    assert "content" not in await stored_data(note.id)  # the database refused it
    warned = f"Note {note.id}: the rendered content was not stored"
    await eventually(lambda: warned in server.log_tail(400), timeout=5)
    assert "s1-secret-rendered" not in server.log_tail(400)  # the content is never logged
    assert "secret-paragraph" not in server.log_tail(400)

    append_text(typist.doc, "y2;")
    await typist.barrier()
    after = await restart_and_read(servers, server, note.id, ypeers, owner_token)
    assert sorted_parts(text_of(after)) == ["s1-secret-rendered", "y1", "y2"]

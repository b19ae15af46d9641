"""REST shows the document (issue 15, point 3), on a real daphne.

The rich document (headings, marks, nested and ordered lists with attributes, code blocks, a
blockquote, a hard break, a rule, task items, emoji, CJK — tests/notes/rich_document.py) is
created over REST as a Tiptap editor writes it, edited by a y-websocket peer (a pycrdt ``Doc``
changing the ``prosemirror`` XmlFragment: text inserted into the heading, paragraphs added),
and saved by the server (debounced, then by the SIGTERM flush). ``GET /api/notes/<id>/`` then
shows exactly the editor's document — ``data.content.json`` equal to the peer's JSON, md and
html rendered from it — with ``updated_at`` moved, so ``GET /api/notes/`` (``-updated_at``)
lists it ahead of a note created after it; all of it survives a restart. A save that changes
nothing in the document leaves ``updated_at`` alone. A Socket.IO editor's ``data.content`` is
checked and then ignored. Runs on SQLite (pass 1) and PostgreSQL (pass 2).
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from pycrdt import Doc, XmlFragment

from notes.yjs import FRAGMENT
from tests.live.doc_peers import (
    add_paragraph,
    append_text,
    prosemirror,
    sio_peer,
    text_of,
    until_stored,
)
from tests.live.harness import DaphneServer, access, eventually
from tests.notes.rich_document import (
    RICH,
    RICH_HTML,
    RICH_MD,
    as_tiptap_writes_it,
    para,
    rich,
    text,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: Saves soon after an edit.
FAST_SAVES = {"DOC_SAVE_DEBOUNCE": 0.2, "DOC_SAVE_MAX_WAIT": 1}
#: No debounced save within a test: only a flush (last leave, SIGTERM) saves.
FLUSH_ONLY = {"DOC_SAVE_DEBOUNCE": 30, "DOC_SAVE_MAX_WAIT": 60}

EDIT = " — edited ✍️"
ADDED = "added 段落 🎉"
LAST = "typed just before the deploy"


async def get(server: DaphneServer, token: str, path: str) -> object:
    status, body = await server.arequest("GET", path, token=token)
    assert status == 200, (status, body)
    return body


async def create(server: DaphneServer, token: str, title: str, content: dict) -> dict:
    body = {"title": title, "data": {"content": content}}
    status, note = await server.arequest("POST", "/api/notes/", token=token, body=body)
    assert status == 201, (status, note)
    return note


async def listed(server: DaphneServer, token: str) -> list[str]:
    """Note ids as ``GET /api/notes/`` lists them (most recently updated first)."""
    return [note["id"] for note in await get(server, token, "/api/notes/")]


async def shown(server: DaphneServer, token: str, note_id: str, json: dict) -> dict:
    """Poll ``GET /api/notes/<id>/`` until its ``data.content.json`` is ``json``."""
    found: list[dict] = []

    async def probe() -> bool:
        note = await get(server, token, f"/api/notes/{note_id}/")
        found[:] = [note]
        return note["data"]["content"]["json"] == json

    try:
        await eventually(probe, timeout=10, every=0.1)
    except AssertionError:
        raise AssertionError(f"REST never showed the document: {found[0]['data']}") from None
    return found[0]


def edit_heading_and_add_paragraph(doc: Doc) -> None:
    """The editor's change: text appended to the first heading, a paragraph at the end."""
    heading = doc.get(FRAGMENT, type=XmlFragment).children[0]
    run = heading.children[0]
    run.insert(len(run), EDIT)  # pycrdt counts UTF-8 bytes
    add_paragraph(doc, ADDED)


def edited() -> dict:
    """``RICH`` with ``edit_heading_and_add_paragraph`` applied, in JSON."""
    doc = rich()
    doc["content"][0]["content"][0]["text"] += EDIT
    doc["content"].append(para(text(ADDED)))
    return doc


async def test_rest_shows_the_document_edited_over_y_websocket(servers, ypeers, alice):
    server = servers("daphne", **FAST_SAVES)
    token = await access(alice)
    client_content = {"md": "client md", "html": "<p>client</p>", "json": as_tiptap_writes_it(RICH)}
    note = await create(server, token, "rich", client_content)
    # Created: the server's rendering of the seeded document, not what the client sent.
    assert note["data"]["content"] == {"md": RICH_MD, "html": RICH_HTML, "json": RICH}
    later = await create(server, token, "created later", {"json": {"type": "doc"}})
    assert await listed(server, token) == [later["id"], note["id"]]

    peer = await ypeers(server, note["id"], token, name="editor@yws").start()
    assert prosemirror(peer.doc) == RICH  # the editor loaded the seeded document
    edit_heading_and_add_paragraph(peer.doc)
    editors_json = prosemirror(peer.doc)
    assert editors_json == edited()
    await peer.barrier()

    # Saved (debounced): REST shows the editor's document, rendered, and moved up the list.
    shown_note = await shown(server, token, note["id"], editors_json)
    md = RICH_MD.replace("# Plan 🚀 計画", f"# Plan 🚀 計画{EDIT}", 1) + f"\n\n{ADDED}"
    html = RICH_HTML.replace("計画</h1>", f"計画{EDIT}</h1>", 1) + f"<p>{ADDED}</p>"
    assert shown_note["data"]["content"] == {"md": md, "html": html, "json": editors_json}
    assert shown_note["updated_at"] > note["updated_at"]
    assert await listed(server, token) == [note["id"], later["id"]]

    # Typed just before a deploy: the SIGTERM flush saves and renders it; a new daphne shows it.
    add_paragraph(peer.doc, LAST)
    editors_json = prosemirror(peer.doc)
    await peer.barrier()
    await asyncio.to_thread(server.stop)
    assert server.process.returncode != -signal.SIGKILL, "daphne did not exit on SIGTERM"
    restarted = servers("daphne-restarted", **FLUSH_ONLY)
    after = await get(restarted, token, f"/api/notes/{note['id']}/")
    assert after["data"]["content"] == {
        "md": f"{md}\n\n{LAST}",
        "html": f"{html}<p>{LAST}</p>",
        "json": editors_json,
    }
    assert after["updated_at"] > shown_note["updated_at"]
    assert await listed(restarted, token) == [note["id"], later["id"]]

    # A save that changes nothing in the document (only another shared type) moves nothing.
    other = await ypeers(restarted, note["id"], token, name="after@yws").start()
    assert prosemirror(other.doc) == editors_json
    append_text(other.doc, "not content;")
    await other.leave()  # the last editor leaving flushes the save
    await until_stored(note["id"], lambda doc: text_of(doc) == "not content;", timeout=10)
    assert await get(restarted, token, f"/api/notes/{note['id']}/") == after


async def test_a_socketio_editors_content_is_checked_and_ignored(servers, clients, alice):
    server = servers("daphne", **FAST_SAVES)
    token = await access(alice)
    note = await create(server, token, "plain", {"json": {"type": "doc", "content": [para()]}})
    editor = await sio_peer(clients, server, alice, note["id"], "editor@sio")
    update = add_paragraph(editor.doc, "typed")
    claimed = {"md": "client says", "html": "<p>client</p>", "json": {"type": "doc"}}
    assert await editor.send(update, data={"content": claimed}) == {}
    bad = {"md": 5}
    refused = await editor.send(add_paragraph(Doc(), "refused"), data={"content": bad})
    assert refused["error"]["code"] == "bad_request", refused

    json = {"type": "doc", "content": [para(), para(text("typed"))]}
    shown_note = await shown(server, token, note["id"], json)
    assert shown_note["data"]["content"] == {
        "md": "typed",
        "html": "<p></p><p>typed</p>",
        "json": json,
    }

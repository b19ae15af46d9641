"""End to end: a REST content change reaches an editor connected over Socket.IO as an ordinary
Yjs edit, and the editor's next debounced save keeps it (nothing is overwritten)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from accounts.tokens import issue_access_token
from notes.models import Note
from notes.yjs import FRAGMENT, doc_from_state, fragment_to_prosemirror
from realtime.routing import websocket_application
from tests.notes.helpers import grant, pm_doc

pytestmark = pytest.mark.django_db(transaction=True)

SIO_PATH = "/ws/socket.io/?EIO=4&transport=websocket"


class Editor:
    """A Socket.IO client holding a Yjs copy of one note."""

    def __init__(self, user, note: Note) -> None:
        self.user, self.note = user, note
        self.comm = WebsocketCommunicator(websocket_application, SIO_PATH)
        self.doc = Doc()
        self.document_id = f"note:{note.pk}"
        self._ack = 0

    async def join(self) -> None:
        connected, _ = await self.comm.connect()
        assert connected
        assert (await self.comm.receive_from())[0] == "0"
        await self.comm.send_to(
            text_data="40" + json.dumps({"token": issue_access_token(self.user)})
        )
        assert (await self.comm.receive_from()).startswith("40{")
        state = await self.call("ydoc:document:join", {"document_id": self.document_id})
        self.doc.apply_update(bytes(state["state"]))

    async def call(self, event: str, data: dict) -> dict:
        self._ack += 1
        await self.comm.send_to(text_data=f"42{self._ack}{json.dumps([event, data])}")
        prefix = f"43{self._ack}["
        while True:
            frame = await self.comm.receive_from(3)
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix) - 1 :])[0]

    async def next_update(self) -> bytes:
        while True:
            frame = await self.comm.receive_from(3)
            if frame.startswith("42["):
                name, payload = json.loads(frame[2:])
                if name == "ydoc:document:update":
                    return bytes(payload["update"])

    def content(self) -> dict:
        return fragment_to_prosemirror(self.doc.get(FRAGMENT, type=XmlFragment))

    async def type_paragraph(self, text: str) -> None:
        before = self.doc.get_state()
        paragraph = XmlElement("paragraph")
        self.doc.get(FRAGMENT, type=XmlFragment).children.append(paragraph)
        paragraph.children.append(XmlText(text))
        update = self.doc.get_update(before)
        ack = await self.call(
            "ydoc:document:update", {"document_id": self.document_id, "update": list(update)}
        )
        assert ack == {}, ack


async def stored_content(note_id) -> dict:
    note = await database_sync_to_async(Note.objects.get)(pk=note_id)
    doc = doc_from_state(bytes(note.yjs_state))
    return fragment_to_prosemirror(doc.get(FRAGMENT, type=XmlFragment))


async def test_rest_change_reaches_live_editor_and_survives_its_save(
    alice, bob, note, auth_api, settings
):
    settings.CHORUS = {"DOC_SAVE_DEBOUNCE": 0.1, "DOC_SAVE_MAX_WAIT": 0.5}
    await database_sync_to_async(grant)(note, "write", user=bob)
    editor = Editor(bob, note)
    await editor.join()
    assert editor.content() == pm_doc("hello", "world")

    new = pm_doc("rewritten over REST")
    patch = database_sync_to_async(
        lambda: auth_api(alice).patch(
            f"/api/notes/{note.pk}/", {"data": {"content": {"json": new}}}
        )
    )
    response = await patch()
    assert response.status_code == 200, response.content

    editor.doc.apply_update(await editor.next_update())
    assert editor.content() == new

    await editor.type_paragraph("typed live")
    expected = pm_doc("rewritten over REST", "typed live")
    deadline = asyncio.get_running_loop().time() + 3
    while await stored_content(note.pk) != expected:
        assert asyncio.get_running_loop().time() < deadline, await stored_content(note.pk)
        await asyncio.sleep(0.05)
    await editor.comm.disconnect()

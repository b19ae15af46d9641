"""Helpers for the notes tests: ProseMirror documents, stored state, grants, a layer tap."""

from __future__ import annotations

import asyncio
import json

from channels.layers import get_channel_layer
from pycrdt import XmlFragment

from notes.models import Note, NoteGrant
from notes.yjs import FRAGMENT, doc_from_state, fragment_to_prosemirror


def pm_doc(*paragraphs: str) -> dict:
    """A ProseMirror document of plain paragraphs."""
    return {
        "type": "doc",
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": text}]}
            for text in paragraphs
        ],
    }


def stored_json(note: Note) -> dict:
    """The ProseMirror JSON held by the note's stored Yjs state (re-read from the database)."""
    note.refresh_from_db()
    doc = doc_from_state(bytes(note.yjs_state))
    return fragment_to_prosemirror(doc.get(FRAGMENT, type=XmlFragment))


def grant(note: Note, permission: str = "read", *, user=None, group=None) -> NoteGrant:
    kind = "user" if user else "group" if group else "everyone"
    return NoteGrant.objects.create(
        note=note, principal_type=kind, user=user, group=group, permission=permission
    )


class Tap:
    """A channel subscribed to layer groups, read synchronously.

    All of its layer calls run on one private event loop: channels-redis (and the in-memory
    layer) bind a channel's receive buffer to the loop that first reads it.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.layer = get_channel_layer()
        self.name = self.loop.run_until_complete(self.layer.new_channel())

    def subscribe(self, *groups: str) -> Tap:
        for group in groups:
            self.loop.run_until_complete(self.layer.group_add(group, self.name))
        return self

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def receive(self, timeout: float = 1.0) -> dict:
        return self.loop.run_until_complete(
            asyncio.wait_for(self.layer.receive(self.name), timeout)
        )

    #: What ``nothing`` sends itself: every message published before it is read before it.
    MARKER = "test.marker"

    def nothing(self) -> bool:
        """True if nothing was published to the tap's groups before the call: a marker sent to
        the tap's own channel now is the next message read (an event, not a timeout)."""

        async def next_after_marker() -> dict:
            await self.layer.send(self.name, {"type": self.MARKER})
            return await asyncio.wait_for(self.layer.receive(self.name), 5)

        message = self.loop.run_until_complete(next_after_marker())
        if message["type"] == self.MARKER:
            return True
        raise AssertionError(f"unexpected layer message: {message!r}")

    def event(self, timeout: float = 1.0) -> tuple[str, object, str]:
        """The next ``chorus.emit`` as (event name, payload, raw frame)."""
        message = self.receive(timeout)
        assert message["type"] == "chorus.emit", message
        frame = message["frame"]
        assert frame.startswith("42["), frame
        name, payload = json.loads(frame[2:])
        return name, payload, frame

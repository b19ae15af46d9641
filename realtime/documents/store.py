"""A collaborative document's storage steps, each on the thread it belongs to: ``load`` (the
stored state plus the update log), ``append`` (an accepted change, group-committed on the log
thread, before it is acknowledged), ``logged_since`` (what other instances logged), ``save``
(the debounced store: the log compacted into the state), ``render`` (the content REST shows,
rendered off the ORM thread). The rules and the SQL are the notes app's (``notes.yjs``).
Module map: docs/realtime.md."""

from __future__ import annotations

import asyncio

from notes.models import Note
from notes.yjs import (
    FRAGMENT,
    append_updates,
    render_for_save,
    save_state,
    store_rendered,
)
from notes.yjs import (
    load as _load,
)
from notes.yjs import logged_since as _logged_since
from realtime.db import LOG_EXECUTOR, orm, orm_batched

__all__ = ["FRAGMENT", "NoteDeleted", "append", "load", "logged_since", "render", "save"]

#: What every step raises when the note no longer exists.
NoteDeleted = Note.DoesNotExist

#: ``await append((note_id, change))`` -> the highest update-log row id its statement wrote.
append = orm_batched(append_updates, LOG_EXECUTOR)
#: ``await load(note_id)`` -> ``notes.yjs.Loaded``: the state to build the ``Doc`` from, and
#: the stored state's digest and highest log row id it holds (a first save needs no merge).
load = orm(_load)
#: ``await save(note_id, state, known, upto)`` -> ``notes.yjs.Saved``.
save = orm(save_state)
#: ``await logged_since(note_id, after_id)`` -> (highest id, merged update or None).
logged_since = orm(_logged_since)


async def render(note_id: str, state: bytes) -> None:
    """Render ``state``'s content in a worker thread (off the ORM thread, outside any lock)
    and store it if the stored state is still ``state`` (``notes.yjs.store_rendered``)."""
    content = await asyncio.to_thread(render_for_save, note_id, state)
    if content is not None:
        await orm(store_rendered)(note_id, state, content)

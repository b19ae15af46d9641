"""A note's Yjs document: load, seed from ProseMirror JSON, merge-save, content changes.

The Yjs state in ``Note.yjs_state`` is the truth; ``Note.data["content"]`` ({md, html, json})
is the client-rendered copy kept for Open WebUI compatibility and search.

- ``append_updates(batch)`` writes accepted updates to the update log (``NoteUpdate``) in one
  transaction: the live document calls it (group-committed) before it acks or relays an update.
- ``load_state(note)`` returns the bytes to build the server ``Doc`` from: the stored state
  plus the update log. A note with stored content but neither is seeded here, on the server,
  from ``content.json`` into the XML fragment ``prosemirror`` (the shape y-prosemirror reads) —
  clients never seed.
- ``merge_save(note_id, state, content)`` merges a document state and the update log into the
  stored one inside a ``select_for_update`` transaction and deletes the log rows it merged:
  two instances saving in any order keep every edit, and an older state never overwrites a
  newer one (Yjs merge is commutative and idempotent). The rendered content is written after
  the state, in a savepoint: content the database refuses is logged and dropped, never a
  reason to lose the state.
- ``content_change_update(note, pm_json)`` expresses a REST content change as a Yjs update
  against the stored state (replace the fragment's children), so live editors receive it as an
  ordinary edit instead of having it overwritten by their next save.

Mapping (y-prosemirror): a node → ``XmlElement(type, attrs)``; a run of text nodes →
``XmlText`` whose formatting attributes are the marks (``{mark type: mark attrs}``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DataError, IntegrityError, transaction
from pycrdt import Doc, XmlElement, XmlFragment, XmlText, merge_updates

from .content import ContentError, check_prosemirror
from .models import Note, NoteUpdate

logger = logging.getLogger("chorus.notes.yjs")

FRAGMENT = "prosemirror"
#: What a refused content write raises: the database's refusals (SQLite's JSON_VALID check,
#: PostgreSQL's NUL / invalid JSON) and the encoder's (``data`` that is not a JSON object).
_CONTENT_WRITE_ERRORS = (DataError, IntegrityError, TypeError, ValueError, RecursionError)


# --- ProseMirror JSON <-> Yjs XML -------------------------------------------------------------


def _fill_text(text: XmlText, nodes: list[dict]) -> None:
    index = 0
    for node in nodes:
        value = node["text"]
        marks = {mark["type"]: mark.get("attrs") or {} for mark in node.get("marks") or []}
        text.insert(index, value, marks or None)
        index += len(value)


def _children(container, content: list) -> None:
    """Append ProseMirror ``content`` (checked by ``check_prosemirror``) to an integrated
    fragment or element."""
    run: list[dict] = []

    def flush() -> None:
        if run:
            text = XmlText()
            container.children.append(text)
            _fill_text(text, run)
            run.clear()

    for node in content:
        if node["type"] == "text":
            run.append(node)
            continue
        flush()
        attrs = {k: v for k, v in (node.get("attrs") or {}).items() if v is not None}
        element = XmlElement(node["type"], attrs)
        container.children.append(element)
        _children(element, node.get("content") or [])
    flush()


def fill_fragment(fragment: XmlFragment, pm_json: dict) -> None:
    """Replace the fragment's children with the ProseMirror document ``pm_json``.

    Raises ``ContentError`` (from ``check_prosemirror``, before anything changes) for JSON
    that is not a ProseMirror document the converter can read."""
    check_prosemirror(pm_json)
    with fragment.doc.transaction():
        if len(fragment.children):
            del fragment.children[0 : len(fragment.children)]
        _children(fragment, pm_json.get("content") or [])


def fragment_to_prosemirror(fragment: XmlFragment) -> dict:
    """The ProseMirror JSON of a ``prosemirror`` fragment (inverse of ``fill_fragment``)."""

    def convert(children) -> list[dict]:
        out: list[dict] = []
        for child in children:
            if isinstance(child, XmlText):
                for chunk, attrs in child.diff():
                    node: dict[str, Any] = {"type": "text", "text": chunk}
                    if attrs:
                        node["marks"] = [
                            {"type": k, **({"attrs": v} if v else {})} for k, v in attrs.items()
                        ]
                    out.append(node)
            else:
                node = {"type": child.tag}
                attrs = dict(child.attributes)
                if attrs:
                    node["attrs"] = {
                        k: int(v) if isinstance(v, float) and v.is_integer() else v
                        for k, v in attrs.items()
                    }
                content = convert(child.children)
                if content:
                    node["content"] = content
                out.append(node)
        return out

    return {"type": "doc", "content": convert(fragment.children)}


def doc_from_state(state: bytes | None) -> Doc:
    doc = Doc()
    if state:
        doc.apply_update(state)
    return doc


def seed_state(pm_json: dict) -> bytes:
    """A fresh Yjs state holding ``pm_json`` in the ``prosemirror`` fragment."""
    doc = Doc()
    fill_fragment(doc.get(FRAGMENT, type=XmlFragment), pm_json)
    return doc.get_update()


# --- persistence ------------------------------------------------------------------------------


def _logged(note_id) -> tuple[list[int], list[bytes]]:
    """The ids and updates of the note's update log, oldest first."""
    rows = list(
        NoteUpdate.objects.filter(note_id=note_id).order_by("id").values_list("id", "update")
    )
    return [row_id for row_id, _ in rows], [bytes(update) for _, update in rows]


def _with_log(stored: bytes | None, updates: list[bytes], *more: bytes) -> bytes | None:
    """``stored`` with the logged ``updates`` (and ``more``) merged in; None if all are empty."""
    parts = [part for part in (stored, *updates, *more) if part]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else merge_updates(*parts)


def load_state(note_id) -> bytes:
    """The note's Yjs state with its update log applied, seeding (and storing) it from
    ``content.json`` when there is neither a stored state nor a log.

    Raises ``Note.DoesNotExist``. Seeding happens under the row lock, once.
    """
    note = Note.objects.only("yjs_state", "data").get(pk=note_id)
    _, updates = _logged(note_id)
    stored = bytes(note.yjs_state) if note.yjs_state else None
    if stored or updates:
        return _with_log(stored, updates)
    pm_json = ((note.data or {}).get("content") or {}).get("json")
    if not pm_json:
        return Doc().get_update()
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state", "data").get(pk=note_id)
        _, updates = _logged(note_id)
        if note.yjs_state or updates:
            return _with_log(bytes(note.yjs_state) if note.yjs_state else None, updates)
        try:
            state = seed_state(pm_json)
        except ContentError:
            return Doc().get_update()  # unreadable legacy content: start empty, keep the data
        Note.objects.filter(pk=note_id).update(yjs_state=state)
        return state


def append_updates(batch: list[tuple[str, bytes]]) -> list[bool | Exception]:
    """Store ``(note_id, update)`` pairs in the update log, in order, in one transaction (a
    group commit: ``realtime.db.orm_batched`` hands over every update that arrived while the
    previous write ran). One result per pair: True, or ``Note.DoesNotExist`` for a note
    deleted meanwhile (its updates are dropped; the others are stored)."""
    rows = [NoteUpdate(note_id=note_id, update=update) for note_id, update in batch]
    try:
        with transaction.atomic():
            NoteUpdate.objects.bulk_create(rows)
        return [True] * len(rows)
    except IntegrityError:  # a note was deleted: store the rest one by one
        pass
    results: list[bool | Exception] = []
    for row in rows:
        try:
            with transaction.atomic():
                row.pk = None
                row.save(force_insert=True)
            results.append(True)
        except IntegrityError:
            results.append(Note.DoesNotExist("The note was deleted."))
    return results


def logged_since(note_id, after_id: int) -> tuple[int, bytes | None]:
    """The note's update-log rows with an id above ``after_id``: the highest id (or
    ``after_id``) and the rows merged into one update (None when there are none)."""
    rows = list(
        NoteUpdate.objects.filter(note_id=note_id, id__gt=after_id)
        .order_by("id")
        .values_list("id", "update")
    )
    if not rows:
        return after_id, None
    return rows[-1][0], _with_log(None, [bytes(update) for _, update in rows])


def current_state(note_id) -> bytes | None:
    """The stored state with the update log merged in (inside a transaction that holds the
    note's row lock, so that no save compacts the log meanwhile); None for neither."""
    note = Note.objects.only("yjs_state").get(pk=note_id)
    _, updates = _logged(note_id)
    return _with_log(bytes(note.yjs_state) if note.yjs_state else None, updates)


def merge_save(note_id, state: bytes, content: dict | None = None) -> bytes:
    """Merge ``state`` and the note's update log into the stored state under a row lock,
    delete the log rows merged (by id: rows another instance adds meanwhile stay for the
    next save), and return the merged state.

    ``content`` (the newest client-rendered {md, html, json}), when given, is then stored as
    ``data["content"]`` by ``_store_content``: if that write fails the state is kept anyway.
    Raises ``Note.DoesNotExist`` when the note was deleted, and what the database raises
    for the state write (the caller retries; the log is then untouched).
    """
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state").get(pk=note_id)
        row_ids, updates = _logged(note_id)
        stored = bytes(note.yjs_state) if note.yjs_state else None
        merged = _with_log(stored, updates, state)
        Note.objects.filter(pk=note_id).update(yjs_state=merged)
        if row_ids:
            NoteUpdate.objects.filter(pk__in=row_ids).delete()
        if content is not None:
            _store_content(note_id, content)
        return merged


def _store_content(note_id, content: dict) -> None:
    """Set ``data["content"]`` in a savepoint (inside ``merge_save``'s transaction).

    A write the database or the encoder refuses (``_CONTENT_WRITE_ERRORS``: bad content, or
    a stored ``data`` that cannot be read back and rewritten) is rolled back to the savepoint,
    logged at WARNING with the note id only — never the content — and dropped. A savepoint
    that cannot be rolled back (a broken connection) fails the whole save instead.
    """
    try:
        with transaction.atomic():
            data = Note.objects.filter(pk=note_id).values_list("data", flat=True).get()
            Note.objects.filter(pk=note_id).update(data={**(data or {}), "content": content})
    except _CONTENT_WRITE_ERRORS as error:
        if transaction.get_rollback():
            raise
        logger.warning(
            "Note %s: the rendered content was not stored (%s); the Yjs state was",
            note_id,
            type(error).__name__,
        )


def content_change_update(note_id, pm_json: dict) -> bytes:
    """Apply a REST content change to the stored Yjs state; returns the Yjs update to relay.

    Raises ``ContentError`` for JSON that is not a ProseMirror document.
    """
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state").get(pk=note_id)
        row_ids, updates = _logged(note_id)
        doc = doc_from_state(_with_log(bytes(note.yjs_state) if note.yjs_state else None, updates))
        before = doc.get_state()
        fill_fragment(doc.get(FRAGMENT, type=XmlFragment), pm_json)
        update = doc.get_update(before)
        Note.objects.filter(pk=note_id).update(yjs_state=doc.get_update())
        if row_ids:
            NoteUpdate.objects.filter(pk__in=row_ids).delete()
        return update

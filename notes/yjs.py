"""A note's Yjs document: load, seed from ProseMirror JSON, merge-save, content changes.

The Yjs state in ``Note.yjs_state`` is the truth; ``Note.data["content"]`` ({md, html, json})
is the client-rendered copy kept for Open WebUI compatibility and search.

- ``load_state(note)`` returns the bytes to build the server ``Doc`` from. A note with stored
  content but no Yjs state is seeded here, on the server, from ``content.json`` into the XML
  fragment ``prosemirror`` (the shape y-prosemirror reads) — clients never seed.
- ``merge_save(note_id, state, content)`` merges a document state into the stored one inside a
  ``select_for_update`` transaction: two instances saving in any order keep every edit, and an
  older state never overwrites a newer one (Yjs merge is commutative and idempotent). The
  rendered content is written after the state, in a savepoint: content the database refuses
  is logged and dropped, never a reason to lose the state.
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
from .models import Note

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


def load_state(note_id) -> bytes:
    """The note's Yjs state, seeding (and storing) it from ``content.json`` when missing.

    Raises ``Note.DoesNotExist``. Seeding happens under the row lock, once.
    """
    note = Note.objects.only("yjs_state", "data").get(pk=note_id)
    if note.yjs_state:
        return bytes(note.yjs_state)
    pm_json = ((note.data or {}).get("content") or {}).get("json")
    if not pm_json:
        return Doc().get_update()
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state", "data").get(pk=note_id)
        if note.yjs_state:
            return bytes(note.yjs_state)
        try:
            state = seed_state(pm_json)
        except ContentError:
            return Doc().get_update()  # unreadable legacy content: start empty, keep the data
        Note.objects.filter(pk=note_id).update(yjs_state=state)
        return state


def merge_save(note_id, state: bytes, content: dict | None = None) -> bytes:
    """Merge ``state`` into the stored state under a row lock; returns the merged state.

    ``content`` (the newest client-rendered {md, html, json}), when given, is then stored as
    ``data["content"]`` by ``_store_content``: if that write fails the state is kept anyway.
    Raises ``Note.DoesNotExist`` when the note was deleted, and what the database raises
    for the state write (the caller retries).
    """
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state").get(pk=note_id)
        stored = bytes(note.yjs_state) if note.yjs_state else None
        merged = merge_updates(stored, state) if stored else state
        Note.objects.filter(pk=note_id).update(yjs_state=merged)
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
        doc = doc_from_state(bytes(note.yjs_state) if note.yjs_state else None)
        before = doc.get_state()
        fill_fragment(doc.get(FRAGMENT, type=XmlFragment), pm_json)
        update = doc.get_update(before)
        Note.objects.filter(pk=note_id).update(yjs_state=doc.get_update())
        return update

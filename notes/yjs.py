"""A note's Yjs document: load, seed from ProseMirror JSON, merge-save, content changes.

The Yjs state in ``Note.yjs_state`` is the truth; ``Note.data["content"]`` ({md, html, json})
is the client-rendered copy kept for Open WebUI compatibility and search.

- ``load_state(note)`` returns the bytes to build the server ``Doc`` from. A note with stored
  content but no Yjs state is seeded here, on the server, from ``content.json`` into the XML
  fragment ``prosemirror`` (the shape y-prosemirror reads) — clients never seed.
- ``merge_save(note_id, state, content)`` merges a document state into the stored one inside a
  ``select_for_update`` transaction: two instances saving in any order keep every edit, and an
  older state never overwrites a newer one (Yjs merge is commutative and idempotent).
- ``content_change_update(note, pm_json)`` expresses a REST content change as a Yjs update
  against the stored state (replace the fragment's children), so live editors receive it as an
  ordinary edit instead of having it overwritten by their next save.

Mapping (y-prosemirror): a node → ``XmlElement(type, attrs)``; a run of text nodes →
``XmlText`` whose formatting attributes are the marks (``{mark type: mark attrs}``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from pycrdt import Doc, XmlElement, XmlFragment, XmlText, merge_updates

from .models import Note

FRAGMENT = "prosemirror"


class ContentError(ValueError):
    """ProseMirror JSON that cannot be turned into a Yjs document."""


# --- ProseMirror JSON <-> Yjs XML -------------------------------------------------------------


def _fill_text(text: XmlText, nodes: list[dict]) -> None:
    index = 0
    for node in nodes:
        value = node.get("text")
        if not isinstance(value, str):
            raise ContentError("A text node needs a string 'text'.")
        marks = {}
        for mark in node.get("marks") or []:
            if not isinstance(mark, dict) or not isinstance(mark.get("type"), str):
                raise ContentError("A mark needs a string 'type'.")
            marks[mark["type"]] = mark.get("attrs") or {}
        text.insert(index, value, marks or None)
        index += len(value)


def _children(container, content: list, depth: int) -> None:
    """Append ProseMirror ``content`` to an integrated fragment or element."""
    if depth > 64:
        raise ContentError("The document is nested too deeply.")
    if not isinstance(content, list):
        raise ContentError("'content' must be a list.")
    run: list[dict] = []

    def flush() -> None:
        if run:
            text = XmlText()
            container.children.append(text)
            _fill_text(text, run)
            run.clear()

    for node in content:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise ContentError("Every node needs a string 'type'.")
        if node["type"] == "text":
            run.append(node)
            continue
        flush()
        attrs = {k: v for k, v in (node.get("attrs") or {}).items() if v is not None}
        element = XmlElement(node["type"], attrs)
        container.children.append(element)
        _children(element, node.get("content") or [], depth + 1)
    flush()


def fill_fragment(fragment: XmlFragment, pm_json: dict) -> None:
    """Replace the fragment's children with the ProseMirror document ``pm_json``."""
    if not isinstance(pm_json, dict) or pm_json.get("type") != "doc":
        raise ContentError("content.json must be a ProseMirror document ({'type': 'doc'}).")
    with fragment.doc.transaction():
        if len(fragment.children):
            del fragment.children[0 : len(fragment.children)]
        _children(fragment, pm_json.get("content") or [], 0)


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

    ``content`` (the newest client-rendered {md, html, json}) is stored with it when given.
    Raises ``Note.DoesNotExist`` when the note was deleted.
    """
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state", "data").get(pk=note_id)
        stored = bytes(note.yjs_state) if note.yjs_state else None
        merged = merge_updates(stored, state) if stored else state
        fields = {"yjs_state": merged}
        if content is not None:
            fields["data"] = {**(note.data or {}), "content": content}
        Note.objects.filter(pk=note_id).update(**fields)
        return merged


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

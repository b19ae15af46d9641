"""A note's Yjs document: load, seed from ProseMirror JSON, merge-save, content changes.

The Yjs state in ``Note.yjs_state`` is the truth; ``Note.data["content"]`` ({md, html, json})
is rendered from it by the server on every save (``notes.render``), for Open WebUI
compatibility and search; what a client renders is never stored for a collaborative note.

- ``load_state(note)`` returns the bytes to build the server ``Doc`` from. A note with stored
  content but no Yjs state is seeded here, on the server, from ``content.json`` into the XML
  fragment ``prosemirror`` (the shape y-prosemirror reads) — clients never seed.
- ``merge_save(note_id, state)`` merges a document state into the stored one inside a
  ``select_for_update`` transaction: two instances saving in any order keep every edit, and an
  older state never overwrites a newer one (Yjs merge is commutative and idempotent). The
  content rendered from the merged state is written after it, in a savepoint, and only when
  it changed (then ``updated_at`` moves): content the renderer or the database refuses is
  logged and dropped, never a reason to lose the state.
- ``fragment_to_prosemirror`` is the exact inverse of the seeding (``fill_fragment``) for a
  document in canonical form (its docstring; docs/notes.md, *Rendering*).
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
from django.utils import timezone
from pycrdt import Doc, XmlElement, XmlFragment, XmlText, merge_updates

from .content import ContentError, check_prosemirror
from .models import Note
from .render import render_content

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


#: Mark order of the canonical JSON: the rank Tiptap's StarterKit gives its marks (link has
#: priority 1000: first), with ProseMirror's basic-schema names fitted in (link, em, strong,
#: code). Other marks follow, by name. Yjs keeps a text's marks as an unordered map, so the
#: order must come from somewhere: ProseMirror itself sorts marks by schema rank.
MARK_ORDER = ("link", "em", "bold", "strong", "code", "italic", "strike", "underline")
_MARK_RANK = {name: rank for rank, name in enumerate(MARK_ORDER)}


def _number(value: Any) -> Any:
    """``value`` with every integral float made an int, at any depth (Yjs numbers come back
    as floats; JSON from a JavaScript editor cannot tell 1.0 from 1)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _number(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_number(item) for item in value]
    return value


def _marks(attributes: dict) -> list[dict]:
    """A text run's formatting attributes as ProseMirror marks, in ``MARK_ORDER``. A key
    ``name--hash`` (y-prosemirror's overlapping marks) is the mark ``name``."""
    marks = []
    for key, attrs in attributes.items():
        mark: dict[str, Any] = {"type": key.split("--", 1)[0]}
        if attrs:
            mark["attrs"] = _number(attrs)
        marks.append(mark)
    return sorted(marks, key=lambda m: (_MARK_RANK.get(m["type"], len(MARK_ORDER)), m["type"]))


def fragment_to_prosemirror(fragment: XmlFragment) -> dict:
    """The ProseMirror JSON of a ``prosemirror`` fragment: the exact inverse of
    ``fill_fragment`` for a document in canonical form, which is how ProseMirror's
    ``toJSON`` writes one, except for what Yjs does not keep (docs/notes.md, *Rendering*):

    - a node is ``{"type", "attrs"?, "content"?}``: ``attrs`` only when it holds a non-null
      value (null node attributes are not stored, as y-prosemirror does), ``content`` only
      when not empty — except the ``doc``, whose ``content`` is always a list;
    - a text node is ``{"type": "text", "text", "marks"?}``, never empty, adjacent runs with
      the same marks merged; marks are sorted by ``MARK_ORDER``, a mark's ``attrs`` only when
      not empty (kept as stored, nulls included);
    - numbers: an integral float is an int, at any depth of ``attrs``.
    """

    def convert(children) -> list[dict]:
        out: list[dict] = []
        for child in children:
            if isinstance(child, XmlText):
                for chunk, attrs in child.diff():
                    if not isinstance(chunk, str) or not chunk:
                        continue  # an embed (y-prosemirror writes none) or nothing
                    node: dict[str, Any] = {"type": "text", "text": chunk}
                    if attrs:
                        node["marks"] = _marks(attrs)
                    previous = out[-1] if out else None
                    if (
                        previous is not None
                        and previous["type"] == "text"
                        and previous.get("marks") == node.get("marks")
                    ):
                        previous["text"] += chunk
                    else:
                        out.append(node)
            else:
                node = {"type": child.tag}
                attrs = {k: _number(v) for k, v in child.attributes if v is not None}
                if attrs:
                    node["attrs"] = attrs
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


def merge_save(note_id, state: bytes) -> bytes:
    """Merge ``state`` into the stored state under a row lock; returns the merged state.

    The note's content is then rendered from the merged state and stored by
    ``_store_rendered`` (a failure there never costs the state). Raises
    ``Note.DoesNotExist`` when the note was deleted, and what the database raises for the
    state write (the caller retries).
    """
    with transaction.atomic():
        note = Note.objects.select_for_update().only("yjs_state").get(pk=note_id)
        stored = bytes(note.yjs_state) if note.yjs_state else None
        merged = merge_updates(stored, state) if stored else state
        Note.objects.filter(pk=note_id).update(yjs_state=merged)
        _store_rendered(note_id, merged)
        return merged


def rendered_content(state: bytes | None) -> dict:
    """``data.content`` as the server renders it from a Yjs state: ``{"md", "html",
    "json"}`` of the ``prosemirror`` fragment (``notes.render``)."""
    fragment = doc_from_state(state).get(FRAGMENT, type=XmlFragment)
    return render_content(fragment_to_prosemirror(fragment))


def _store_rendered(note_id, state: bytes) -> None:
    """Store the content rendered from ``state`` as ``data["content"]``, in a savepoint
    (inside the caller's transaction, which holds the row lock).

    Written only when it differs from the stored content; ``updated_at`` moves only when
    the ProseMirror JSON differs (a change of md/html alone — the rendering rules changed —
    is stored without reordering the notes). An empty document does not replace a content
    that has no ``json`` (none, or a legacy md/html copy). Nothing here fails the save: a
    document the renderer cannot convert (e.g. nested deeper than Python recurses), or a
    write the database or the encoder refuses (``_CONTENT_WRITE_ERRORS``: e.g. a text
    holding NUL on PostgreSQL, or a stored ``data`` that is not an object or cannot be read
    back and rewritten), is logged at WARNING with the note id only — never the content —
    and dropped (the write rolled back to the savepoint). A savepoint that cannot be rolled
    back (a broken connection) fails the whole save instead.
    """
    try:
        content = rendered_content(state)
    except Exception as error:  # a renderer failure must never cost the state
        _not_stored(note_id, error)
        return
    try:
        with transaction.atomic():
            data = Note.objects.filter(pk=note_id).values_list("data", flat=True).get()
            _write_rendered(note_id, data, content)
    except _CONTENT_WRITE_ERRORS as error:
        if transaction.get_rollback():
            raise
        _not_stored(note_id, error)


def _not_stored(note_id, error: BaseException) -> None:
    logger.warning(
        "Note %s: the rendered content was not stored (%s); the Yjs state was",
        note_id,
        type(error).__name__,
    )


def _write_rendered(note_id, data: Any, content: dict) -> bool:
    """Set ``data["content"]`` to ``content`` unless it is already stored (see
    ``_store_rendered``); True if it wrote. Raises what the database raises, and
    ``TypeError`` for a stored ``data`` that is not an object."""
    stored = data.get("content") if isinstance(data, dict) else None
    if stored == content:
        return False
    if not content["json"]["content"] and not (isinstance(stored, dict) and stored.get("json")):
        return False  # an empty document has nothing better than what is stored (or nothing)
    changes: dict[str, Any] = {"data": {**(data or {}), "content": content}}
    if not isinstance(stored, dict) or stored.get("json") != content["json"]:
        changes["updated_at"] = timezone.now()
    Note.objects.filter(pk=note_id).update(**changes)
    return True


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

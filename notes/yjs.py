"""A note's Yjs document: load, seed from ProseMirror JSON, merge-save, content changes.

The Yjs state in ``Note.yjs_state`` is the truth; ``Note.data["content"]`` ({md, html, json})
is rendered from it by the server on every save (``notes.render``), for Open WebUI
compatibility and search; what a client renders is never stored for a collaborative note.

- ``append_updates(batch)`` writes accepted updates to the update log (``NoteUpdate``) in one
  transaction: the live document calls it (group-committed) before it acks or relays an update.
- ``load(note)`` returns the bytes to build the server ``Doc`` from: the stored state plus
  the update log (with what a single process may promise its first save: ``Loaded``). A
  note with stored content but neither is seeded here, on the server,
  from ``content.json`` into the XML fragment ``prosemirror`` (the shape y-prosemirror reads) —
  clients never seed.
- ``merge_save(note_id, state)`` merges a document state and the update log into the stored
  one inside a row-locked transaction and deletes the log rows it merged: two instances saving
  in any order keep every edit, and an older state never overwrites a newer one (Yjs merge is
  commutative and idempotent). ``save_state`` is the same with a shortcut for the one process
  that wrote everything stored: no merge while the stored state is the one it saved last.
- ``rendered_content(state)`` / ``store_rendered(note_id, state, content)``: after a save, the
  content rendered from the merged state (outside the lock, off the ORM thread) is stored only
  if the stored state is still the one it was rendered from, and only when it changed (then
  ``updated_at`` moves): content the renderer or the database refuses is logged and dropped,
  never a reason to lose the state.
- ``fragment_to_prosemirror`` is the exact inverse of the seeding (``fill_fragment``) for a
  document in canonical form (its docstring; docs/notes.md, *Rendering*).
- ``content_change_update(note, pm_json)`` expresses a REST content change as a Yjs update
  against the stored state (replace the fragment's children), so live editors receive it as an
  ordinary edit instead of having it overwritten by their next save.

Mapping (y-prosemirror): a node → ``XmlElement(type, attrs)``; a run of text nodes →
``XmlText`` whose formatting attributes are the marks (``{mark type: mark attrs}``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone
from pycrdt import Doc, XmlElement, XmlFragment, XmlText, merge_updates

from lib.sqlrows import column_name

from .content import ContentError, check_prosemirror
from .models import Note, NoteUpdate
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


def doc_from_state(state: bytes | None) -> Doc[XmlFragment]:
    doc: Doc[XmlFragment] = Doc()
    if state:
        doc.apply_update(state)
    return doc


def seed_state(pm_json: dict) -> bytes:
    """A fresh Yjs state holding ``pm_json`` in the ``prosemirror`` fragment."""
    doc: Doc[XmlFragment] = Doc()
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


@dataclass(frozen=True)
class Loaded:
    """What ``load`` read: the state to build the ``Doc`` from, the ``state_digest`` of the
    stored state it holds, and the highest update-log row id it holds (0 for none) — what a
    process that then writes every row itself may promise ``save_state``."""

    state: bytes
    digest: str
    upto: int


def load(note_id) -> Loaded:
    """The note's Yjs state with its update log applied, seeding (and storing) it from
    ``content.json`` when there is neither a stored state nor a log.

    Raises ``Note.DoesNotExist``. Seeding happens under the row lock, once.
    """
    # The log first: rows a save compacts meanwhile are in the state read after them.
    row_ids, updates = _logged(note_id)
    note = Note.objects.only("yjs_state", "data").get(pk=note_id)
    stored = bytes(note.yjs_state) if note.yjs_state else None
    upto = row_ids[-1] if row_ids else 0
    if stored or updates:
        return Loaded(_with_log(stored, updates) or b"", state_digest(stored), upto)
    pm_json = ((note.data or {}).get("content") or {}).get("json")
    if not pm_json:
        return Loaded(Doc().get_update(), state_digest(None), 0)
    with transaction.atomic():
        note = Note.objects.select_for_update(no_key=True).only("yjs_state", "data").get(pk=note_id)
        row_ids, updates = _logged(note_id)
        stored = bytes(note.yjs_state) if note.yjs_state else None
        if stored or updates:
            upto = row_ids[-1] if row_ids else 0
            return Loaded(_with_log(stored, updates) or b"", state_digest(stored), upto)
        try:
            state = seed_state(pm_json)
        except ContentError:  # unreadable legacy content: start empty, keep the data
            return Loaded(Doc().get_update(), state_digest(None), 0)
        Note.objects.filter(pk=note_id).update(yjs_state=state)
        return Loaded(state, state_digest(state), 0)


def load_state(note_id) -> bytes:
    """``load``'s state alone."""
    return load(note_id).state


#: Rows per INSERT statement of the update log (3 parameters each: well under SQLite's limit).
_LOG_ROWS_PER_STATEMENT = 500


def append_updates(batch: list[tuple[str, bytes]]) -> list[int | Exception]:
    """Store ``(note_id, update)`` pairs in the update log, in order, one INSERT statement
    for the whole batch (a group commit: ``realtime.db.orm_batched`` hands over every update
    that arrived while the previous write ran). One result per pair: the highest row id the
    statement that stored it wrote (every row up to it is committed; 0 where the database
    cannot say), or ``Note.DoesNotExist`` for a note deleted meanwhile (its updates are
    dropped; the others are stored).

    Written by hand, not with ``bulk_create``: every acknowledgement waits on it, and the
    ORM's per-row model building and SQL compilation were a quarter of the server's CPU
    under collaborative load (docs/benchmarks.md). One statement in autocommit is one round
    trip and atomic by itself; ``tests/notes/test_update_log.py`` checks the rows equal
    what the ORM stores. A batch over ``_LOG_ROWS_PER_STATEMENT`` rows takes several
    statements: a failure may then leave earlier rows stored, which is harmless (the caller
    writes them again; Yjs updates apply idempotently)."""
    rows = [(note_id, update) for note_id, update in batch]
    try:
        results: list[int | Exception] = []
        for start in range(0, len(rows), _LOG_ROWS_PER_STATEMENT):
            chunk = rows[start : start + _LOG_ROWS_PER_STATEMENT]
            results += [_insert_log_rows(chunk)] * len(chunk)
        return results
    except IntegrityError:  # a note was deleted: store the rest one by one
        pass
    results = []
    for row in rows:
        try:
            results.append(_insert_log_rows([row]))
        except IntegrityError:
            results.append(Note.DoesNotExist("The note was deleted."))
    return results


def _insert_log_rows(rows: list[tuple[str, bytes]]) -> int:
    """One ``INSERT`` of ``(note_id, update)`` rows into ``NoteUpdate``'s table (autocommit);
    returns the highest id it wrote (0 on a database without ``RETURNING``)."""
    meta = NoteUpdate._meta
    fields = [meta.get_field("note"), meta.get_field("update"), meta.get_field("created_at")]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_name(field)) for field in fields)
    now = fields[2].get_db_prep_value(timezone.now(), connection)
    params: list[Any] = []
    for note_id, update in rows:
        params += [
            fields[0].get_db_prep_value(note_id, connection),
            fields[1].get_db_prep_value(update, connection),
            now,
        ]
    values = ", ".join(["(%s, %s, %s)"] * len(rows))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values}"
    returning = connection.features.can_return_rows_from_bulk_insert
    if returning:
        sql += f" RETURNING {quote(column_name(meta.pk))}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(row[0] for row in cursor.fetchall()) if returning else 0


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
    note's row lock, or outside one: the log is read first, so rows a save compacts
    meanwhile are in the state read after them); None for neither."""
    _, updates = _logged(note_id)
    note = Note.objects.only("yjs_state").get(pk=note_id)
    return _with_log(bytes(note.yjs_state) if note.yjs_state else None, updates)


def state_digest(state: bytes | None) -> str:
    """A stored state's fingerprint (``save_state``'s ``known``); hashlib releases the GIL
    for large inputs, so it costs the event loop nothing when run on the ORM thread."""
    return hashlib.blake2b(state or b"", digest_size=16).hexdigest()


@dataclass(frozen=True)
class Saved:
    """What ``save_state`` stored: the state, its ``state_digest``, and whether it had to
    merge (False: ``state`` was stored as given, the database held nothing it lacked)."""

    state: bytes
    digest: str
    merged: bool


def save_state(note_id, state: bytes, known: str | None = None, upto: int = 0) -> Saved:
    """Merge ``state`` and the note's update log into the stored state under a row lock,
    delete the log rows merged (by id: rows another instance adds meanwhile stay for the
    next save), and return what is stored.

    ``known`` and ``upto`` are the caller's promise that ``state`` already holds the stored
    state with that ``state_digest`` and every update-log row with an id up to ``upto`` (one
    process that wrote every row itself, ids from ``append_updates``, and absorbed its last
    save): while the stored state still has that digest, ``state`` is stored as it is and
    those rows are deleted (later ones wait for the next save). Merging — decoding the
    stored state, the log and ``state`` and encoding the result, all under the GIL (pycrdt
    never releases it) — is what a save costs the event loop on a long-lived document
    (docs/benchmarks.md); anything else stored since (a REST content change, another
    instance) fails the check and merges.

    The content is rendered from it afterwards, outside the lock, and stored with
    ``store_rendered``.
    Raises ``Note.DoesNotExist`` when the note was deleted, and what the database raises
    for the state write (the caller retries; the log is then untouched).
    """
    with transaction.atomic():
        note = Note.objects.select_for_update(no_key=True).only("yjs_state").get(pk=note_id)
        stored = bytes(note.yjs_state) if note.yjs_state else None
        if known is not None and state and state_digest(stored) == known:
            Note.objects.filter(pk=note_id).update(yjs_state=state)
            NoteUpdate.objects.filter(note_id=note_id, id__lte=upto).delete()
            return Saved(state, state_digest(state), merged=False)
        row_ids, updates = _logged(note_id)
        merged = _with_log(stored, updates, state)
        Note.objects.filter(pk=note_id).update(yjs_state=merged)
        if row_ids:
            NoteUpdate.objects.filter(pk__in=row_ids).delete()
        # None only for an empty ``state`` with nothing stored: stored as NULL, given as b"".
        return Saved(merged or b"", state_digest(merged), merged=True)


def merge_save(note_id, state: bytes) -> bytes:
    """``save_state`` with no promise: always merges; returns the stored state."""
    return save_state(note_id, state).state


def rendered_content(state: bytes | None) -> dict:
    """``data.content`` as the server renders it from a Yjs state: ``{"md", "html",
    "json"}`` of the ``prosemirror`` fragment (``notes.render``)."""
    fragment = doc_from_state(state).get(FRAGMENT, type=XmlFragment)
    return render_content(fragment_to_prosemirror(fragment))


def render_for_save(note_id, state: bytes) -> dict | None:
    """The content rendered from a saved ``state``, or None when the renderer cannot convert
    it (e.g. nested deeper than Python recurses): logged at WARNING with the note id only."""
    try:
        return rendered_content(state)
    except Exception as error:  # a renderer failure must never cost the state
        _not_stored(note_id, error)
        return None


def render_saved(note_id, state: bytes) -> bool:
    """Render a just-saved ``state`` and store it (``store_rendered``); outside any
    transaction. True if the content was written."""
    content = render_for_save(note_id, state)
    return content is not None and store_rendered(note_id, state, content)


def store_rendered(note_id, state: bytes, content: dict) -> bool:
    """Store ``content`` (rendered from ``state``) as ``data["content"]`` under the row lock,
    if the stored state is still ``state`` (else a later save renders its own); True if it
    wrote.

    Written only when it differs from the stored content; ``updated_at`` moves only when
    the ProseMirror JSON differs (a change of md/html alone — the rendering rules changed —
    is stored without reordering the notes). An empty document does not replace a content
    that has no ``json`` (none, or a legacy md/html copy). A write the database or the
    encoder refuses (``_CONTENT_WRITE_ERRORS``: e.g. a text holding NUL on PostgreSQL, or a
    stored ``data`` that is not an object or cannot be read back and rewritten) is logged at
    WARNING with the note id only — never the content — and dropped.
    """
    try:
        with transaction.atomic():
            row = (
                Note.objects.select_for_update(no_key=True)
                .filter(pk=note_id)
                .values_list("yjs_state", "data")
                .first()
            )
            if row is None or row[0] is None or bytes(row[0]) != state:
                return False  # deleted, or saved again since: that save renders its own
            return _write_rendered(note_id, row[1], content)
    except _CONTENT_WRITE_ERRORS as error:
        _not_stored(note_id, error)
        return False


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
        note = Note.objects.select_for_update(no_key=True).only("yjs_state").get(pk=note_id)
        row_ids, updates = _logged(note_id)
        doc = doc_from_state(_with_log(bytes(note.yjs_state) if note.yjs_state else None, updates))
        before = doc.get_state()
        fill_fragment(doc.get(FRAGMENT, type=XmlFragment), pm_json)
        update = doc.get_update(before)
        Note.objects.filter(pk=note_id).update(yjs_state=doc.get_update())
        if row_ids:
            NoteUpdate.objects.filter(pk__in=row_ids).delete()
        return update

"""The ``data.content`` rules (notes/content.py), their use by REST, and a save that keeps the
Yjs state whatever happens to the rendered content (notes.yjs.merge_save)."""

from __future__ import annotations

import contextlib
import logging

import pytest
from django.db import connection
from pycrdt import Doc, Text, XmlElement, XmlFragment, XmlText

from notes import services
from notes.content import (
    MAX_NODE_DEPTH,
    ContentError,
    ContentTooLarge,
    check_content,
    check_prosemirror,
    content_size,
)
from notes.models import Note
from notes.yjs import (
    FRAGMENT,
    doc_from_state,
    fragment_to_prosemirror,
    merge_save,
    render_saved,
    seed_state,
)
from tests.notes.helpers import pm_doc

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev-only dependency
    given = None

LIMIT = 10_000


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_nodes(depth: int) -> dict:
    """A document whose nodes nest ``depth`` levels below ``doc``."""
    node: dict = {"type": "paragraph"}
    for _ in range(depth - 1):
        node = {"type": "blockquote", "content": [node]}
    return {"type": "doc", "content": [node]}


def paragraph(**fields) -> dict:
    return {"type": "doc", "content": [{"type": "paragraph", **fields}]}


def text_node(**fields) -> dict:
    return paragraph(content=[{"type": "text", "text": "x", **fields}])


# --- check_content ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"md": ""},
        {"md": "# T\n\nHello **world** é 😀", "html": "<h1>T</h1>", "json": pm_doc("a", "b")},
        {"json": None},
        {"json": {"type": "doc"}},
        {"json": paragraph(attrs={"level": 2, "f": 1.5, "big": 2**63 - 1, "neg": -(2**63)})},
    ],
)
def test_acceptable_content_passes(content):
    check_content(content, LIMIT)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([], "must be an object"),
        ({"md": 1}, "md must be a string"),
        ({"html": ["<p>"]}, "html must be a string"),
        ({"md": "x\x00y"}, "NUL"),
        ({"html": "a\ud800"}, "surrogate"),
        ({"json": paragraph(attrs={"n": float("inf")})}, "finite"),
        ({"json": paragraph(attrs={"n": float("-inf")})}, "finite"),
        ({"json": paragraph(attrs={"n": float("nan")})}, "finite"),
        ({"json": paragraph(attrs={"k\x00": 1})}, "NUL"),
        ({"json": paragraph(attrs={"deep": nested_list(70)})}, "nested deeper"),
        ({"json": paragraph(attrs={"b": b"binary attachment"})}, "not a JSON value"),
        ({"json": {"type": "paragraph"}}, "ProseMirror document"),
        ({"json": ["doc"]}, "ProseMirror document"),
        ({"json": paragraph(attrs={"n": 2**64})}, "64 bits"),
    ],
)
def test_unacceptable_content_is_a_content_error(content, problem):
    with pytest.raises(ContentError, match=problem) as raised:
        check_content(content, LIMIT)
    assert not isinstance(raised.value, ContentTooLarge)


def test_size_is_compact_utf8_json_and_the_limit_is_inclusive():
    assert content_size({"md": "é"}) == len('{"md":"é"}'.encode())
    content = {"md": "x" * 100, "json": pm_doc("€" * 50)}
    size = content_size(content)
    check_content(content, size)
    with pytest.raises(ContentTooLarge, match="DOC_MAX_CONTENT_BYTES"):
        check_content(content, size - 1)


# --- check_prosemirror: the converter's gate ----------------------------------------------------

REFUSED_DOCUMENTS = [
    {"type": "paragraph"},
    "doc",
    {"type": "doc", "content": {"type": "paragraph"}},
    {"type": "doc", "content": [{"text": "no type"}]},
    {"type": "doc", "content": ["text"]},
    paragraph(content=7),
    paragraph(attrs=["level", 1]),
    paragraph(attrs="x"),
    paragraph(attrs={"n": 2**63}),
    paragraph(attrs={"n": [1, {"m": -(2**63) - 1}]}),
    paragraph(attrs={"s": "a\udc00"}),
    paragraph(attrs={"k\ud800": "v"}),
    {"type": "doc", "content": [{"type": "para\ud800"}]},
    text_node(text=None),
    text_node(text=5),
    text_node(text="a\ud800b"),
    text_node(marks=3),
    text_node(marks={"type": "bold"}),
    text_node(marks=["bold"]),
    text_node(marks=[{"attrs": {}}]),
    text_node(marks=[{"type": "b\ud800"}]),
    text_node(marks=[{"type": "link", "attrs": {"n": 2**64}}]),
    nested_nodes(MAX_NODE_DEPTH + 1),
]


@pytest.mark.parametrize("document", REFUSED_DOCUMENTS)
def test_the_converter_refuses_what_check_prosemirror_refuses_and_nothing_else(document):
    with pytest.raises(ContentError):
        check_prosemirror(document)
    with pytest.raises(ContentError):  # before: AttributeError, TypeError, pycrdt panics
        seed_state(document)


@pytest.mark.parametrize(
    "document",
    [
        pm_doc("one", "two"),
        {"type": "doc"},
        {"type": "doc", "content": None},
        paragraph(attrs=[], content=""),  # falsy values are empty, as the converter reads them
        text_node(marks={}),
        text_node(marks=[{"type": "link", "attrs": ["any", "json", 1.5]}]),
        nested_nodes(MAX_NODE_DEPTH),
    ],
)
def test_documents_check_prosemirror_accepts_are_converted(document):
    check_prosemirror(document)
    doc = Doc()
    doc.apply_update(seed_state(document))
    assert fragment_to_prosemirror(doc.get(FRAGMENT, type=XmlFragment))["type"] == "doc"


if given is not None:
    _scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.sampled_from([2**63, -(2**63) - 1, 2**64])  # past pycrdt's 64 bits
        | st.floats()
        | st.text(st.characters(max_codepoint=0xDFFF), max_size=3)
        | st.sampled_from(["doc", "text", "paragraph", "bold"])
    )

    def _node(children):
        """Mostly well-formed nodes (so the converter gets far), with anything in places."""
        anything = _scalars | children | st.lists(_scalars, max_size=2)
        values = _scalars | st.lists(_scalars, max_size=2)
        return st.fixed_dictionaries(
            {"type": st.sampled_from(["paragraph", "heading", "text", "text", 1])},
            optional={
                "text": st.just("t") | _scalars,
                "attrs": st.dictionaries(st.text(max_size=2), values, max_size=3) | anything,
                "marks": st.lists(
                    st.fixed_dictionaries(
                        {"type": st.just("bold") | _scalars}, optional={"attrs": anything}
                    ),
                    max_size=2,
                )
                | anything,
                "content": st.lists(children, max_size=3) | anything,
            },
        )

    _leaf = st.fixed_dictionaries({"type": st.sampled_from(["text", "hr"]), "text": st.just("t")})
    _nodes = st.recursive(_node(_leaf), _node, max_leaves=15)
    _documents = st.fixed_dictionaries(
        {"type": st.just("doc")}, optional={"content": st.lists(_nodes, max_size=4) | _scalars}
    )

    @settings(database=None, deadline=None, max_examples=1000)
    @given(_documents)
    def test_fuzz_the_converter_raises_only_content_error(document):
        with contextlib.suppress(ContentError):  # and nothing else: no panic, no TypeError
            seed_state(document)


# --- REST ---------------------------------------------------------------------------------------


@pytest.fixture
def small_content_limit(settings):
    settings.CHORUS = {"DOC_MAX_CONTENT_BYTES": 2_000}


def _unchanged(note: Note) -> tuple:
    note.refresh_from_db()
    return note.title, note.data, bytes(note.yjs_state) if note.yjs_state else None


@pytest.mark.django_db
def test_patch_oversize_content_is_400_and_changes_nothing(
    auth_api, alice, note, small_content_limit
):
    before = _unchanged(note)
    content = {"md": "x" * 3_000, "json": pm_doc("y")}
    response = auth_api(alice).patch(
        f"/api/notes/{note.pk}/", {"title": "new", "data": {"content": content}}
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "bad_request" and "DOC_MAX_CONTENT_BYTES" in error["message"]
    assert _unchanged(note) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "document",
    [
        paragraph(attrs={"n": 2**64}),  # pycrdt panicked (a BaseException: not even a 500)
        paragraph(attrs=["level", 1]),  # AttributeError: 500
        text_node(marks=7),  # TypeError: 500
    ],
)
def test_patch_content_the_converter_cannot_read_is_400(auth_api, alice, note, document):
    before = _unchanged(note)
    response = auth_api(alice).patch(
        f"/api/notes/{note.pk}/", {"data": {"content": {"json": document}}}
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert _unchanged(note) == before


@pytest.mark.django_db
def test_post_with_unacceptable_content_is_400_and_creates_nothing(
    auth_api, bob, small_content_limit
):
    for content in ({"md": "x" * 3_000}, {"json": paragraph(attrs={"n": -(2**64)})}):
        response = auth_api(bob).post("/api/notes/", {"title": "t", "data": {"content": content}})
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "bad_request"
    assert not Note.objects.filter(owner=bob).exists()


@pytest.mark.django_db
def test_services_refuse_unstorable_content_below_the_http_parser(alice, note):
    """The REST parser refuses NUL and non-finite numbers first; the service refuses them
    as well, for any caller."""
    access = services.note_access(alice, note.pk)
    before = _unchanged(note)
    for content in ({"md": "x\x00y"}, {"json": paragraph(attrs={"n": float("inf")})}):
        with pytest.raises(services.BadRequest):
            services.update_note(access, data={"content": content})
        with pytest.raises(services.BadRequest):
            services.create_note(alice, "t", {"content": content})
    assert _unchanged(note) == before


# --- merge_save: the server renders the content; the state is stored whatever happens to it ----


def _typed(note: Note, text: str, **attrs) -> bytes:
    """The note's stored state plus ``text`` appended to the Text ``t`` and, as a paragraph
    (with ``attrs``), to the ``prosemirror`` fragment."""
    doc = doc_from_state(_stored_state(note))
    doc.get("t", type=Text).insert(0, text)
    paragraph = XmlElement("paragraph", attrs)
    doc.get(FRAGMENT, type=XmlFragment).children.append(paragraph)
    paragraph.children.append(XmlText(text))
    return doc.get_update()


def _stored_state(note: Note) -> bytes | None:
    state = Note.objects.values_list("yjs_state", flat=True).get(pk=note.pk)
    return bytes(state) if state is not None else None


def _save(note_id, state: bytes) -> bytes:
    """A live document's save: the state merged under the lock, then the content rendered
    from it and stored."""
    merged = merge_save(note_id, state)
    render_saved(note_id, merged)
    return merged


def _stored_text(note: Note) -> str:
    return str(doc_from_state(_stored_state(note)).get("t", type=Text))


def _stored(note: Note) -> tuple[dict, object]:
    return Note.objects.values_list("data", "updated_at").get(pk=note.pk)


@pytest.fixture
def save_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="chorus.notes.yjs")
    return caplog


@pytest.mark.django_db(transaction=True)
def test_a_save_stores_the_content_rendered_from_the_document_and_moves_updated_at(note):
    Note.objects.filter(pk=note.pk).update(data={"content": {"md": "client"}, "tags": ["a"]})
    _, before = _stored(note)
    _save(note.pk, _typed(note, "new"))
    data, updated_at = _stored(note)
    assert data == {
        "content": {
            "md": "hello\n\nworld\n\nnew",
            "html": "<p>hello</p><p>world</p><p>new</p>",
            "json": pm_doc("hello", "world", "new"),
        },
        "tags": ["a"],
    }
    assert updated_at > before


@pytest.mark.django_db(transaction=True)
def test_a_save_that_changes_no_content_writes_nothing(note):
    _save(note.pk, _typed(note, "new"))
    data, updated_at = _stored(note)
    doc = doc_from_state(_stored_state(note))
    doc.get("t", type=Text).insert(0, "not in the fragment ")  # a change, not to the content
    _save(note.pk, doc.get_update())
    assert _stored_text(note).startswith("not in the fragment")
    assert _stored(note) == (data, updated_at)


@pytest.mark.django_db(transaction=True)
def test_new_md_or_html_alone_is_stored_without_moving_updated_at(note):
    """Same document, another rendering (stored before the rules changed): rewritten, but
    the note keeps its place in the -updated_at order."""
    _save(note.pk, _typed(note, "new"))
    data, updated_at = _stored(note)
    stale = {**data, "content": {**data["content"], "md": "old rendering"}}
    Note.objects.filter(pk=note.pk).update(data=stale)
    doc = doc_from_state(_stored_state(note))
    doc.get("t", type=Text).insert(0, "x")
    _save(note.pk, doc.get_update())
    assert _stored(note) == (data, updated_at)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("data", [{}, {"content": {"md": "legacy", "html": "<p>legacy</p>"}}])
def test_an_empty_document_does_not_replace_a_content_without_json(plain_note, data):
    """Nothing, or a legacy md/html copy: an empty document has nothing better to show."""
    Note.objects.filter(pk=plain_note.pk).update(data=data)
    _, before = _stored(plain_note)
    doc = Doc()
    doc.get("t", type=Text).insert(0, "typed")
    _save(plain_note.pk, doc.get_update())
    assert _stored_text(plain_note) == "typed"
    assert _stored(plain_note) == (data, before)


@pytest.mark.django_db(transaction=True)
def test_a_document_emptied_by_its_editors_is_stored_empty(note):
    _save(note.pk, _typed(note, "new"))
    _, before = _stored(note)
    doc = doc_from_state(_stored_state(note))
    fragment = doc.get(FRAGMENT, type=XmlFragment)
    del fragment.children[0 : len(fragment.children)]
    _save(note.pk, doc.get_update())
    data, updated_at = _stored(note)
    assert data["content"] == {"md": "", "html": "", "json": {"type": "doc", "content": []}}
    assert updated_at > before


@pytest.mark.django_db(transaction=True)
def test_content_the_database_refuses_is_dropped_and_the_state_is_stored(note, save_warnings):
    """``Infinity`` (a node attribute a client wrote) is refused by SQLite's JSON_VALID
    check and by PostgreSQL's jsonb."""
    data_before = Note.objects.get(pk=note.pk).data
    marker = "secret-rendered-text"
    merged = _save(note.pk, _typed(note, marker, n=float("inf")))
    assert _stored_text(note) == marker
    assert _stored_state(note) == merged
    assert Note.objects.get(pk=note.pk).data == data_before
    warning = [r for r in save_warnings.records if r.name == "chorus.notes.yjs"]
    assert len(warning) == 1 and warning[0].levelno == logging.WARNING
    assert str(note.pk) in warning[0].getMessage() and marker not in save_warnings.text


@pytest.mark.django_db(transaction=True)
def test_a_document_the_renderer_cannot_convert_does_not_block_the_state(note, save_warnings):
    """A y-websocket client may nest elements deeper than Python recurses."""
    doc = doc_from_state(_stored_state(note))
    parent = doc.get(FRAGMENT, type=XmlFragment)
    for _ in range(5000):
        child = XmlElement("blockquote")
        parent.children.append(child)
        parent = child
    data_before = Note.objects.get(pk=note.pk).data
    merged = _save(note.pk, doc.get_update())
    assert _stored_state(note) == merged
    assert Note.objects.get(pk=note.pk).data == data_before
    assert "RecursionError" in save_warnings.text and str(note.pk) in save_warnings.text


@pytest.mark.django_db(transaction=True)
def test_a_stored_data_that_is_not_an_object_does_not_block_the_state(note, save_warnings):
    Note.objects.filter(pk=note.pk).update(data=["not", "an", "object"])
    _save(note.pk, _typed(note, "kept"))
    assert _stored_text(note) == "kept"
    assert Note.objects.get(pk=note.pk).data == ["not", "an", "object"]
    assert str(note.pk) in save_warnings.text


@pytest.mark.django_db(transaction=True)
def test_a_stored_data_python_cannot_write_back_does_not_block_the_state(note, save_warnings):
    """A number the database holds but Python cannot round-trip (written by another
    client): SQLite keeps ``1e999`` (read back as inf, written as Infinity: refused);
    PostgreSQL keeps ``1e5000`` as a 5001-digit numeric (more digits than Python parses)."""
    if connection.vendor == "sqlite":
        raw, literal = "%s", '{"keep": 1e999}'
    else:
        raw, literal = "CAST(%s AS jsonb)", '{"keep": 1e5000}'
    with connection.cursor() as cursor:
        table, column = Note._meta.db_table, Note._meta.pk.column
        pk = Note._meta.pk.get_db_prep_value(note.pk, connection)
        cursor.execute(f"UPDATE {table} SET data = {raw} WHERE {column} = %s", [literal, pk])
    _save(note.pk, _typed(note, "kept"))
    assert _stored_text(note) == "kept"
    assert str(note.pk) in save_warnings.text

"""Content changes through REST land in the Yjs document, the source of truth."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from notes.models import Note
from notes.yjs import FRAGMENT, fragment_to_prosemirror, merge_save
from realtime.sessions import get_registry
from tests.notes.helpers import grant, pm_doc, stored_json

pytestmark = pytest.mark.django_db


def rich_doc() -> dict:
    return {
        "type": "doc",
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "T"}]},
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "plain "},
                    {"type": "text", "text": "bold", "marks": [{"type": "bold"}]},
                ],
            },
        ],
    }


def test_json_patch_updates_the_yjs_state_and_the_server_renders_the_content(auth_api, bob, note):
    """The client's md/html are not kept: the stored content is rendered from the document."""
    grant(note, "write", user=bob)
    content = {"md": "client md", "html": "<h2>client</h2>", "json": rich_doc()}
    response = auth_api(bob).patch(f"/api/notes/{note.pk}/", {"data": {"content": content}})
    assert response.status_code == 200, response.content
    rendered = {
        "md": "## T\n\nplain **bold**",
        "html": "<h2>T</h2><p>plain <strong>bold</strong></p>",
        "json": rich_doc(),
    }
    assert response.json()["data"]["content"] == rendered
    assert stored_json(note) == rich_doc()
    assert note.data["content"] == rendered


def test_a_second_json_patch_keeps_working(auth_api, alice, note):
    client = auth_api(alice)
    url = f"/api/notes/{note.pk}/"
    assert client.patch(url, {"data": {"content": {"json": pm_doc("one")}}}).status_code == 200
    assert stored_json(note) == pm_doc("one")
    response = client.patch(url, {"data": {"content": {"json": pm_doc("two", "three")}}})
    assert response.status_code == 200
    assert stored_json(note) == pm_doc("two", "three")
    assert note.data["content"] == {
        "md": "two\n\nthree",
        "html": "<p>two</p><p>three</p>",
        "json": pm_doc("two", "three"),
    }


def test_json_patch_merges_with_edits_saved_by_a_live_editor(auth_api, alice, note):
    """A state saved by the socket layer (merge_save) and a REST change compose."""
    editor = Doc()
    editor.apply_update(bytes(note.yjs_state))
    typed = XmlElement("paragraph")
    editor.get(FRAGMENT, type=XmlFragment).children.append(typed)
    typed.children.append(XmlText("typed live"))
    merge_save(note.pk, editor.get_update())
    assert stored_json(note) == pm_doc("hello", "world", "typed live")
    response = auth_api(alice).patch(
        f"/api/notes/{note.pk}/", {"data": {"content": {"json": pm_doc("rest")}}}
    )
    assert response.status_code == 200
    note.refresh_from_db()
    editor.apply_update(bytes(note.yjs_state))
    assert fragment_to_prosemirror(editor.get(FRAGMENT, type=XmlFragment)) == pm_doc("rest")


def test_json_patch_on_a_note_without_state_creates_it(auth_api, alice, plain_note):
    response = auth_api(alice).patch(
        f"/api/notes/{plain_note.pk}/", {"data": {"content": {"json": pm_doc("seeded")}}}
    )
    assert response.status_code == 200
    assert response.json()["has_yjs_state"] is True
    assert stored_json(plain_note) == pm_doc("seeded")


@pytest.mark.parametrize(
    "content",
    [{"md": "# rewritten"}, {"html": "<p>x</p>", "md": "x"}, {"md": "x", "json": None}, {}],
)
def test_content_without_json_on_a_collaborative_note_is_409(auth_api, alice, note, content):
    before = (note.title, note.data, bytes(note.yjs_state), note.updated_at)
    response = auth_api(alice).patch(
        f"/api/notes/{note.pk}/", {"title": "also renamed", "data": {"content": content}}
    )
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "data.content.json" in error["message"]
    note.refresh_from_db()
    assert (note.title, note.data, bytes(note.yjs_state), note.updated_at) == before


def test_md_only_content_is_stored_when_there_is_no_yjs_state(auth_api, alice, plain_note):
    response = auth_api(alice).patch(
        f"/api/notes/{plain_note.pk}/", {"data": {"content": {"md": "new", "html": "<p>new</p>"}}}
    )
    assert response.status_code == 200, response.content
    assert response.json()["has_yjs_state"] is False
    plain_note.refresh_from_db()
    assert plain_note.data["content"] == {"md": "new", "html": "<p>new</p>"}
    assert plain_note.yjs_state is None


def test_md_only_content_is_409_while_the_document_is_open(auth_api, alice, plain_note):
    """No stored state yet, but an editor has the live document open: md cannot be merged."""
    group = f"doc.note.{plain_note.pk}"

    async def editor_joins() -> None:  # the registry is per event loop on Redis
        await get_registry().join_group(group, ["editor-sid"])

    async def editor_leaves() -> None:
        await get_registry().leave_group(group, "editor-sid")

    async_to_sync(editor_joins)()
    response = auth_api(alice).patch(
        f"/api/notes/{plain_note.pk}/", {"data": {"content": {"md": "new"}}}
    )
    assert response.status_code == 409, response.content
    plain_note.refresh_from_db()
    assert plain_note.data == {"content": {"md": "old"}}

    async_to_sync(editor_leaves)()
    response = auth_api(alice).patch(
        f"/api/notes/{plain_note.pk}/", {"data": {"content": {"md": "new"}}}
    )
    assert response.status_code == 200


def test_unchanged_json_leaves_the_state_alone(auth_api, alice, note):
    before = bytes(note.yjs_state)
    response = auth_api(alice).patch(
        f"/api/notes/{note.pk}/",
        {"data": {"content": {"md": "new md", "json": pm_doc("hello", "world")}}},
    )
    assert response.status_code == 200
    note.refresh_from_db()
    assert bytes(note.yjs_state) == before
    assert note.data["content"]["md"] == "hello\n\nworld"  # the server's, not "new md"


def test_title_only_patch_does_not_touch_the_document(auth_api, alice, note):
    before = bytes(note.yjs_state)
    assert auth_api(alice).patch(f"/api/notes/{note.pk}/", {"title": "t2"}).status_code == 200
    note.refresh_from_db()
    assert bytes(note.yjs_state) == before
    assert Note.objects.get(pk=note.pk).title == "t2"

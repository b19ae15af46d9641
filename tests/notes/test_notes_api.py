"""The notes REST API through HTTP: listing, reading, creating, changing, deleting, refusals."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from notes.models import Note
from tests.notes.helpers import grant, pm_doc, stored_json

pytestmark = pytest.mark.django_db

PRIVATE_VALUES = ("private bio", "carol's private bio", "carol-secret")


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()]


# --- list -------------------------------------------------------------------------------------


def test_list_shows_exactly_the_notes_i_can_read(auth_api, alice, bob, carol, make_user, team):
    own = Note.objects.create(owner=bob, title="bob's own")
    by_user = Note.objects.create(owner=alice, title="shared with bob")
    grant(by_user, "read", user=bob)
    by_group = Note.objects.create(owner=alice, title="shared with team")
    grant(by_group, "write", group=team)
    bob.groups.add(team)
    by_everyone = Note.objects.create(owner=carol, title="public")
    public = grant(by_everyone, "read")
    Note.objects.create(owner=alice, title="alice private")
    grant(Note.objects.create(owner=carol, title="carol to alice"), "write", user=alice)

    response = auth_api(bob).get("/api/notes/")
    access = {item["id"]: item["access"] for item in response.json()}
    assert access == {
        str(own.pk): "write",
        str(by_user.pk): "read",
        str(by_group.pk): "write",
        str(by_everyone.pk): "read",
    }

    stranger = make_user("dave")
    assert ids(auth_api(stranger).get("/api/notes/")) == [str(by_everyone.pk)]
    public.delete()
    assert ids(auth_api(stranger).get("/api/notes/")) == []


def test_list_is_most_recently_updated_first(auth_api, alice):
    first = Note.objects.create(owner=alice, title="first")
    second = Note.objects.create(owner=alice, title="second")
    third = Note.objects.create(owner=alice, title="third")
    first.title = "first, edited"
    first.save()
    assert ids(auth_api(alice).get("/api/notes/")) == [
        str(first.pk),
        str(third.pk),
        str(second.pk),
    ]


def test_admin_lists_every_note_with_write(auth_api, alice, admin, note):
    [item] = auth_api(admin).get("/api/notes/").json()
    assert item["id"] == str(note.pk)
    assert item["access"] == "write"


def test_note_payload_shape_and_no_private_fields(auth_api, alice, bob, note):
    grant(note, "read", user=bob)
    response = auth_api(bob).get(f"/api/notes/{note.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "title",
        "data",
        "owner",
        "access",
        "has_yjs_state",
        "document_id",
        "created_at",
        "updated_at",
    }
    assert body["owner"] == {"id": str(alice.pk), "name": "Alice"}
    assert body["access"] == "read"
    assert body["document_id"] == f"note:{note.pk}"
    assert body["has_yjs_state"] is True
    assert body["data"] == note.data
    assert body["updated_at"].endswith("Z")
    text = response.content.decode()
    assert '"yjs_state"' not in text
    for value in PRIVATE_VALUES:
        assert value not in text


def test_anonymous_is_refused(note):
    response = APIClient().get("/api/notes/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth_required"


# --- create -----------------------------------------------------------------------------------


def test_create_makes_me_owner_and_seeds_the_document(auth_api, bob):
    content = {"md": "# Hi", "html": "<h1>Hi</h1>", "json": pm_doc("Hi")}
    response = auth_api(bob).post(
        "/api/notes/", {"title": "  fresh ", "data": {"content": content, "pinned": True}}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == {"id": str(bob.pk), "name": "Bob"}
    assert body["access"] == "write"
    assert body["title"] == "fresh"
    assert body["has_yjs_state"] is True
    note = Note.objects.get(pk=body["id"])
    assert note.owner == bob
    rendered = {"md": "Hi", "html": "<p>Hi</p>", "json": pm_doc("Hi")}  # not the client's
    assert note.data == {"content": rendered, "pinned": True}
    assert body["data"]["content"] == rendered
    assert stored_json(note) == pm_doc("Hi")


def test_create_without_data(auth_api, bob):
    response = auth_api(bob).post("/api/notes/", {"title": "empty"})
    assert response.status_code == 201
    assert response.json()["data"] == {}
    assert response.json()["has_yjs_state"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 501},
        {"title": "t", "data": "text"},
        {"title": "t", "data": ["a"]},
        {"title": "t", "data": {"content": "md"}},
        {"title": "t", "data": {"content": {"json": "not an object"}}},
        {"title": "t", "data": {"content": {"md": 5}}},
        {"title": "t", "data": {"content": {"json": {"type": "paragraph"}}}},
        {"title": "t", "data": {"content": {"json": {"type": "doc", "content": [{"x": 1}]}}}},
    ],
)
def test_create_bad_input_is_400_and_creates_nothing(auth_api, bob, body):
    response = auth_api(bob).post("/api/notes/", body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert not Note.objects.exists()


# --- read -------------------------------------------------------------------------------------


def test_unreadable_or_unknown_note_is_404_for_every_method(auth_api, bob, note):
    client = auth_api(bob)
    for url in (f"/api/notes/{note.pk}/", f"/api/notes/{uuid.uuid4()}/"):
        for method, kwargs in (
            ("get", {}),
            ("patch", {"data": {"title": "x"}}),
            ("delete", {}),
        ):
            response = getattr(client, method)(url, **kwargs)
            assert response.status_code == 404, (method, url)
            assert response.json()["error"]["code"] == "not_found"
    for url in (f"/api/notes/{note.pk}/grants/", f"/api/notes/{note.pk}/grants/{uuid.uuid4()}/"):
        assert client.get(url).status_code in (404, 405)
        assert client.delete(url).status_code in (404, 405)
    note.refresh_from_db()
    assert note.title == "plan"


def test_group_and_everyone_grants_give_read(auth_api, bob, note, team):
    client = auth_api(bob)
    assert client.get(f"/api/notes/{note.pk}/").status_code == 404
    grant(note, "read", group=team)
    bob.groups.add(team)
    assert client.get(f"/api/notes/{note.pk}/").json()["access"] == "read"
    bob.groups.remove(team)
    assert client.get(f"/api/notes/{note.pk}/").status_code == 404
    grant(note, "write")
    assert client.get(f"/api/notes/{note.pk}/").json()["access"] == "write"


# --- update -----------------------------------------------------------------------------------


def test_reader_patch_is_403_and_nothing_changes(auth_api, bob, note):
    grant(note, "read", user=bob)
    before = (note.title, note.data, bytes(note.yjs_state))
    for body in (
        {"title": "mine now"},
        {"data": {"content": {"json": pm_doc("overwritten")}}},
        {"title": ""},
    ):
        response = auth_api(bob).patch(f"/api/notes/{note.pk}/", body)
        assert response.status_code == 403, body
        assert response.json()["error"]["code"] == "forbidden"
    note.refresh_from_db()
    assert (note.title, note.data, bytes(note.yjs_state)) == before


def test_writer_patches_title_and_merges_data_shallowly(auth_api, bob, note):
    grant(note, "write", user=bob)
    note.data = {**note.data, "pinned": False, "tags": ["a"]}
    note.save()
    before_updated = note.updated_at
    response = auth_api(bob).patch(
        f"/api/notes/{note.pk}/", {"title": "renamed", "data": {"pinned": True, "color": "red"}}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["title"] == "renamed"
    assert body["access"] == "write"
    note.refresh_from_db()
    assert note.title == "renamed"
    assert note.data["pinned"] is True
    assert note.data["tags"] == ["a"]
    assert note.data["color"] == "red"
    assert note.data["content"]["md"] == "hello\n\nworld"
    assert note.updated_at > before_updated
    assert body["data"] == note.data


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"titel": "typo"},
        {"title": ""},
        {"title": "x" * 501},
        {"data": "text"},
        {"data": None},
        {"data": {"content": None}},
        {"data": {"content": {"json": ["not", "a", "doc"]}}},
        {"title": "ok", "data": {"content": {"json": {"type": "paragraph"}}}},
        {"data": {"content": {"json": {"type": "doc", "content": "nope"}}}},
    ],
)
def test_patch_bad_input_is_400_and_nothing_changes(auth_api, alice, note, body):
    before = (note.title, note.data, bytes(note.yjs_state), note.updated_at)
    response = auth_api(alice).patch(f"/api/notes/{note.pk}/", body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "bad_request"
    note.refresh_from_db()
    assert (note.title, note.data, bytes(note.yjs_state), note.updated_at) == before


def test_prosemirror_error_message_is_returned(auth_api, alice, note):
    response = auth_api(alice).patch(
        f"/api/notes/{note.pk}/", {"data": {"content": {"json": {"type": "paragraph"}}}}
    )
    assert response.status_code == 400
    assert "ProseMirror document" in response.json()["error"]["message"]


# --- delete -----------------------------------------------------------------------------------


def test_delete_is_for_the_owner_and_admins_only(auth_api, alice, bob, carol, admin, note):
    grant(note, "write", user=bob)
    grant(note, "read", user=carol)
    for user in (bob, carol):
        response = auth_api(user).delete(f"/api/notes/{note.pk}/")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert Note.objects.filter(pk=note.pk).exists()

    assert auth_api(alice).delete(f"/api/notes/{note.pk}/").status_code == 204
    assert not Note.objects.filter(pk=note.pk).exists()
    assert auth_api(alice).get(f"/api/notes/{note.pk}/").status_code == 404

    other = Note.objects.create(owner=bob, title="bob's")
    assert auth_api(admin).delete(f"/api/notes/{other.pk}/").status_code == 204
    assert not Note.objects.filter(pk=other.pk).exists()
    assert User.objects.filter(pk=bob.pk).exists()

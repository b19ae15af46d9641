"""Sharing through HTTP: who sees and changes grants, validation, upsert, unsharing."""

from __future__ import annotations

import uuid

import pytest

from notes.models import Note, NoteGrant
from tests.notes.helpers import grant

pytestmark = pytest.mark.django_db


def grants_url(note: Note) -> str:
    return f"/api/notes/{note.pk}/grants/"


def test_owner_shares_with_a_user_and_granting_again_changes_the_permission(
    auth_api, alice, carol, note
):
    client = auth_api(alice)
    assert auth_api(carol).get(f"/api/notes/{note.pk}/").status_code == 404

    response = client.post(
        grants_url(note),
        {"principal_type": "user", "principal_id": str(carol.pk), "permission": "read"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["principal_type"] == "user"
    assert body["principal"] == {"id": str(carol.pk), "name": "Carol"}
    assert body["permission"] == "read"
    assert set(body) == {
        "id",
        "principal_type",
        "principal",
        "permission",
        "created_at",
        "updated_at",
    }
    assert "private" not in response.content.decode()
    assert "secret" not in response.content.decode()
    assert auth_api(carol).get(f"/api/notes/{note.pk}/").json()["access"] == "read"

    again = client.post(
        grants_url(note),
        {"principal_type": "user", "principal_id": str(carol.pk), "permission": "write"},
    )
    assert again.status_code == 200, again.content
    assert again.json()["id"] == body["id"]
    assert again.json()["permission"] == "write"
    assert NoteGrant.objects.filter(note=note).count() == 1
    assert auth_api(carol).get(f"/api/notes/{note.pk}/").json()["access"] == "write"

    same = client.post(
        grants_url(note),
        {"principal_type": "user", "principal_id": str(carol.pk), "permission": "write"},
    )
    assert same.status_code == 200
    assert NoteGrant.objects.filter(note=note).count() == 1


def test_group_and_everyone_grants(auth_api, alice, bob, make_user, note, team):
    client = auth_api(alice)
    bob.groups.add(team)
    response = client.post(
        grants_url(note),
        {"principal_type": "group", "principal_id": team.pk, "permission": "write"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["principal"] == {"id": team.pk, "name": "team"}
    assert auth_api(bob).get(f"/api/notes/{note.pk}/").json()["access"] == "write"

    by_string_id = client.post(
        grants_url(note),
        {"principal_type": "group", "principal_id": str(team.pk), "permission": "read"},
    )
    assert by_string_id.status_code == 200
    assert by_string_id.json()["permission"] == "read"

    response = client.post(grants_url(note), {"principal_type": "everyone", "permission": "read"})
    assert response.status_code == 201, response.content
    assert response.json()["principal"] is None
    stranger = make_user("dave")
    assert auth_api(stranger).get(f"/api/notes/{note.pk}/").json()["access"] == "read"

    listed = client.get(grants_url(note))
    assert listed.status_code == 200
    assert [g["principal_type"] for g in listed.json()] == ["group", "everyone"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"principal_type": "robot", "permission": "read"},
        {"principal_type": "everyone"},
        {"principal_type": "everyone", "permission": "admin"},
        {"principal_type": "everyone", "permission": "read", "principal_id": "x"},
        {"principal_type": "user", "permission": "read"},
        {"principal_type": "user", "permission": "read", "principal_id": None},
        {"principal_type": "user", "permission": "read", "principal_id": "not-a-uuid"},
        {"principal_type": "user", "permission": "read", "principal_id": str(uuid.uuid4())},
        {"principal_type": "user", "permission": "read", "principal_id": 1},
        {"principal_type": "group", "permission": "read"},
        {"principal_type": "group", "permission": "read", "principal_id": 999999},
        {"principal_type": "group", "permission": "read", "principal_id": 10**30},
        {"principal_type": "group", "permission": "read", "principal_id": True},
        {"principal_type": "group", "permission": "read", "principal_id": [1]},
        {"principal_type": "group", "permission": "read", "principal_id": "1x"},
    ],
)
def test_invalid_grants_are_400_and_create_nothing(auth_api, alice, note, team, body):
    response = auth_api(alice).post(grants_url(note), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert not NoteGrant.objects.exists()


def test_principal_must_match_its_type(auth_api, alice, bob, note, team):
    client = auth_api(alice)
    group_as_user = client.post(
        grants_url(note), {"principal_type": "user", "principal_id": team.pk, "permission": "read"}
    )
    user_as_group = client.post(
        grants_url(note),
        {"principal_type": "group", "principal_id": str(bob.pk), "permission": "read"},
    )
    assert group_as_user.status_code == 400
    assert user_as_group.status_code == 400
    assert "principal_id" in user_as_group.json()["error"]["fields"]
    assert not NoteGrant.objects.exists()


def test_granting_the_owner_is_400(auth_api, alice, note):
    response = auth_api(alice).post(
        grants_url(note),
        {"principal_type": "user", "principal_id": str(alice.pk), "permission": "read"},
    )
    assert response.status_code == 400
    assert not NoteGrant.objects.exists()


def test_who_may_see_and_change_grants(auth_api, alice, bob, carol, admin, make_user, note):
    grant(note, "write", user=bob)
    grant(note, "read", user=carol)
    stranger = make_user("dave")
    body = {"principal_type": "user", "principal_id": str(stranger.pk), "permission": "read"}

    assert auth_api(alice).get(grants_url(note)).status_code == 200
    assert auth_api(admin).get(grants_url(note)).status_code == 200
    assert len(auth_api(bob).get(grants_url(note)).json()) == 2
    reader = auth_api(carol).get(grants_url(note))
    assert reader.status_code == 403
    assert reader.json()["error"]["code"] == "forbidden"
    assert auth_api(stranger).get(grants_url(note)).status_code == 404

    for user in (bob, carol):
        response = auth_api(user).post(grants_url(note), body)
        assert response.status_code == 403
    assert auth_api(stranger).post(grants_url(note), body).status_code == 404
    assert NoteGrant.objects.filter(note=note).count() == 2

    assert auth_api(admin).post(grants_url(note), body).status_code == 201
    assert NoteGrant.objects.filter(note=note).count() == 3


def test_deleting_a_grant_unshares(auth_api, alice, bob, carol, admin, note):
    bobs = grant(note, "write", user=bob)
    carols = grant(note, "read", user=carol)
    other_note = Note.objects.create(owner=alice, title="other")

    assert auth_api(bob).delete(f"{grants_url(note)}{carols.pk}/").status_code == 403
    assert auth_api(carol).delete(f"{grants_url(note)}{carols.pk}/").status_code == 403
    assert auth_api(alice).delete(f"{grants_url(other_note)}{carols.pk}/").status_code == 404
    assert auth_api(alice).delete(f"{grants_url(note)}{uuid.uuid4()}/").status_code == 404
    assert NoteGrant.objects.filter(note=note).count() == 2

    assert auth_api(alice).delete(f"{grants_url(note)}{carols.pk}/").status_code == 204
    assert auth_api(carol).get(f"/api/notes/{note.pk}/").status_code == 404
    assert auth_api(admin).delete(f"{grants_url(note)}{bobs.pk}/").status_code == 204
    assert auth_api(bob).get(f"/api/notes/{note.pk}/").status_code == 404
    assert not NoteGrant.objects.exists()

"""What REST changes publish on the channel layer: Yjs updates for live editors, note-events,
note-room evictions — after commit only."""

from __future__ import annotations

import pytest
from django.db import transaction
from pycrdt import Doc, XmlFragment

from notes import services
from notes.yjs import FRAGMENT, fragment_to_prosemirror
from tests.notes.helpers import grant, pm_doc

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE_VALUES = ("private bio", "carol's private bio", "carol-secret", "date_of_birth")


def test_json_patch_publishes_the_yjs_update_to_live_editors(
    auth_api, bob, note, tap, django_capture_on_commit_callbacks
):
    grant(note, "write", user=bob)
    before = bytes(note.yjs_state)
    live = tap(f"doc.note.{note.pk}")
    new = pm_doc("rewritten", "by REST")

    with django_capture_on_commit_callbacks(execute=True):
        response = auth_api(bob).patch(
            f"/api/notes/{note.pk}/", {"data": {"content": {"json": new}}}
        )
    assert response.status_code == 200, response.content

    message = live.receive()
    assert message["type"] == "chorus.doc"
    assert message["kind"] == "update"
    assert message["note_id"] == str(note.pk)
    assert message["user_id"] == str(bob.pk)
    assert isinstance(message["payload"], bytes)
    editor = Doc()
    editor.apply_update(before)
    editor.apply_update(message["payload"])
    assert fragment_to_prosemirror(editor.get(FRAGMENT, type=XmlFragment)) == new
    assert live.nothing()


def test_every_patch_is_a_separate_update_that_composes(auth_api, alice, note, tap):
    live = tap(f"doc.note.{note.pk}")
    editor = Doc()
    editor.apply_update(bytes(note.yjs_state))
    client = auth_api(alice)
    for text in ("one", "two"):
        response = client.patch(
            f"/api/notes/{note.pk}/", {"data": {"content": {"json": pm_doc(text)}}}
        )
        assert response.status_code == 200
        editor.apply_update(live.receive()["payload"])
        assert fragment_to_prosemirror(editor.get(FRAGMENT, type=XmlFragment)) == pm_doc(text)


def test_patch_emits_note_events_with_the_public_note(auth_api, alice, carol, note, tap):
    grant(note, "write", user=carol)
    room = tap(f"note.{note.pk}")
    response = auth_api(carol).patch(f"/api/notes/{note.pk}/", {"title": "renamed"})
    assert response.status_code == 200

    name, payload, frame = room.event()
    assert name == "note-events"
    assert payload["id"] == str(note.pk)
    assert payload["title"] == "renamed"
    assert payload["owner"] == {"id": str(alice.pk), "name": "Alice"}
    assert payload["document_id"] == f"note:{note.pk}"
    assert payload["data"] == response.json()["data"]
    assert payload["updated_at"] == response.json()["updated_at"]
    assert "access" not in payload
    assert "yjs_state" not in payload
    for value in PRIVATE_VALUES:
        assert value not in frame
    assert room.nothing()


def test_title_only_patch_publishes_no_document_update(auth_api, alice, note, tap):
    live = tap(f"doc.note.{note.pk}")
    assert auth_api(alice).patch(f"/api/notes/{note.pk}/", {"title": "t"}).status_code == 200
    assert live.nothing()


def test_delete_emits_note_events(auth_api, alice, note, tap):
    room = tap(f"note.{note.pk}")
    assert auth_api(alice).delete(f"/api/notes/{note.pk}/").status_code == 204
    name, payload, _ = room.event()
    assert (name, payload) == ("note-events", {"id": str(note.pk), "deleted": True})


def test_refused_changes_emit_nothing(auth_api, alice, bob, note, tap):
    grant(note, "read", user=bob)
    listeners = tap(f"note.{note.pk}", f"doc.note.{note.pk}")
    url = f"/api/notes/{note.pk}/"
    assert auth_api(alice).patch(url, {"data": {"content": {"md": "md only"}}}).status_code == 409
    bad_json = {"data": {"content": {"json": {"type": "paragraph"}}}}
    assert auth_api(alice).patch(url, bad_json).status_code == 400
    assert auth_api(bob).patch(url, {"title": "x"}).status_code == 403
    assert auth_api(bob).delete(url).status_code == 403
    assert listeners.nothing()


def test_a_rolled_back_transaction_emits_nothing(alice, note, tap):
    listeners = tap(f"note.{note.pk}", f"doc.note.{note.pk}")
    access = services.note_access(alice, note.pk)
    before = bytes(note.yjs_state)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.update_note(access, title="never", data={"content": {"json": pm_doc("never")}})
        raise Abort

    assert listeners.nothing()
    note.refresh_from_db()
    assert note.title == "plan"
    assert bytes(note.yjs_state) == before


def rechecked(room) -> None:
    """The next layer message asks every instance to re-check access to the note's room."""
    message = room.receive()
    assert message["type"] == "chorus.note_access", message


def test_grant_changes_emit_note_events(auth_api, alice, carol, note, tap):
    room = tap(f"note.{note.pk}")
    body = {"principal_type": "user", "principal_id": str(carol.pk), "permission": "read"}
    created = auth_api(alice).post(f"/api/notes/{note.pk}/grants/", body)
    assert created.status_code == 201
    name, payload, _ = room.event()
    assert name == "note-events"
    assert payload["id"] == str(note.pk)
    rechecked(room)

    assert auth_api(alice).post(f"/api/notes/{note.pk}/grants/", body).status_code == 200
    assert room.nothing()  # same permission again: nothing changed, nothing announced

    changed = auth_api(alice).post(f"/api/notes/{note.pk}/grants/", {**body, "permission": "write"})
    assert changed.status_code == 200
    assert room.event()[0] == "note-events"
    rechecked(room)

    grant_id = created.json()["id"]
    assert auth_api(alice).delete(f"/api/notes/{note.pk}/grants/{grant_id}/").status_code == 204
    rechecked(room)  # whoever lost access leaves first: the announcement does not reach them
    assert room.event()[0] == "note-events"


def test_every_unsharing_asks_the_note_room_to_recheck_access(auth_api, alice, team, note, tap):
    """Who leaves is decided by each instance for its own sockets (the ``everyone`` grant's
    users cannot be listed here): tests/live/test_hardening_live.py follows the sockets."""
    grants = [grant(note, "read"), grant(note, "write", group=team)]  # everyone, a group
    room = tap(f"note.{note.pk}")
    client = auth_api(alice)
    for made in grants:
        assert client.delete(f"/api/notes/{note.pk}/grants/{made.pk}/").status_code == 204
        rechecked(room)
        assert room.event()[0] == "note-events"
    assert room.nothing()


def test_deleting_a_group_asks_its_notes_to_recheck_access(team, note, tap):
    """The group's grants go with it (a cascade: no m2m signal); its members may lose access."""
    grant(note, "read", group=team)
    room = tap(f"note.{note.pk}")
    with transaction.atomic():
        team.delete()
    rechecked(room)
    assert room.nothing()

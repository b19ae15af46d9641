"""Every admin page renders for a superuser, and the admin actions work."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import RevokedToken
from accounts.tokens import issue_token_pair
from channels_app.models import Channel, ChannelMember, Message, Reaction
from notes.models import Note, NoteGrant, NoteUpdate, PrincipalType

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(alice, bob):
    channel = Channel.objects.create(name="general", type="group", owner=alice)
    ChannelMember.objects.create(channel=channel, user=alice, role="owner")
    message = Message.objects.create(channel=channel, author=alice, content="hi")
    Reaction.objects.create(message=message, user=bob, name="+1")
    note = Note.objects.create(owner=alice, title="n", yjs_state=b"\x00\x00")
    NoteGrant.objects.create(note=note, principal_type=PrincipalType.USER, user=bob)
    from django.utils import timezone

    RevokedToken.objects.create(jti="x", user=alice, expires_at=timezone.now())
    return {"channel": channel, "message": message, "note": note}


@pytest.fixture
def root(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, root):
    client.force_login(root)
    return client


def test_every_registered_model_has_rendering_admin_pages(staff_client, populated, rf, root):
    models = list(admin.site._registry)
    assert len(models) >= 9
    request = rf.get("/admin/")
    request.user = root
    for model in models:
        meta = model._meta
        can_add = admin.site._registry[model].has_add_permission(request)
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert staff_client.get(changelist).status_code == 200, changelist
        add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
        assert staff_client.get(add).status_code == (200 if can_add else 403), add
        obj = model._default_manager.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert staff_client.get(change).status_code == 200, change


def test_revoke_all_sessions_action_voids_tokens(staff_client, auth_api, alice):
    access = issue_token_pair(alice)["access"]
    response = staff_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "revoke_all_sessions", "_selected_action": [str(alice.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert auth_api(access).get("/api/users/me/").status_code == 401


def test_the_note_page_shows_how_many_updates_wait_in_the_log(staff_client, populated):
    note = populated["note"]
    NoteUpdate.objects.bulk_create([NoteUpdate(note=note, update=b"\x00\x00") for _ in range(3)])
    page = staff_client.get(reverse("admin:notes_note_change", args=[note.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Updates in the log (not yet merged by a save)" in text
    assert '<div class="readonly">3</div>' in text

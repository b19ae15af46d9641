"""Keys as an operator makes them: the commands and the admin. A key is shown once, works,
and only its hash is stored; revoking refuses it from the next request on."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from serverapi.models import ApiKey, hash_key

pytestmark = pytest.mark.django_db(transaction=True)

KEY_PATTERN = re.compile(r"chorus_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


def publish(user, key: str) -> tuple[int, dict]:
    """POST an event to the user through the server API with ``key`` (sync test client)."""
    response = Client().post(
        f"/api/server/users/{user.id}/events/",
        {"event": "status", "data": {}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.status_code, response.json()


def create(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_create_api_key_prints_a_key_that_works_and_stores_its_hash(alice):
    key, note = create("--name", "webui", "--scope", "publish", "--scope", "call")
    assert KEY_PATTERN.fullmatch(key), key
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.scopes, api_key.prefix) == (
        "webui",
        ["call", "publish"],
        key.split("_")[1],
    )
    assert api_key.key_hash == hash_key(key)
    assert key not in str(list(ApiKey.objects.values()))  # nowhere in clear
    assert api_key.prefix in note and key not in note
    assert publish(alice, key) == (200, {"ok": True})


def test_revoke_api_key_refuses_the_key_from_the_next_request(alice):
    key, _ = create("--name", "webui", "--scope", "publish")
    prefix = key.split("_")[1]
    out = StringIO()
    call_command("revoke_api_key", prefix, stdout=out)
    assert prefix in out.getvalue()
    status, body = publish(alice, key)
    assert (status, body["error"]["code"]) == (401, "key_revoked")
    with pytest.raises(CommandError, match="already revoked"):
        call_command("revoke_api_key", prefix)


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "x"],  # no scope
        ["--name", "x", "--scope", "everything"],
        ["--name", " ", "--scope", "publish"],
        ["--scope", "publish"],  # no name
    ],
)
def test_create_api_key_refuses_bad_input(args):
    with pytest.raises(CommandError):
        create(*args)
    assert not ApiKey.objects.exists()


def test_revoke_api_key_of_an_unknown_prefix_fails():
    with pytest.raises(CommandError, match="No API key"):
        call_command("revoke_api_key", "00000000")


@pytest.fixture
def staff(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_admin_add_shows_the_key_once(staff, alice):
    response = staff.post(
        reverse("admin:serverapi_apikey_add"),
        {"name": "workers", "scopes": ["publish", "presence"]},
        follow=True,
    )
    assert response.status_code == 200
    shown = KEY_PATTERN.findall(response.content.decode())
    assert len(set(shown)) == 1, response.content.decode()[:2000]
    key = shown[0]
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["presence", "publish"]
    assert api_key.created_by is not None and api_key.created_by.username == "root"
    assert publish(alice, key) == (200, {"ok": True})
    # never again: not on the list, not on the key's page (neither is the hash)
    for page in (
        reverse("admin:serverapi_apikey_changelist"),
        reverse("admin:serverapi_apikey_change", args=[api_key.pk]),
    ):
        content = staff.get(page).content.decode()
        assert api_key.prefix in content
        assert key not in content and api_key.key_hash not in content


def test_admin_add_without_a_scope_is_refused(staff):
    response = staff.post(reverse("admin:serverapi_apikey_add"), {"name": "x", "scopes": []})
    assert response.status_code == 200  # the form again, with its error
    assert not ApiKey.objects.exists()


def test_admin_list_shows_state_and_the_revoke_action_revokes(staff, alice):
    _live, live_key = ApiKey.issue("live", ["publish"])
    gone, gone_key = ApiKey.issue("gone", ["publish"])
    changelist = reverse("admin:serverapi_apikey_changelist")
    response = staff.post(
        changelist, {"action": "revoke", "_selected_action": [gone.pk]}, follow=True
    )
    assert "Revoked 1 key(s)." in response.content.decode()
    gone.refresh_from_db()
    assert gone.revoked_at is not None
    assert publish(alice, gone_key)[1]["error"]["code"] == "key_revoked"
    assert publish(alice, live_key)[0] == 200
    content = staff.get(changelist).content.decode()
    assert "revoked" in content and "active" in content

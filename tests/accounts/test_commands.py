"""The accounts management commands, run as an operator would run them."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import jwt
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import RevokedToken, Role, User
from channels_app.models import Channel, ChannelMember
from notes.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue().strip()


def test_issue_token_prints_a_token_the_api_accepts(auth_api, alice):
    token = run("issue_token", "alice")
    assert auth_api(token).get("/api/users/me/").json()["id"] == str(alice.id)


def test_issue_token_ttl_sets_the_lifetime(alice):
    claims = jwt.decode(
        run("issue_token", "alice", "--ttl", "42"), options={"verify_signature": False}
    )
    assert claims["exp"] - claims["iat"] == 42


@pytest.mark.parametrize("args", [["nobody"], ["alice", "--ttl", "0"]])
def test_issue_token_refuses_bad_input(alice, args):
    with pytest.raises(CommandError):
        run("issue_token", *args)


def test_issue_token_refuses_a_pending_user(make_user):
    make_user("carol", role=Role.PENDING)
    with pytest.raises(CommandError, match="pending"):
        run("issue_token", "carol")


def test_revoke_tokens_voids_every_token(auth_api, alice):
    token = run("issue_token", "alice")
    assert "Revoked" in run("revoke_tokens", "alice")
    response = auth_api(token).get("/api/users/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"
    with pytest.raises(CommandError):
        run("revoke_tokens", "nobody")


def test_seed_demo_is_idempotent_and_uses_demo_password(api, settings):
    settings.DEMO_PASSWORD = "demo-password-123"
    first = run("seed_demo")
    assert "alice" in first and "demo-password-123" not in first
    run("seed_demo")
    assert User.objects.filter(username__in=["alice", "bob", "carol"]).count() == 3
    assert Channel.objects.filter(name="general").count() == 1
    general = Channel.objects.get(name="general")
    assert general.type == "group"
    assert set(
        ChannelMember.objects.filter(channel=general).values_list("user__username", flat=True)
    ) == {"alice", "bob", "carol"}
    note = Note.objects.get(title="Welcome")
    bob, carol = User.objects.get(username="bob"), User.objects.get(username="carol")
    assert note.owner.username == "alice" and note.access_for(bob) == "write"
    assert note.access_for(carol) == "read"  # the demo's read-only user
    response = api.post("/api/auth/token/", {"username": "bob", "password": "demo-password-123"})
    assert response.status_code == 200


def test_seed_demo_generates_and_prints_a_password_when_none_is_set(api, settings):
    settings.DEMO_PASSWORD = ""
    out = run("seed_demo")
    password = out.rsplit("password: ", 1)[1]
    response = api.post("/api/auth/token/", {"username": "alice", "password": password})
    assert response.status_code == 200


def test_seed_demo_if_empty_skips_when_users_exist(make_user):
    make_user("someone")
    assert "skipped" in run("seed_demo", "--if-empty")
    assert not User.objects.filter(username="alice").exists()


def test_purge_revoked_tokens_deletes_only_expired_records(alice):
    now = timezone.now()
    RevokedToken.objects.create(jti="old", user=alice, expires_at=now - timedelta(minutes=1))
    RevokedToken.objects.create(jti="live", user=alice, expires_at=now + timedelta(minutes=10))
    assert "Purged 1" in run("purge_revoked_tokens")
    assert list(RevokedToken.objects.values_list("jti", flat=True)) == ["live"]

"""Who may call the server API: keys in the header only, scopes, revocation, the rate limit,
and the JSON error (with a ``code``) of every refusal."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.tokens import issue_access_token
from serverapi import throttling
from serverapi.models import ApiKey, hash_key

pytestmark = pytest.mark.django_db(transaction=True)

EVENT = {"event": "status", "data": {"done": False}}


def path_for(user) -> str:
    return f"users/{user.id}/events/"


async def test_a_key_with_the_scope_publishes(server_api, alice):
    answer = await (await server_api("publish")).post(path_for(alice), EVENT)
    assert (answer.status, answer.body) == (200, {"ok": True})


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "auth_required"),
        ({"Authorization": "Bearer chorus_0123abcd_not-a-real-secret"}, "invalid_key"),
        ({"Authorization": "Bearer nonsense"}, "invalid_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_key"),
        ({"Authorization": "Bearer"}, "invalid_key"),
    ],
    ids=["missing", "unknown", "malformed", "basic", "empty"],
)
async def test_missing_or_unknown_key_is_401(server_api, alice, headers, code):
    answer = await (await server_api()).post(path_for(alice), EVENT, headers=headers)
    assert (answer.status, answer.code) == (401, code)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="server-api"'


async def test_a_user_token_is_not_a_key(server_api, alice):
    token = await sync_to_async(issue_access_token)(alice)
    answer = await (await server_api(key=token)).post(path_for(alice), EVENT)
    assert (answer.status, answer.code) == (401, "invalid_key")


async def test_a_key_with_a_wrong_secret_is_refused(server_api, make_key, alice):
    _, key = await sync_to_async(make_key)()
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    answer = await (await server_api(key=forged)).post(path_for(alice), EVENT)
    assert (answer.status, answer.code) == (401, "invalid_key")


async def test_a_revoked_key_is_refused(server_api, make_key, alice):
    api_key, key = await sync_to_async(make_key)()
    assert (await (await server_api(key=key)).post(path_for(alice), EVENT)).status == 200
    assert await sync_to_async(api_key.revoke)()
    answer = await (await server_api(key=key)).post(path_for(alice), EVENT)
    assert (answer.status, answer.code) == (401, "key_revoked")


@pytest.mark.parametrize(
    "query",
    ["key={key}", "api_key={key}", "access_token=x", "token=x", "anything={key}"],
)
async def test_a_key_in_the_query_string_is_refused(server_api, make_key, alice, query):
    """Even with a good header: a key in the URL is in access logs already."""
    _, key = await sync_to_async(make_key)()
    caller = await server_api(key=key)
    answer = await caller.post(path_for(alice) + "?" + query.format(key=key), EVENT)
    assert (answer.status, answer.code) == (400, "key_in_query")
    assert "Authorization header" in answer.body["error"]["message"]


@pytest.mark.parametrize(
    ("scope", "method", "path", "body"),
    [
        ("publish", "POST", "users/{user}/events/", EVENT),
        ("publish", "POST", "rooms/app.demo/members/", {"user": "{user}"}),
        ("publish", "DELETE", "rooms/app.demo/members/{user}/", None),
        ("disconnect", "POST", "users/{user}/disconnect/", {}),
        ("disconnect", "POST", "users/{user}/revoke-tokens/", {}),
    ],
)
async def test_each_operation_needs_its_scope(server_api, alice, scope, method, path, body):
    others = [s for s in ("publish", "call", "presence", "disconnect") if s != scope]
    path = path.format(user=alice.id)
    if body and body.get("user"):
        body = {"user": str(alice.id)}
    refused = await (await server_api(*others)).request(method, path, body)
    assert (refused.status, refused.code) == (403, "missing_scope")
    assert f"'{scope}'" in refused.body["error"]["message"]
    allowed = await (await server_api(scope)).request(method, path, body)
    assert allowed.status == 200, allowed.body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "event"),
        ({"event": ""}, "event"),
        ({"event": "x" * 201}, "event"),
        ({"event": "connect"}, "event"),
        ({"event": "disconnect", "data": 1}, "event"),
        ({"event": 5}, "event"),
    ],
)
async def test_a_bad_body_is_400_with_field_errors(server_api, alice, body, field):
    answer = await (await server_api()).post(path_for(alice), body)
    assert (answer.status, answer.code) == (400, "bad_request")
    assert field in answer.body["error"]["fields"]


async def test_a_body_that_is_not_json_is_400(server_api, alice):
    answer = await (await server_api()).request("POST", path_for(alice), raw=b"{nope")
    assert (answer.status, answer.code) == (400, "bad_request")


@pytest.mark.parametrize("user", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
async def test_an_unknown_user_is_404(server_api, user):
    for path, body in (
        (f"users/{user}/events/", EVENT),
        (f"users/{user}/disconnect/", {}),
        (f"users/{user}/revoke-tokens/", {}),
    ):
        answer = await (await server_api()).post(path, body)
        assert (answer.status, answer.code) == (404, "user_not_found"), path


async def test_the_rate_limit_is_per_key_with_retry_after(server_api, alice, settings, monkeypatch):
    settings.SERVER_API_RATE_LIMIT = 3
    second = 1_000_000.0
    monkeypatch.setattr(throttling, "now", lambda: second + 0.5)  # one window throughout
    limited, other = await server_api(), await server_api()
    for _ in range(3):
        assert (await limited.post(path_for(alice), EVENT)).status == 200
    answer = await limited.post(path_for(alice), EVENT)
    assert (answer.status, answer.code) == (429, "rate_limited")
    assert answer.headers["Retry-After"] == "1"
    assert (await other.post(path_for(alice), EVENT)).status == 200  # its own count
    second += 1  # the next window
    assert (await limited.post(path_for(alice), EVENT)).status == 200


async def test_last_used_at_is_written_at_most_once_a_minute(server_api, make_key, alice):
    api_key, key = await sync_to_async(make_key)()
    caller = await server_api(key=key)
    assert (await caller.post(path_for(alice), EVENT)).status == 200
    first = (await ApiKey.objects.aget(pk=api_key.pk)).last_used_at
    assert first is not None and first <= timezone.now()
    assert (await caller.post(path_for(alice), EVENT)).status == 200
    assert (await ApiKey.objects.aget(pk=api_key.pk)).last_used_at == first


async def test_only_the_hash_is_stored(make_key):
    api_key, key = await sync_to_async(make_key)()
    stored = await ApiKey.objects.filter(pk=api_key.pk).values().aget()
    assert stored["key_hash"] == hash_key(key)
    assert not any(key in str(value) for value in stored.values())
    secret = key.split("_", 2)[2]
    assert not any(secret in str(value) for value in stored.values())


async def test_a_body_over_the_limit_is_413(server_api, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = settings.MAX_REQUEST_BODY_BYTES = 100
    answer = await (await server_api()).post(path_for(alice), {"event": "x", "data": "y" * 200})
    assert (answer.status, answer.code) == (413, "too_large")


async def test_the_rate_limit_can_be_turned_off(server_api, alice, settings, monkeypatch):
    settings.SERVER_API_RATE_LIMIT = 0
    monkeypatch.setattr(throttling, "now", lambda: 1_000_000.5)
    api = await server_api()
    for _ in range(5):
        assert (await api.post(path_for(alice), EVENT)).status == 200


async def test_a_wrong_method_or_media_type_is_refused_in_json(server_api, alice):
    api = await server_api()
    wrong_method = await api.get(path_for(alice))
    assert (wrong_method.status, wrong_method.code) == (405, "method_not_allowed")
    response = await api.client.post(
        "/api/server/" + path_for(alice),
        data="event=x",
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"

"""The auth API and the one token validation function, through HTTP."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import RevokedToken, Role
from accounts.signals import token_revoked, user_tokens_revoked
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(response) -> dict:
    return response.json()["error"]


def signed(payload: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm)


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# --- login ----------------------------------------------------------------------------------------


def test_login_returns_pair_expiry_and_public_user(api, alice):
    response = api.post("/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "expires_at", "user"}
    assert body["user"] == {"id": str(alice.id), "name": "Alice", "role": "user"}
    access = claims_of(body["access"])
    assert access["token_type"] == "access" and access["user_id"] == str(alice.id)
    assert {"jti", "iat", "exp"} <= set(access)
    assert body["expires_at"].endswith("Z")
    # simplejwt takes the access token's exp from the refresh token's clock reading and its
    # iat from its own, so the two may straddle a second boundary (once seen: TTL - 1).
    assert settings.JWT_ACCESS_TTL - 1 <= access["exp"] - access["iat"] <= settings.JWT_ACCESS_TTL
    assert claims_of(body["refresh"])["token_type"] == "refresh"


def test_login_wrong_password_is_401(api, alice):
    response = api.post("/api/auth/token/", {"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_credentials"


def test_login_missing_field_is_400(api, alice):
    response = api.post("/api/auth/token/", {"username": "alice"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"
    assert "password" in error_of(response)["fields"]


def test_login_pending_user_is_403(api, make_user):
    make_user("carol", role=Role.PENDING)
    response = api.post("/api/auth/token/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


@override_settings(LOGIN_THROTTLE_RATE="3/min")
def test_login_is_throttled_per_address_and_username(api, alice):
    for _ in range(3):
        api.post("/api/auth/token/", {"username": "alice", "password": "wrong"})
    response = api.post("/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert error_of(response)["code"] == "rate_limited"


@override_settings(LOGIN_THROTTLE_RATE="3/min", TRUSTED_PROXIES=[])
def test_login_throttle_ignores_x_forwarded_for_from_an_untrusted_peer(api, alice):
    for n in range(3):
        body = {"username": "alice", "password": "wrong"}
        api.post("/api/auth/token/", body, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = api.post(
        "/api/auth/token/", {"username": "alice", "password": "x"}, HTTP_X_FORWARDED_FOR="1.1.1.1"
    )
    assert response.status_code == 429


@override_settings(LOGIN_THROTTLE_RATE="3/min", TRUSTED_PROXIES=["127.0.0.1"])
def test_login_throttle_counts_the_address_a_trusted_proxy_forwards(api, alice):
    def attempt(address: str):
        body = {"username": "alice", "password": "wrong"}
        return api.post("/api/auth/token/", body, HTTP_X_FORWARDED_FOR=address)

    for _ in range(3):
        assert attempt("198.51.100.1").status_code == 401
    assert attempt("198.51.100.1").status_code == 429
    assert attempt("6.6.6.6, 198.51.100.1").status_code == 429  # a forged left entry is no way out
    assert attempt("198.51.100.2").status_code == 401  # another client behind the proxy


@override_settings(LOGIN_THROTTLE_RATE="3/min")
def test_login_throttle_with_a_body_that_is_not_an_object_is_400(api):
    response = api.post("/api/auth/token/", [], format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


# --- /api/users/me/ and the refusal codes --------------------------------------------------------


def test_me_shows_the_caller_with_private_fields(auth_api, alice):
    body = auth_api(alice).get("/api/users/me/").json()
    assert body["id"] == str(alice.id) and body["username"] == "alice"
    assert body["bio"] == "private bio"


def test_no_credentials_is_401_auth_required(api, alice):
    response = api.get("/api/users/me/")
    assert response.status_code == 401
    assert error_of(response)["code"] == "auth_required"
    assert response["WWW-Authenticate"].startswith("Bearer")


def refused(auth_api, token: str, status: int, code: str) -> None:
    response = auth_api(token).get("/api/users/me/")
    assert response.status_code == status, response.content
    assert error_of(response)["code"] == code


def test_garbage_token_is_invalid(auth_api, alice):
    refused(auth_api, "not.a.jwt", 401, "invalid_token")


def test_non_bearer_scheme_is_invalid(api, alice):
    api.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6eA==")
    response = api.get("/api/users/me/")
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_token"


def test_expired_token_is_refused(auth_api, alice):
    token = AccessToken.for_user(alice)
    token.set_exp(from_time=token.current_time - timedelta(hours=1))
    refused(auth_api, str(token), 401, "token_expired")


def test_tampered_signature_is_refused(auth_api, login, alice):
    access = login(alice)["access"]
    header, payload, sig = access.split(".")
    tampered = f"{header}.{payload}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    refused(auth_api, tampered, 401, "invalid_token")
    refused(auth_api, signed(claims_of(access), key="another-key-" * 4), 401, "invalid_token")


def test_alg_none_is_refused(auth_api, login, alice):
    claims = claims_of(login(alice)["access"])
    refused(auth_api, jwt.encode(claims, key=None, algorithm="none"), 401, "invalid_token")


def test_refresh_token_used_as_access_is_refused(auth_api, login, alice):
    refused(auth_api, login(alice)["refresh"], 401, "invalid_token")


def test_token_missing_claims_is_refused(auth_api, alice):
    claims = {"token_type": "access", "exp": int(time.time()) + 60, "user_id": str(alice.id)}
    refused(auth_api, signed(claims), 401, "invalid_token")


def test_deleted_user_is_forbidden(auth_api, login, alice):
    access = login(alice)["access"]
    alice.delete()
    refused(auth_api, access, 403, "forbidden")


def test_inactive_user_is_forbidden(auth_api, login, alice):
    access = login(alice)["access"]
    alice.is_active = False
    alice.save()
    refused(auth_api, access, 403, "forbidden")


def test_pending_user_is_forbidden(auth_api, login, alice):
    access = login(alice)["access"]
    alice.role = Role.PENDING
    alice.save()
    refused(auth_api, access, 403, "forbidden")


def test_password_change_voids_existing_tokens(auth_api, login, alice):
    access = login(alice)["access"]
    alice.set_password("a new and long password")
    alice.save()
    refused(auth_api, access, 401, "token_revoked")


# --- refresh --------------------------------------------------------------------------------------


def test_refresh_rotates_and_blacklists_the_old_refresh(api, auth_api, login, alice):
    pair = login(alice)
    response = api.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert response.status_code == 200
    fresh = response.json()
    assert fresh["refresh"] != pair["refresh"] and fresh["user"]["id"] == str(alice.id)
    assert auth_api(fresh["access"]).get("/api/users/me/").status_code == 200
    again = api.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert again.status_code == 401
    assert error_of(again)["code"] in {"token_revoked", "invalid_token"}
    # The rotated token keeps working.
    assert api.post("/api/auth/token/refresh/", {"refresh": fresh["refresh"]}).status_code == 200


def test_refresh_refuses_an_access_token_and_garbage(api, login, alice):
    access = login(alice)["access"]
    for bad in (access, "garbage"):
        response = api.post("/api/auth/token/refresh/", {"refresh": bad})
        assert response.status_code == 401 and error_of(response)["code"] == "invalid_token"
    assert api.post("/api/auth/token/refresh/", {}).status_code == 400


def test_refresh_refuses_a_deactivated_user(api, login, alice):
    refresh = login(alice)["refresh"]
    alice.is_active = False
    alice.save()
    response = api.post("/api/auth/token/refresh/", {"refresh": refresh})
    assert response.status_code in {401, 403}


# --- logout and revoke-all ------------------------------------------------------------------------


def test_logout_revokes_access_and_refresh_and_signals(api, auth_api, login, alice):
    seen = []

    def on_revoked(sender, user, jti, **kwargs):
        seen.append((user.id, jti))

    token_revoked.connect(on_revoked)
    try:
        pair = login(alice)
        client = auth_api(pair["access"])
        response = client.post("/api/auth/logout/", {"refresh": pair["refresh"]}, format="json")
        assert response.status_code == 200
    finally:
        token_revoked.disconnect(on_revoked)
    refused(auth_api, pair["access"], 401, "token_revoked")
    assert RevokedToken.objects.filter(jti=claims_of(pair["access"])["jti"]).exists()
    assert seen == [(alice.id, claims_of(pair["access"])["jti"])]
    response = api.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]})
    assert response.status_code == 401
    # Another session of the same user is untouched.
    other = login(alice)["access"]
    assert auth_api(other).get("/api/users/me/").status_code == 200


def test_logout_with_someone_elses_refresh_changes_nothing(auth_api, login, alice, bob):
    mine, theirs = login(alice), login(bob)
    client = auth_api(mine["access"])
    response = client.post("/api/auth/logout/", {"refresh": theirs["refresh"]}, format="json")
    assert response.status_code == 400
    assert client.get("/api/users/me/").status_code == 200
    assert not RevokedToken.objects.exists()


def test_revoked_jti_is_refused_even_when_cached_as_valid(auth_api, login, alice):
    pair = login(alice)
    client = auth_api(pair["access"])
    assert client.get("/api/users/me/").status_code == 200  # caches "not revoked"
    assert client.post("/api/auth/logout/", {}, format="json").status_code == 200
    refused(auth_api, pair["access"], 401, "token_revoked")


def test_revocation_known_only_to_the_database_is_read_and_then_cached(
    auth_api, login, alice, django_assert_num_queries
):
    """Another process revoked the token (its cache is not ours): the user query reads the
    revocation list too, and the answer is cached — "revoked" as well as "not revoked"."""
    from django.core.cache import cache

    revoked, kept = login(alice)["access"], login(alice)["access"]
    claims = claims_of(revoked)
    RevokedToken.objects.create(
        jti=claims["jti"], user=alice, expires_at=timezone.now() + timedelta(minutes=5)
    )
    cache.clear()
    with django_assert_num_queries(1):  # the revocation list; a revoked token needs no user
        refused(auth_api, revoked, 401, "token_revoked")
    with django_assert_num_queries(0):
        refused(auth_api, revoked, 401, "token_revoked")
    with django_assert_num_queries(2):  # the revocation list, then the user
        assert auth_api(kept).get("/api/users/me/").status_code == 200
    assert cache.get(f"chorus:jti:{claims_of(kept)['jti']}") == 0
    with django_assert_num_queries(1):  # the user only: "not revoked" is cached
        assert auth_api(kept).get("/api/users/me/").status_code == 200


def test_many_tokens_are_validated_together_each_with_its_own_answer(
    login, alice, bob, make_user, django_assert_num_queries
):
    """``validate_access_tokens`` (the sockets' batch form): the same checks as one by one,
    every answer in its token's place, two queries for the whole batch."""
    from django.core.cache import cache

    from accounts.tokens import TokenRejected, ValidatedToken, validate_access_tokens

    carol = make_user("carol")
    revoked, alice_token, bob_token = (
        login(carol)["access"],
        login(alice)["access"],
        login(bob)["access"],
    )
    RevokedToken.objects.create(
        jti=claims_of(revoked)["jti"], user=carol, expires_at=timezone.now() + timedelta(minutes=5)
    )
    disabled = login(make_user("dave"))["access"]
    type(alice).objects.filter(username="dave").update(is_active=False)
    expired = AccessToken.for_user(bob)
    expired.set_exp(from_time=expired.current_time - timedelta(hours=1))
    raws = [alice_token, revoked, None, "garbage", bob_token, disabled, str(expired), alice_token]
    cache.clear()
    with django_assert_num_queries(2):
        results = validate_access_tokens(raws)
    outcome = [r.user.username if isinstance(r, ValidatedToken) else r.code for r in results]
    assert outcome == [
        "alice",
        "token_revoked",
        "auth_required",
        "invalid_token",
        "bob",
        "forbidden",
        "token_expired",
        "alice",
    ]
    with django_assert_num_queries(1):  # the users; every revocation answer is cached now
        assert [type(r) for r in validate_access_tokens([alice_token, revoked])] == [
            ValidatedToken,
            TokenRejected,
        ]


def test_revoke_all_voids_every_token_and_allows_a_new_login(api, auth_api, login, alice):
    kicked = []

    def on_all(sender, user, **kwargs):
        kicked.append(user.id)

    user_tokens_revoked.connect(on_all)
    try:
        first, second = login(alice), login(alice)
        response = auth_api(first["access"]).post("/api/auth/revoke-all/")
        assert response.status_code == 200
    finally:
        user_tokens_revoked.disconnect(on_all)
    assert kicked == [alice.id]
    for pair in (first, second):
        refused(auth_api, pair["access"], 401, "token_revoked")
        refresh = api.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]})
        assert refresh.status_code == 401
    fresh = login(alice)  # issued right after, never caught by the revoke-all second
    assert auth_api(fresh["access"]).get("/api/users/me/").status_code == 200


def test_revoke_all_requires_authentication(api):
    assert api.post("/api/auth/revoke-all/").status_code == 401

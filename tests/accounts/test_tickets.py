"""Single-use connection tickets (accounts/tickets.py, docs/protocol.md §4.2): the REST endpoint,
redemption through the one validation function, and the store contract on both backends."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.checks import run_checks
from django.db import transaction

from accounts import tickets
from accounts.models import User
from accounts.tickets import Grant, MemoryTicketStore, RedisTicketStore, Ticket
from accounts.tokens import (
    TokenRejected,
    issue_access_token,
    issue_token_pair,
    revoke_all_tokens,
    validate_access_token,
    validate_access_tokens,
)

pytestmark = pytest.mark.django_db(transaction=True)


def ticket_for(auth_api, token: str) -> str:
    response = auth_api(token).post("/api/auth/ws-ticket/")
    assert response.status_code == 200, response.content
    return response.json()["ticket"]


def rejected_code(raw: object) -> str:
    with pytest.raises(TokenRejected) as caught:
        validate_access_token(raw)
    return caught.value.code


# --- the endpoint --------------------------------------------------------------------------------


def test_unauthenticated_post_is_401_json(api):
    response = api.post("/api/auth/ws-ticket/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth_required"


def test_a_bad_token_is_401_with_its_code(auth_api):
    response = auth_api("garbage").post("/api/auth/ws-ticket/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_authenticated_post_returns_a_ticket_never_cached(auth_api, alice, settings):
    settings.WS_TICKET_TTL = 30.0
    response = auth_api(alice).post("/api/auth/ws-ticket/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}
    assert body["expires_in"] == 30
    assert len(body["ticket"]) == 43 and body["ticket"].isascii()
    assert response["Cache-Control"] == "no-store"
    other = auth_api(alice).post("/api/auth/ws-ticket/").json()["ticket"]
    assert other != body["ticket"]


def test_get_is_not_allowed(auth_api, alice):
    assert auth_api(alice).get("/api/auth/ws-ticket/").status_code == 405


# --- redemption ----------------------------------------------------------------------------------


def test_a_ticket_redeems_once_as_the_token_it_stands_for(auth_api, alice):
    token = issue_token_pair(alice)["access"]
    raw = ticket_for(auth_api, token)
    validated = tickets.redeem(raw)
    as_token = validate_access_token(token)
    assert validated.user == alice
    assert (validated.jti, validated.issued_at, validated.expires_at) == (
        as_token.jti,
        as_token.issued_at,
        as_token.expires_at,
    )
    assert rejected_code(Ticket(raw)) == "ticket_invalid"  # spent


@pytest.mark.parametrize("raw", ["", "x", "not a ticket!", "a" * 43, "é" * 43, "a" * 200])
def test_unknown_or_malformed_tickets_are_ticket_invalid(raw):
    assert rejected_code(Ticket(raw)) == "ticket_invalid"


def test_an_expired_ticket_is_ticket_invalid(auth_api, alice, settings, monkeypatch):
    clock = Clock()
    settings.REDIS_URL = ""  # the memory store, on its injected clock
    monkeypatch.setattr(tickets, "_memory_store", MemoryTicketStore(clock=clock))
    raw = ticket_for(auth_api, issue_token_pair(alice)["access"])
    clock.now += settings.WS_TICKET_TTL
    assert rejected_code(Ticket(raw)) == "ticket_invalid"


def test_a_ticket_of_a_logged_out_token_is_token_revoked(auth_api, alice):
    token = issue_token_pair(alice)["access"]
    raw = ticket_for(auth_api, token)
    assert auth_api(token).post("/api/auth/logout/", {}, format="json").status_code == 200
    assert rejected_code(Ticket(raw)) == "token_revoked"


def test_a_ticket_issued_before_a_revoke_all_is_token_revoked(auth_api, alice):
    raw = ticket_for(auth_api, issue_token_pair(alice)["access"])
    with transaction.atomic():
        revoke_all_tokens(alice)
    assert rejected_code(Ticket(raw)) == "token_revoked"


def test_a_ticket_of_a_deactivated_user_is_forbidden(auth_api, alice):
    raw = ticket_for(auth_api, issue_token_pair(alice)["access"])
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert rejected_code(Ticket(raw)) == "forbidden"


def test_a_ticket_whose_token_expired_meanwhile_is_token_expired(alice):
    token = issue_access_token(alice, ttl_seconds=60)
    validated = validate_access_token(token)
    grant = Grant(str(alice.pk), validated.jti, validated.issued_at, validated.issued_at - 1)
    tickets.get_store().put(tickets.digest("t" * 43), grant, 30)
    assert rejected_code(Ticket("t" * 43)) == "token_expired"


def test_a_batch_mixes_tokens_and_tickets_in_order(auth_api, alice, bob):
    token = issue_token_pair(bob)["access"]
    raw = ticket_for(auth_api, issue_token_pair(alice)["access"])
    results = validate_access_tokens([token, Ticket(raw), "garbage", Ticket(raw)])
    assert results[0].user == bob and results[1].user == alice
    assert [r.code for r in results[2:]] == ["invalid_token", "ticket_invalid"]


def test_a_ticket_never_shows_in_its_repr():
    assert "secret-ticket" not in repr(Ticket("secret-ticket"))


def test_the_ttl_must_be_positive(settings):
    settings.WS_TICKET_TTL = 0
    assert "accounts.E001" in {message.id for message in run_checks()}
    settings.WS_TICKET_TTL = 0.5
    assert "accounts.E001" not in {message.id for message in run_checks()}


# --- the store contract, both backends -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request):
    """Each backend of ``TicketStore``; Redis under ``chorus:test-ticket:`` (pass 2 only)."""
    if request.param == "memory":
        yield MemoryTicketStore(clock=Clock())
        return
    url = request.getfixturevalue("redis_url")
    store = RedisTicketStore(url, prefix="chorus:test-ticket:")
    yield store
    store.close()


GRANT = Grant("3f1a0b6e-0000-4000-8000-000000000001", "jti-1", 100, 200)


def test_a_ticket_is_taken_once(store):
    store.put("k1", GRANT, 30)
    assert store.take(["k1", "k1", "nope"]) == [GRANT, None, None]
    assert store.take(["k1"]) == [None]


def test_a_ticket_expires(store):
    if isinstance(store, MemoryTicketStore):
        store.put("k2", GRANT, 30)
        store._clock.now += 30  # type: ignore[attr-defined]
    else:  # Redis expires the key itself (PX), in real time
        store.put("k2", GRANT, 0.05)
        assert 0 < store.client.pttl(store.prefix + "k2") <= 50
        deadline = time.monotonic() + 5
        while store.client.exists(store.prefix + "k2") and time.monotonic() < deadline:
            time.sleep(0.01)
    assert store.take(["k2"]) == [None]


def test_concurrent_redemptions_of_one_ticket_give_it_to_exactly_one(store):
    store.put("k3", GRANT, 30)
    barrier = threading.Barrier(8)

    def take() -> Grant | None:
        barrier.wait()
        return store.take(["k3"])[0]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: take(), range(8)))
    assert results.count(GRANT) == 1 and results.count(None) == 7


def test_only_a_digest_of_the_ticket_is_stored(store):
    raw = "r" * 43
    store.put(tickets.digest(raw), GRANT, 30)
    if isinstance(store, RedisTicketStore):
        keys = [key.decode() for key in store.client.scan_iter(match=store.prefix + "*")]
        assert keys == [store.prefix + tickets.digest(raw)]
        assert raw.encode() not in store.client.get(keys[0])
    assert store.take([raw]) == [None] and store.take([tickets.digest(raw)]) == [GRANT]


def test_the_memory_store_is_bounded():
    clock = Clock()
    store = MemoryTicketStore(clock=clock)
    store.MAX_TICKETS = 3  # type: ignore[misc]
    for key in ("a", "b", "c", "d"):
        store.put(key, GRANT, 30)
    assert store.take(["a", "b", "c", "d"]) == [None, GRANT, GRANT, GRANT]  # the oldest went

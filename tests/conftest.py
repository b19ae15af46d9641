"""Shared fixtures: users, API clients, tokens, and the services gate.

Tests that need PostgreSQL or Redis carry ``@pytest.mark.services``; scripts/test runs them
in its second pass with DATABASE_URL / REDIS_URL set. Without those variables such a test
skips with the reason, except under CI=true, where a missing service fails the test.
"""

from __future__ import annotations

import os
import uuid

import pytest
from asgiref.sync import SyncToAsync
from channels.layers import channel_layers
from django.core.cache import cache
from django.db import connections
from rest_framework.test import APIClient

from accounts import tickets
from accounts.models import Role, User
from accounts.tokens import issue_token_pair
from realtime.db import close_connections
from realtime.recovery import reset_memory_store
from realtime.sessions import reset_memory_registry

PASSWORD = "correct horse battery staple"


def require_service(var: str) -> str:
    """The URL in ``var``; skip (or fail under CI=true) when it is not configured."""
    url = os.environ.get(var, "")
    if not url:
        message = f"{var} is not set: this test needs the real service"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: a missing service is a failure)")
        pytest.skip(message)
    return url


@pytest.fixture
def redis_url() -> str:
    return require_service("REDIS_URL")


@pytest.fixture
def database_url() -> str:
    return require_service("DATABASE_URL")


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """PBKDF2's deliberate slowness is not under test; a fast hasher keeps the suite quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def delete_chorus_keys(redis_url: str) -> None:
    """Delete every ``chorus:*`` key (layer, cache, sessions); nothing else is touched."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match="chorus:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def _forget_chorus_state() -> None:
    """Empty the cache; on Redis only Chorus's keys (never FLUSHDB a shared Redis)."""
    url = os.environ.get("REDIS_URL")
    if url:
        delete_chorus_keys(url)
    else:
        cache.clear()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test databases, plus: before they are dropped, close every connection
    this process still holds to them — the realtime ORM thread's, asgiref's sync thread's,
    and the idle ones of PostgreSQL's connection pool (``DATABASE_POOL_*``) — which would
    otherwise make ``DROP DATABASE`` fail ("is being accessed by other users")."""
    yield
    close_connections()
    # asgiref's thread for thread-sensitive sync_to_async calls (test code's ORM from async
    # tests) keeps the connection of its last call.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
    for connection in connections.all(initialized_only=True):
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


@pytest.fixture(autouse=True)
def _fresh_realtime_state():
    """Channel layers bind to an event loop (each async test has its own) and the in-process
    session registry must not leak between tests: every test starts with fresh ones."""
    channel_layers.backends.clear()
    reset_memory_registry()
    reset_memory_store()
    tickets.reset_memory_store()
    yield
    channel_layers.backends.clear()
    reset_memory_registry()
    reset_memory_store()
    tickets.reset_memory_store()
    close_connections()  # the realtime ORM thread's connection: flushes and drops need it gone


@pytest.fixture(autouse=True)
def _clear_cache():
    _forget_chorus_state()
    yield
    _forget_chorus_state()


@pytest.fixture
def make_user(db):
    def make(username: str | None = None, **fields) -> User:
        username = username or f"user-{uuid.uuid4().hex[:8]}"
        fields.setdefault("role", Role.USER)
        return User.objects.create_user(username=username, password=PASSWORD, **fields)

    return make


@pytest.fixture
def alice(make_user) -> User:
    return make_user("alice", name="Alice", bio="private bio", gender="private")


@pytest.fixture
def bob(make_user) -> User:
    return make_user("bob", name="Bob")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def login(api):
    """``login(user)`` -> the token pair from the real login endpoint."""

    def do(user: User) -> dict:
        response = api.post(
            "/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    return do


@pytest.fixture
def auth_api():
    """``auth_api(user_or_token)`` -> an APIClient sending that user's bearer token."""

    def make(who) -> APIClient:
        token = who if isinstance(who, str) else issue_token_pair(who)["access"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make

"""An API key is never logged, at any level: no logger of this process at DEBUG logs it, whatever
the request's fate (a real daphne's log at DEBUG: tests/live/test_serverapi_live.py)."""

from __future__ import annotations

import logging
import uuid

import pytest

from serverapi.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


def secret_of(key: str) -> str:
    return key.split("_", 2)[2]


def requests_of_every_fate(user_id: object) -> list[tuple[str, str, dict | bytes]]:
    """(method, path, body) that succeed, fail validation, name nobody, or are too large."""
    return [
        ("POST", f"/api/server/users/{user_id}/events/", {"event": "status", "data": {"n": 1}}),
        ("POST", f"/api/server/users/{user_id}/events/", {"event": "connect"}),
        ("POST", f"/api/server/users/{uuid.uuid4()}/events/", {"event": "status"}),
        ("POST", f"/api/server/users/{user_id}/disconnect/", {"code": "BAD"}),
        ("GET", "/api/server/rooms/app.x/presence/", b""),
        ("POST", f"/api/server/users/{user_id}/events/", {"event": "x", "data": "y" * 5000}),
        ("POST", f"/api/server/users/{user_id}/events/", b"{not json"),
    ]


def three_keys() -> dict:
    """A key of every scope, one of the publish scope only, and a revoked one."""
    every, every_key = ApiKey.issue("every", ["publish", "call", "presence", "disconnect"])
    _, narrow_key = ApiKey.issue("narrow", ["publish"])
    revoked, revoked_key = ApiKey.issue("revoked", ["publish"])
    revoked.revoke()
    return {"every": every_key, "narrow": narrow_key, "revoked": revoked_key, "prefix": every}


@pytest.fixture
def keys(db) -> dict:
    return three_keys()


async def test_no_logger_of_the_process_logs_a_key_at_debug(caplog, server_api, keys, alice):
    chorus = logging.getLogger("chorus")  # does not propagate to the root's capture
    chorus.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="chorus"):
            for name in ("every", "narrow", "revoked"):
                api = await server_api(key=keys[name])
                for method, path, body in requests_of_every_fate(alice.id):
                    raw = body if isinstance(body, bytes) else None
                    await api.request(method, path.removeprefix("/api/server/"), body, raw=raw)
    finally:
        chorus.removeHandler(caplog.handler)
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert "server API: key" in text  # the capture saw the DEBUG lines
    for name in ("every", "narrow", "revoked"):
        assert secret_of(keys[name]) not in text, name

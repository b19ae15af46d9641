"""The server API on real daphne processes: the log of a server at DEBUG never holds a key;
the streaming scenario of issue 18 (a separate process plays an LLM backend) on two instances
on Redis."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from asgiref.sync import sync_to_async

from tests.serverapi.test_logs import requests_of_every_fate, secret_of, three_keys

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def keys(db) -> dict:
    return three_keys()


async def test_a_daphne_at_debug_never_logs_a_key(servers, keys, alice):
    server = await sync_to_async(servers)(
        LOG_LEVEL="DEBUG", SERVER_API_RATE_LIMIT=3, MAX_REQUEST_BODY_BYTES=2048
    )
    statuses = set()
    for name in ("every", "narrow", "revoked"):
        for method, path, body in requests_of_every_fate(alice.id) * 3:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            request = urllib.request.Request(server.url + path, data=data or None, method=method)
            request.add_header("Authorization", f"Bearer {keys[name]}")
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    statuses.add(response.status)
            except urllib.error.HTTPError as error:
                statuses.add(error.code)
    assert {200, 400, 401, 403, 404, 413, 429} <= statuses
    server.stop()  # everything it wrote is in the file now
    log = server.log_path.read_text(errors="replace")
    assert "/api/server/users/" in log  # the access log was captured
    assert f"server API: key {keys['prefix'].prefix}" in log  # and the DEBUG lines
    for name in ("every", "narrow", "revoked"):
        assert secret_of(keys[name]) not in log, name

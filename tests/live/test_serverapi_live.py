"""The server API on real daphne processes: the log of a server at DEBUG never holds a key;
the streaming scenario of issue 18 (a separate process plays an LLM backend) on two instances
on Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from serverapi.models import ApiKey
from tests.live.harness import ROOT, access, eventually
from tests.serverapi.test_logs import requests_of_every_fate, secret_of, three_keys

BACKEND = Path(__file__).with_name("llm_backend.py")
DELTAS = 1_000

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


@pytest.mark.services
async def test_a_backend_process_streams_to_both_sockets_of_a_user_and_calls_them(
    instances, clients, alice
):
    """Issue 18, point 3: two instances on Redis, one user with a socket on each (python-socketio
    with its default options: polling, then the upgrade). A separate process posts 1,000 token
    deltas to instance A: both sockets get all of them, in order. It then calls the socket on
    B through A (answered by the client's handler), and the socket on A, whose handler never
    answers (504 ``call_timeout``)."""
    a, b = instances()
    token = await access(alice)
    on_a = await clients(a, "alice@A", None).connect(token)
    on_b = await clients(b, "alice@B", None).connect(token)
    never = asyncio.Event()

    @on_b.sio.on("confirm")
    async def confirm(data):
        return {"confirmed": True, "title": data["title"]}

    @on_a.sio.on("confirm")
    async def ignore(data):
        await never.wait()  # this client never answers

    _, key = await sync_to_async(ApiKey.issue)("llm-backend", ["publish", "call"])
    job = {
        "url": a.url,
        "key": key,
        "user": str(alice.id),
        "deltas": DELTAS,
        "answering_sid": on_b.sio.get_sid("/"),
        "silent_sid": on_a.sio.get_sid("/"),
    }
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(BACKEND)],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=True,
        )
    finally:
        never.set()
    report = json.loads(done.stdout)
    assert report["failures"] == []

    def indexes(client) -> list[int]:
        return [
            event["data"]["data"]["index"]
            for event in client.received("events")
            if event.get("chat_id") == "chat-1"
        ]

    for client in (on_a, on_b):
        await eventually(lambda client=client: len(indexes(client)) >= DELTAS, timeout=30)
        assert indexes(client) == list(range(DELTAS)), client
    assert report["answered"] == [200, {"answer": {"confirmed": True, "title": "Run the tool?"}}]
    assert report["silent"][0] == 504
    assert report["silent"][1]["error"]["code"] == "call_timeout"
    assert report["unknown"][0] == 404
    assert report["unknown"][1]["error"]["code"] == "session_not_found"

"""Logs on a real daphne (docs/operations.md, "Logs"): ``LOG_FORMAT=json`` gives one JSON object
per line, carrying the request id (a safe ``X-Request-ID`` kept, any other replaced) and the
socket id; and no secret the test hands the server — JWT access and refresh tokens, connection
tickets, server-API keys (``use_the_server_api``) — appears
in any line of its output, at any level: the server runs with ``LOG_LEVEL=DEBUG`` and its
whole output (Chorus's loggers, Django's, daphne's, daphne's access log) is searched.
"""

from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.request
from email.message import Message

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import PASSWORD
from tests.live.doc_peers import close_code, create_note
from tests.live.harness import DaphneServer, access

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: daphne's access log (NCSA form, on stdout): `127.0.0.1:5555 - - [05/Dec/2026:12:00:00] "GET …`.
ACCESS_LINE = re.compile(r'^\S+ - - \[[^\]]+\] "')


def get(server: DaphneServer, path: str, headers: dict[str, str]) -> tuple[int, Message]:
    """(status, response headers: looked up case-insensitively)."""
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


@database_sync_to_async
def create_api_key() -> str:
    """A new server-API key (``manage.py create_api_key`` prints it alone on stdout)."""
    out = io.StringIO()
    call_command(
        "create_api_key", "--name", "logs", "--scope", "publish", stdout=out, stderr=io.StringIO()
    )
    return out.getvalue().strip()


async def use_the_server_api(server: DaphneServer, user_id: object) -> list[str]:
    """Call the server API (docs/server-api.md) with a key, with a wrong one, and with a key in
    the query string (refused); returns the keys."""
    key = await create_api_key()
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    path = f"/api/server/users/{user_id}/events/"
    body = {"event": "events", "data": {"type": "status"}}
    status, answer = await server.arequest("POST", path, token=key, body=body)
    assert status == 200, answer
    status, answer = await server.arequest("POST", path, token=wrong, body=body)
    assert status == 401, answer
    status, answer = await server.arequest("POST", f"{path}?api_key={key}", token=key, body=body)
    assert status == 400 and answer["error"]["code"] == "key_in_query", answer
    return [key, wrong]


async def connect_all_the_ways(server, clients, alice, note_id) -> list[str]:
    """Log in, refresh, take tickets, and open sockets every way a credential can travel;
    returns every secret the server was handed."""
    login = await server.login("alice", PASSWORD)
    access, refresh = login["access"], login["refresh"]
    status, renewed = await server.arequest(
        "POST", "/api/auth/token/refresh/", body={"refresh": refresh}
    )
    assert status == 200, renewed
    secrets = [access, refresh, renewed["access"], renewed["refresh"]]
    token = renewed["access"]

    async def ticket() -> str:
        status, body = await server.arequest("POST", "/api/auth/ws-ticket/", token=token)
        assert status == 200, body
        secrets.append(body["ticket"])
        return body["ticket"]

    # Socket.IO: token in auth (WebSocket, then polling), in the query, and a ticket.
    await clients(server, "auth-ws", ("websocket",)).connect(token)
    await clients(server, "auth-polling", ("polling",)).connect(token)
    await clients(server, "query-ws", ("websocket",)).connect(auth={}, query={"token": token})
    # Polling never takes ?token= (docs/protocol.md §4): refused, but the URL still travelled.
    await clients(server, "query-polling", ("polling",)).refused(auth={}, query={"token": token})
    await clients(server, "ticket-ws", ("websocket",)).connect(
        auth={}, query={"ticket": await ticket()}
    )
    # Polling upgraded to a WebSocket, with the token in auth.
    upgraded = await clients(server, "upgrade", ("polling", "websocket")).connect(token)
    assert upgraded.connected
    # y-websocket with a ticket, and with a token in the query.
    spent = await ticket()
    for query in (f"ticket={spent}", f"token={token}"):
        url = f"ws://127.0.0.1:{server.port}/ws/yjs/note:{note_id}?{query}"
        async with ws_connect(url, ping_interval=None) as ws:
            assert isinstance(await ws.recv(), bytes)  # the server's sync step 1: in
    # Refused: a token with a forged signature, in auth and in the query; a spent ticket.
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[::-1]}"
    secrets.append(forged)
    refused = await clients(server, "forged").refused(forged)
    assert refused["data"]["code"] == "invalid_token", refused
    url = f"ws://127.0.0.1:{server.port}/ws/yjs/note:{note_id}?ticket={spent}"
    async with ws_connect(url, ping_interval=None) as ws:
        assert await close_code(ws) == 4401
    url = f"ws://127.0.0.1:{server.port}/ws/yjs/note:{note_id}?token={forged}"
    async with ws_connect(url, ping_interval=None) as ws:
        assert await close_code(ws) == 4401
    # The REST API with the token, and with the forged one.
    assert (await server.arequest("GET", "/api/users/me/", token=token))[0] == 200
    assert (await server.arequest("GET", "/api/users/me/", token=forged))[0] == 401
    return secrets + await use_the_server_api(server, alice.pk)


async def test_no_secret_in_any_log_line_at_debug(servers, clients, alice, http_login_enabled):
    await http_login_enabled(alice)
    server = servers("daphne", LOG_LEVEL="DEBUG", LOG_ROOT_LEVEL="DEBUG", LOG_FORMAT="json")
    note = await database_sync_to_async(create_note)(alice)
    secrets = await connect_all_the_ways(server, clients, alice, note.id)
    server.stop()  # everything it would log is written
    log = server.log_path.read_text(errors="replace")
    assert "DEBUG" in log or '"level": "DEBUG"' in log, "the server logged nothing at DEBUG"
    for secret in secrets:
        assert secret not in log, f"a secret ({secret[:12]}…) is in the server's log"
        # Nor the part that makes a JWT a credential: its signature.
        if secret.count(".") == 2:
            assert secret.rsplit(".", 1)[1] not in log, "a JWT signature is in the log"


async def test_json_lines_carry_request_and_socket_ids(servers, alice):
    server = servers("daphne", LOG_FORMAT="json")
    note = await database_sync_to_async(create_note)(alice)
    # A 401 is logged by Django (django.request, WARNING) inside the request.
    status, headers = get(server, "/api/users/me/", {"X-Request-ID": "req-42.a_b"})
    assert status == 401 and headers["X-Request-ID"] == "req-42.a_b"
    status, headers = get(server, "/api/users/me/", {"X-Request-ID": "no spaces allowed"})
    made = headers["X-Request-ID"]
    assert status == 401 and re.fullmatch(r"[0-9a-f]{16}", made), made
    status, headers = get(server, "/api/users/me/", {"X-Request-ID": "x" * 65})
    assert re.fullmatch(r"[0-9a-f]{16}", headers["X-Request-ID"]), headers
    # A y-websocket socket that sends a frame that does not decode: logged (INFO) by its
    # consumer, with its socket id.
    url = f"ws://127.0.0.1:{server.port}/ws/yjs/note:{note.id}?token={await access(alice)}"
    async with ws_connect(url, ping_interval=None) as ws:
        await ws.recv()
        await ws.send(b"\x00\x07")  # sync message of an unknown sub-type
        assert await close_code(ws) == 4400
    server.stop()

    lines = [
        line
        for line in server.log_path.read_text().splitlines()
        if line and not line.startswith("=== ") and not ACCESS_LINE.match(line)
    ]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records, "nothing logged"
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= set(record), record
    by_request = [r for r in records if r.get("request_id") == "req-42.a_b"]
    assert by_request and by_request[0]["logger"] == "django.request", records
    assert any(r.get("request_id") == made for r in records), records
    assert not any(r.get("request_id") == "no spaces allowed" for r in records)
    socket_lines = [r for r in records if r.get("socket_id", "").startswith("y:")]
    assert any("bad message" in r["message"] for r in socket_lines), records

"""The HTTP side against a real daphne: the client address behind proxies, request body limits,
JSON errors, REST presence.

Bodies are sent over raw sockets (asyncio streams) so a test controls exactly what arrives and
when: a ``Content-Length`` far larger than what is sent, a chunked body that never ends. Memory
is read from ``/proc/<daphne pid>/status`` (``VmHWM``: the peak resident set). The REST error
checks run in both passes; in the services pass they hit PostgreSQL, which refuses NUL in text.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from channels.db import database_sync_to_async

from accounts.models import User
from channels_app.models import Message
from tests.live.harness import Client, DaphneServer, access, eventually

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

LOGIN = "/api/auth/token/"
#: Seconds within which a refused upload must be answered.
PROMPT = 5.0


def status_line(host: str = "127.0.0.1") -> bytes:
    return f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a ``Content-Length`` body: (status, headers, body)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(head[0].split()[1]), headers, body


def assert_too_large(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413, (status, body)
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "too_large"


def post_text(
    server: DaphneServer, path: str, text: str, token: str | None = None, host: str | None = None
) -> tuple[int, str, Any]:
    """POST ``text`` as JSON (blocking): (status, content type, body parsed as JSON or text)."""
    request = urllib.request.Request(server.url + path, data=text.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, kind, raw = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        status, kind, raw = error.code, error.headers["Content-Type"], error.read()
    try:
        return status, kind, json.loads(raw)
    except ValueError:
        return status, kind, raw.decode(errors="replace")


def memory_kib(server: DaphneServer, field: str = "VmHWM") -> int:
    """A memory figure of the daphne process from /proc (``VmHWM``: peak RSS), KiB."""
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{server.process.pid}/status")


# --- client address -------------------------------------------------------------------------------


async def test_login_throttle_counts_the_socket_peer_not_a_forged_x_forwarded_for(servers):
    """Finding: 100 wrong passwords with a different X-Forwarded-For each got no 429."""
    direct = servers("direct", LOGIN_THROTTLE_RATE="3/min")
    behind_proxy = servers("proxied", LOGIN_THROTTLE_RATE="3/min", TRUSTED_PROXIES="127.0.0.1")

    def attempt(server: DaphneServer, forwarded_for: str) -> int:
        request = urllib.request.Request(
            server.url + LOGIN,
            data=json.dumps({"username": "mallory", "password": "guess"}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    # Not behind a trusted proxy: the header is ignored, every attempt counts for 127.0.0.1.
    statuses = [await asyncio.to_thread(attempt, direct, f"198.51.100.{n}") for n in range(5)]
    assert statuses[:3] == [401] * 3 and statuses[3:] == [429, 429], statuses
    # Behind a trusted proxy: the forwarded client counts, a forged left part changes nothing,
    # and another client behind the same proxy is counted apart.
    forged = [
        await asyncio.to_thread(attempt, behind_proxy, f"6.6.6.{n}, 198.51.100.7") for n in range(4)
    ]
    assert forged == [401, 401, 401, 429], forged
    assert await asyncio.to_thread(attempt, behind_proxy, "198.51.100.8") == 401


# --- request bodies -------------------------------------------------------------------------------


async def test_declared_oversize_body_is_refused_at_once_with_json_413(server):
    """Finding: a 500 MB POST to the login URL made daphne hold 500 MiB. Now the headers are
    enough: a JSON 413 arrives while almost none of the body was sent, and the server closes."""
    for expect in (b"", b"Expect: 100-continue\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(status_line() + expect + b'Content-Length: 500000000\r\n\r\n{"a"')
            await writer.drain()
            async with asyncio.timeout(PROMPT):
                assert_too_large(*await read_response(reader))  # no "100 Continue" first
                assert await reader.read() == b""  # the server closed its side
        finally:
            writer.close()


async def test_chunked_body_crossing_the_limit_is_refused_while_it_arrives(servers):
    """A chunked body that crosses ``MAX_REQUEST_BODY_BYTES`` is answered as soon as it does,
    though it never ends; a body under the limit still reaches Django."""
    server = servers(MAX_REQUEST_BODY_BYTES=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(status_line() + b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            writer.write(b"200\r\n" + b" " * 0x200 + b"\r\n")  # 4 x 512 bytes, no last chunk
        await writer.drain()
        async with asyncio.timeout(PROMPT):
            assert_too_large(*await read_response(reader))
            assert await reader.read() == b""
    finally:
        writer.close()
    under = json.dumps({"username": "u" * 900, "password": "x"})
    assert len(under) < 1000
    status, _, body = await asyncio.to_thread(post_text, server, LOGIN, under)
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert "username" in body["error"]["fields"]


async def test_a_large_upload_never_grows_the_server(server):
    """128 MiB streamed (chunked) at the login URL: refused at the 16 MiB default, and daphne's
    peak resident memory grows by less than 48 MiB (it grew by the whole body before)."""
    total, piece = 128 << 20, 1 << 20
    frame = b"%x\r\n" % piece + b" " * piece + b"\r\n"
    before = memory_kib(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    response = asyncio.create_task(read_response(reader))
    sent = 0
    try:
        writer.write(status_line() + b"Transfer-Encoding: chunked\r\n\r\n")
        while sent < total and not response.done():
            writer.write(frame)
            await writer.drain()
            sent += piece
        if not response.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except OSError:
        pass  # the server stopped reading: the answer is already there
    try:
        async with asyncio.timeout(60):
            assert_too_large(*await response)
    finally:
        writer.close()
    grown = memory_kib(server) - before
    assert grown < 48 * 1024, f"daphne's peak RSS grew by {grown} KiB"
    assert sent < total  # refused before the end


# --- JSON errors ----------------------------------------------------------------------------------


async def test_every_rest_error_is_json(server, alice, bob, group_channel):
    """Finding: 100k-deep JSON was a 500 (also unauthenticated, at the login URL), bodies over
    2.5 MB an HTML 400, NUL in JSON text a 500 on PostgreSQL."""
    channel = await group_channel(alice, bob)
    token = await access(alice)
    messages = f"/api/channels/{channel.pk}/messages/"
    cases = [
        (LOGIN, None, "[" * 100_000 + "]" * 100_000, 400),
        (LOGIN, None, '{"username": "a", "password": NaN}', 400),
        (LOGIN, None, '{"username": "a", "password": Infinity}', 400),
        (LOGIN, None, '{"username": "a", "password": 1e999}', 400),
        (LOGIN, None, json.dumps({"username": "a" * 3_000_000, "password": "x"}), 400),
        (messages, token, '{"content": "hi", "data": {"note": "x\\u0000y"}}', 400),
        (messages, token, '{"content": "hi", "data": {"x\\u0000y": 1}}', 400),
        (messages, token, '{"content": "hi", "data": {"n": 1e999}}', 400),
        (messages, token, '{"content": "hi", "data": ' + "[" * 100_000 + "]" * 100_000 + "}", 400),
    ]
    for path, bearer, text, expected in cases:
        status, kind, body = await asyncio.to_thread(post_text, server, path, text, bearer)
        assert (status, kind) == (expected, "application/json"), (text[:60], status, body)
        assert body["error"]["code"] == "bad_request" and body["error"]["message"]
    # Django's own 400 (a Host not in ALLOWED_HOSTS) is JSON under /api/ too.
    status, kind, body = await asyncio.to_thread(
        post_text, server, LOGIN, "{}", None, "evil.example"
    )
    assert (status, kind) == (400, "application/json"), body
    assert body["error"]["code"] == "bad_request"
    # Nothing of the refused messages was stored; an ordinary one still is.
    ok = await asyncio.to_thread(post_text, server, messages, '{"content": "hi"}', token)
    assert ok[0] == 201, ok
    stored = await database_sync_to_async(list)(
        Message.objects.filter(channel_id=channel.pk).values_list("content", flat=True)
    )
    assert stored == ["hi"]


# --- presence -------------------------------------------------------------------------------------


async def test_rest_presence_entries_are_id_name_sessions_last_active_at(
    server, alice: User, bob: User, group_channel
):
    """docs/channels.md: users are only ever ``{"id", "name"}``; presence adds the documented
    ``sessions`` and ``last_active_at`` — and showed ``role`` besides."""
    channel = await group_channel(alice, bob)
    online = Client(server, "alice")
    await online.connect(await access(alice))
    try:
        bob_token = await access(bob)

        async def entries() -> list[dict]:
            status, body = await server.arequest(
                "GET", f"/api/channels/{channel.pk}/presence/", token=bob_token
            )
            assert status == 200, body
            return body["online"]

        [entry] = await eventually(entries)
        assert set(entry) == {"id", "name", "sessions", "last_active_at"}, entry
        assert (entry["id"], entry["name"], entry["sessions"]) == (str(alice.pk), "Alice", 1)
    finally:
        await online.disconnect()

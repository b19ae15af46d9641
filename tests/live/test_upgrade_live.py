"""The direct WebSocket upgrade (``FAST_UPGRADE``, realtime/transport/upgrade.py) under real daphne.

Every request below goes, byte for byte over raw TCP, to two daphne processes: one with the
direct upgrade (the default) and one with ``FAST_UPGRADE=false`` (daphne's own HTTP parse for
everything). Their answers must be the same — status line, response header names, the frames
that follow — while the server log (``LOG_LEVEL=DEBUG``) shows which requests the direct path
took: clean upgrades, and none of the requests it must leave to daphne.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.live.harness import SOCKETIO_PATH, DaphneServer, access

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DIRECT = "Upgraded connection from"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
TARGET = f"{SOCKETIO_PATH}/?EIO=4&transport=websocket".encode()


def upgrade(target: bytes = TARGET, *extra: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    """A WebSocket upgrade request for ``target`` with ``extra`` header lines."""
    lines = [
        b"GET " + target + b" " + version,
        b"Host: 127.0.0.1",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + KEY,
        b"Sec-WebSocket-Version: 13",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def client_text(text: str) -> bytes:
    """One masked client text frame."""
    payload, mask = text.encode(), os.urandom(4)
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return b"\x81" + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple:
    """One server frame, reduced to what does not vary between runs: ("close", code, reason)
    or ("text", Engine.IO/Socket.IO type prefix, sorted JSON keys)."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size >= 126:
        size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
    payload = await reader.readexactly(size)
    if first & 0x0F == 0x8:
        return ("close", int.from_bytes(payload[:2], "big"), payload[2:].decode())
    text = payload.decode()
    prefix = text[: len(text) - len(text.lstrip("0123456789"))]
    body = text[len(prefix) :]
    return ("text", prefix, sorted(json.loads(body)) if body else [])


async def exchange(
    server: DaphneServer, chunks: list[bytes], then: bytes = b"", frames: int = 1
) -> tuple:
    """Send ``chunks`` (a short pause between them, so the server reads them apart), then
    ``then`` once the response head is in; return the status line with the response's header
    names and ``frames`` frames after a 101, or the status line and body otherwise."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for index, chunk in enumerate(chunks):
            if index:
                await asyncio.sleep(0.1)
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(5):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as closed:
                return ("closed", closed.partial)
            status, *header_lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().partition(":")[::2] for line in header_lines if line)
            names = sorted(headers)
            if not status.startswith("HTTP/1.1 101"):
                return (status, await read_body(reader, headers))
            writer.write(then)
            return (status, names, [await read_frame(reader) for _ in range(frames)])
    finally:
        writer.close()


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """A response body by its framing (daphne keeps the connection open after an error)."""
    if headers.get("transfer-encoding", "").strip() == "chunked":
        return await reader.readuntil(b"\r\n0\r\n\r\n")
    length = headers.get("content-length", "").strip()
    return await (reader.readexactly(int(length)) if length else reader.read())


def direct_upgrades(server: DaphneServer) -> int:
    return server.log_path.read_text(errors="replace").count(DIRECT)


async def test_direct_upgrade_answers_every_request_as_daphne_does(servers, alice):
    token = (await access(alice)).encode()
    fast = servers("fast", LOG_LEVEL="DEBUG")
    plain = servers("plain", LOG_LEVEL="DEBUG", FAST_UPGRADE="false")
    clean = upgrade()
    # name -> (chunks, sent after the response head, frames to read, taken directly?)
    cases: dict[str, tuple[list[bytes], bytes, int, bool | None]] = {
        "clean": ([clean], b"", 1, True),
        "token in the query": (
            [upgrade(TARGET + b"&token=" + token)],
            client_text("40"),
            2,
            True,
        ),
        "token in a header": (
            [upgrade(TARGET, b"Authorization: Bearer " + token)],
            client_text("40"),
            2,
            True,
        ),
        "upgrade value in any case": (
            [clean.replace(b"Upgrade: websocket", b"Upgrade: WebSocket")],
            b"",
            1,
            True,
        ),
        "wrong Engine.IO version": ([upgrade(TARGET.replace(b"EIO=4", b"EIO=3"))], b"", 1, True),
        "origin not allowed": ([upgrade(TARGET, b"Origin: http://evil.example")], b"", 1, True),
        # the first read is not a whole request: daphne's parser (or, if the reads merge, the
        # direct path) — the answer is the same either way
        "split over two reads": ([clean[:40], clean[40:]], b"", 1, None),
        "repeated header": ([upgrade(TARGET, b"X-A: 1", b"X-A: 2")], b"", 1, False),
        "header value with a control byte": ([upgrade(TARGET, b"X-A: a\x0bb")], b"", 1, False),
        "header name with a space": ([upgrade(TARGET, b"X A: 1")], b"", 1, False),
        "continuation line": ([upgrade(TARGET, b"X-A: 1", b" 2")], b"", 1, False),
        "body announced": ([upgrade(TARGET, b"Content-Length: 0")], b"", 1, False),
        "HTTP/1.0": ([upgrade(version=b"HTTP/1.0")], b"", 1, False),
        "target with non-ASCII bytes": ([upgrade(TARGET + b"&x=\xc3\xa9")], b"", 1, False),
        "headers over Twisted's limit": ([upgrade(TARGET, b"X-A: " + b"a" * 17000)], b"", 1, False),
        "bytes after the request": ([clean + client_text("40")], b"", 1, False),
        "plain HTTP": (
            [b"GET /api/users/me/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"],
            b"",
            1,
            False,
        ),
    }
    answers: dict[str, tuple] = {}
    for name, (chunks, then, frames, taken) in cases.items():
        before = direct_upgrades(fast), direct_upgrades(plain)
        answers[name] = await exchange(fast, chunks, then, frames)
        assert answers[name] == await exchange(plain, chunks, then, frames), name
        assert direct_upgrades(plain) == before[1], name
        if taken is not None:
            assert direct_upgrades(fast) - before[0] == int(taken), name

    opened = ("text", "0", ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"])
    assert answers["clean"][0] == "HTTP/1.1 101 Switching Protocols"
    assert answers["clean"][2] == [opened]
    assert answers["split over two reads"] == answers["clean"]
    assert answers["upgrade value in any case"] == answers["clean"]
    assert answers["repeated header"] == answers["clean"]
    for name in ("token in the query", "token in a header"):  # query and headers reach the app
        assert answers[name][2] == [opened, ("text", "40", ["pid", "sid"])], name
    assert answers["wrong Engine.IO version"][2][0][:2] == ("close", 4400)
    assert answers["origin not allowed"][0].startswith("HTTP/1.1 403")
    assert answers["header value with a control byte"][0].startswith("HTTP/1.1 400")
    assert answers["plain HTTP"][0].startswith("HTTP/1.1 401")

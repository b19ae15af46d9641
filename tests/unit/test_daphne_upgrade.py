"""Which first reads the direct upgrade takes (``upgrade_query``): the pure check behind
realtime/transport/upgrade.py. tests/live/test_upgrade_live.py proves the answers under daphne."""

from __future__ import annotations

import pytest

from realtime.transport.upgrade import upgrade_query

HEAD = [
    b"GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1",
    b"Host: 127.0.0.1",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
]


def request(*lines: bytes, head: list[bytes] = HEAD) -> bytes:
    return b"\r\n".join([*head, *lines]) + b"\r\n\r\n"


def test_a_clean_upgrade_gives_its_raw_query_string():
    assert upgrade_query(request()) == b"EIO=4&transport=websocket"
    no_query = [b"GET /ws/yjs/1 HTTP/1.1", *HEAD[1:]]
    assert upgrade_query(request(head=no_query)) == b""
    assert upgrade_query(request(b"X-Forwarded-For: 10.0.0.1", b"Cookie: a=b")) is not None


@pytest.mark.parametrize(
    "data",
    [
        request()[:-2],  # the request is not complete yet
        request() + b"\x81\x00",  # bytes after it
        request(head=[b"POST /ws/socket.io/ HTTP/1.1", *HEAD[1:]]),
        request(head=[b"GET http://h/ws/socket.io/ HTTP/1.1", *HEAD[1:]]),  # absolute form
        request(head=[b"GET /ws/socket.io/  HTTP/1.1", *HEAD[1:]]),  # two spaces
        request(head=[b"GET /ws/\x7f HTTP/1.1", *HEAD[1:]]),
        request(head=[b"GET /ws/socket.io/ HTTP/1.1", *HEAD[1:2], *HEAD[3:]]),  # no Upgrade
        request(head=[b"GET /ws/socket.io/ HTTP/1.1", *HEAD[1:2], b"Upgrade: h2c", *HEAD[3:]]),
        request(b": empty name"),
        request(b"X-A 1"),  # no colon
        request(b"X-A: a\rb"),
        request(b"X-A: a\nb"),
        request(b"X-A: a\x00b"),
        request(b"X-A: a\x85b"),
        request(b"Transfer-Encoding: chunked"),
        request(b"upgrade: websocket"),  # repeated, in another case
        request(*(b"X-%d: 1" % i for i in range(500))),  # over Twisted's 500 headers
    ],
)
def test_anything_else_is_left_to_daphne(data):
    assert upgrade_query(data) is None

"""config/body_limit.py: the ASGI body limit (any server), with a stand-in application."""

from __future__ import annotations

import json

import pytest

from config.body_limit import BodyLimitMiddleware, declared_length, response_bytes

LIMIT = 100


class Echo:
    """An application that reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.called = False
        self.saw_disconnect = False

    async def __call__(self, scope, receive, send):
        self.called = True
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.saw_disconnect = True
                break
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


async def run(headers: list, chunks: list[bytes], app=None) -> tuple[Echo, list[dict]]:
    app = app or Echo()
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": headers, "client": ["127.0.0.1", 1]}
    await BodyLimitMiddleware(app)(scope, receive, send)
    return app, sent


def assert_413(sent: list[dict]) -> None:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"]["code"] == "too_large"


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.MAX_REQUEST_BODY_BYTES = LIMIT


async def test_declared_length_over_the_limit_is_refused_without_calling_the_app():
    app, sent = await run([(b"content-length", b"500000000")], [b"x"])
    assert not app.called
    assert_413(sent)


async def test_body_at_the_limit_passes():
    _, sent = await run([(b"content-length", str(LIMIT).encode())], [b"x" * 60, b"x" * 40])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"100"


async def test_streamed_body_crossing_the_limit_is_refused_and_the_app_sees_a_disconnect():
    app, sent = await run([(b"transfer-encoding", b"chunked")], [b"x" * 60, b"x" * 60, b"x"])
    assert app.saw_disconnect
    assert_413(sent)  # the app's own answer after the disconnect is dropped


async def test_understated_length_is_caught_while_streaming():
    _, sent = await run([(b"content-length", b"10")], [b"x" * 60, b"x" * 60])
    assert_413(sent)


async def test_other_scopes_pass_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    await BodyLimitMiddleware(app)({"type": "websocket"}, None, None)
    assert seen == ["websocket"]


def test_declared_length():
    assert declared_length([(b"Content-Length", b"12")]) == 12
    assert declared_length([(b"content-length", b"x")]) is None
    assert declared_length([]) is None


def test_response_bytes_is_a_complete_http_response():
    raw = response_bytes(LIMIT)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert f"Content-Length: {len(body)}".encode() in lines
    assert b"Connection: close" in lines
    assert json.loads(body) == {
        "error": {"code": "too_large", "message": f"The request body is larger than {LIMIT} bytes."}
    }

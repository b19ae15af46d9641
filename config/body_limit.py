"""HTTP request bodies over ``MAX_REQUEST_BODY_BYTES`` are refused with a JSON 413. ASGI.

``BodyLimitMiddleware`` wraps the HTTP application (any ASGI server): a request whose
``Content-Length`` is over the limit is answered 413 ``{"error": {"code": "too_large", …}}``
with ``Connection: close`` at once, without reading its body or calling the application; a
body without (or understating) a length that crosses the limit while the application reads it
gets the same 413, and the application then receives ``http.disconnect`` (Django drops the
request) and anything it still sends is dropped. The limit is read per request.

An ASGI server that buffers the whole body before calling the application (daphne does) has
already spent the memory by then: ``realtime.transport.http`` refuses under daphne while the body
arrives. ``response_bytes`` is the raw HTTP/1.1 response both send.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from django.conf import settings

from .api_errors import error, too_large_message
from .proxies import scope_client_address

logger = logging.getLogger("chorus.http")

STATUS = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def body(limit: int) -> bytes:
    """The JSON body of the 413."""
    return json.dumps(error("too_large", too_large_message(limit)), separators=(",", ":")).encode()


def response_bytes(limit: int) -> bytes:
    """The whole 413 as an HTTP/1.1 response (status line, headers, JSON body)."""
    content = body(limit)
    head = (
        f"HTTP/1.1 {STATUS.value} {STATUS.phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + content


def declared_length(headers: Any) -> int | None:
    """The ``content-length`` of ASGI ``headers`` (None if absent or not a number)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


async def _refuse(send, limit: int) -> None:
    content = body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": STATUS.value,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


class BodyLimitMiddleware:
    """ASGI middleware for ``http`` scopes (others pass through untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.MAX_REQUEST_BODY_BYTES
        length = declared_length(scope.get("headers", ()))
        if length is not None and length > limit:
            logger.warning(
                "HTTP request refused: Content-Length %d over %d (client %s)",
                length,
                limit,
                scope_client_address(scope),
            )
            await _refuse(send, limit)
            return None
        received = 0
        refused = False
        started = False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    logger.warning(
                        "HTTP request refused: body over %d bytes (client %s)",
                        limit,
                        scope_client_address(scope),
                    )
                    if not started:
                        await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def limited_send(message):
            nonlocal started
            if refused:
                return  # the 413 (or the application's own answer) is already out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        return await self.app(scope, limited_receive, limited_send)

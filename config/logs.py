"""What a log line knows beyond its message: the request id and the socket id, and the JSON
form of the line (``LOG_FORMAT=json``; docs/operations.md).

- ``request_id`` and ``socket_id`` are context variables: ``RequestIdMiddleware`` sets the
  first for an HTTP request, the socket consumers set the second once a socket has its sid
  (``realtime.consumers.base``), and every line logged in that context carries them
  (``ContextFilter`` copies them onto the record as ``request_id`` / ``socket_id``; a line
  outside any request or socket has neither).
- An incoming ``X-Request-ID`` is kept only when it is a short safe token (``SAFE_REQUEST_ID``:
  letters, digits, ``.``, ``_``, ``-``; at most 64 characters) so a client cannot write what
  it likes into the logs; otherwise a new one is made. The response carries it back.
- ``redact``: credential query values (``token=``, ``ticket=``, ``api_key=``, …), JWT-shaped
  text and server-API keys become ``[redacted]``; ``RedactFilter`` applies it to every line
  the console handler writes and the JSON formatter to its whole line (defence in depth:
  Chorus logs no credential, a library or an access log might), and the transport seam to
  daphne's access log (``realtime.transport.accesslog``).
- ``json_formatter``: python-json-logger, one object per line with ``timestamp`` (ISO 8601,
  UTC), ``level``, ``logger``, ``message``, the ids when known, and ``exc_info`` when there is
  a traceback.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from pythonjsonlogger.json import JsonFormatter

#: The request id of the HTTP request being handled (``RequestIdMiddleware``).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
#: The sid of the socket being handled (its consumer sets it).
socket_id: contextvars.ContextVar[str] = contextvars.ContextVar("socket_id", default="")

#: An ``X-Request-ID`` kept as it came.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    return secrets.token_hex(8)


def accepted_request_id(header: str | None) -> str:
    """``header`` if it is a safe request id (``SAFE_REQUEST_ID``), else a new one."""
    if header and SAFE_REQUEST_ID.fullmatch(header):
        return header
    return new_request_id()


#: A credential as a query parameter's value (``?token=…``, ``&ticket=…``).
_CREDENTIAL_PARAMETER = re.compile(
    r"(?i)\b(token|ticket|access_token|refresh_token|refresh|api_key|api-key|apikey|key"
    r"|authorization)=[^&\s\"'#]+"
)
#: A JWT (three base64url parts, the first a JSON header: ``eyJ…``).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
#: A server-API key (docs/server-api.md: ``chorus_<8 hex>_<base64url>``), wherever it is.
_API_KEY = re.compile(r"chorus_[0-9a-f]{8}_[A-Za-z0-9_-]{16,}")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with credential query values, JWTs and server-API keys replaced by
    ``[redacted]``."""
    if "=" in text:
        text = _CREDENTIAL_PARAMETER.sub(rf"\1={REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "chorus_" in text:
        text = _API_KEY.sub(REDACTED, text)
    return text


class RedactFilter(logging.Filter):
    """Applies ``redact`` to the record's message (its arguments merged in first) and to its
    traceback (an exception's message may quote what it was given)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            trace = record.exc_text or self._formatter.formatException(record.exc_info)
            cleaned = redact(trace)
            if cleaned != trace:  # both formatters print exc_text when exc_info is gone
                record.exc_info, record.exc_text = None, cleaned
        return True


class ContextFilter(logging.Filter):
    """Puts the current ``request_id`` / ``socket_id`` on each record (when set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = request_id.get()
        if request:
            record.request_id = request
        sid = socket_id.get()
        if sid:
            record.socket_id = sid
        return True


class _RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter whose whole line passes ``redact``: a record's extra
    fields are serialized too (Django's ``django.request`` lines carry the request, whose
    text is its URL, query string included). The patterns never span a quote, so the line
    stays valid JSON."""

    def serialize_log_record(self, log_data: Any) -> str:
        return redact(super().serialize_log_record(log_data))


def json_formatter() -> logging.Formatter:
    """One JSON object per line (module docstring)."""
    return _RedactingJsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="timestamp",
    )


class RequestIdMiddleware:
    """Sets ``request_id`` for the request (a safe ``X-Request-ID`` or a new one) and answers
    it in the response's ``X-Request-ID``. Sync and async.

    Not reset on the way out: Django logs a 4xx / 5xx (``django.request``) after the
    middleware chain returned, and that line must carry the id too. Under ASGI each request
    runs in a context of its own, so the value ends with it; every request sets its own."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        rid = accepted_request_id(request.headers.get("X-Request-ID"))
        request_id.set(rid)
        response: HttpResponseBase = self.get_response(request)
        response["X-Request-ID"] = rid
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        rid = accepted_request_id(request.headers.get("X-Request-ID"))
        request_id.set(rid)
        handler: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        response = await handler(request)
        response["X-Request-ID"] = rid
        return response

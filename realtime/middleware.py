"""WebSocket middleware: the Origin check and the JWT lookup.

``OriginCheckMiddleware`` refuses (before accept, logged) a browser WebSocket whose ``Origin``
header is present and neither matches ``ALLOWED_HOSTS`` nor is listed in
``CORS_ALLOWED_ORIGINS``. A WebSocket without ``Origin`` (a non-browser client) is allowed.

``JWTAuthMiddleware`` sets ``scope["user"]`` (the user or ``AnonymousUser``), ``scope["token"]``
(the ``ValidatedToken`` or None) and ``scope["auth_error"]`` (the ``TokenRejected`` or None)
from, in this order: an ``Authorization: Bearer`` header, a ``token`` cookie, a ``?token=``
query parameter (query strings end up in access logs: a last resort). It never refuses:
consumers decide, so a refused client receives a proper error (CONNECT_ERROR or close code).
Validation is ``accounts.tokens.validate_access_token`` — the same function as HTTP.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlparse

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host

from accounts.authentication import bearer_token
from accounts.tokens import TokenRejected

from .db import validate_token

logger = logging.getLogger("chorus.realtime.auth")


def header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def origin_allowed(origin: str) -> bool:
    """Whether a browser ``Origin`` may open a WebSocket here."""
    if origin in settings.CORS_ALLOWED_ORIGINS:
        return True
    host = urlparse(origin).hostname
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


class OriginCheckMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            raw = header(scope, b"origin")
            origin = raw.decode("latin-1") if raw is not None else None
            if origin is not None and not origin_allowed(origin):
                logger.warning(
                    "WebSocket refused: origin %r not allowed (path %s)", origin, scope.get("path")
                )
                await send({"type": "websocket.close", "code": 4403})
                return None
        return await self.app(scope, receive, send)


def token_from_scope(scope: dict) -> str | None:
    """The raw token from the header, the ``token`` cookie or ``?token=``; None if absent."""
    auth = header(scope, b"authorization")
    if auth:
        return bearer_token(auth) or ""
    cookie = header(scope, b"cookie")
    if cookie:
        jar = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:  # a malformed cookie header is simply "no cookie"
            jar = SimpleCookie()
        if "token" in jar:
            return jar["token"].value
    raw_query = scope.get("query_string", b"")
    if b"token=" not in raw_query:  # the usual case: skip parsing
        return None
    query = parse_qs(raw_query.decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    return None


async def authenticate(raw: str | None):
    """(user, ValidatedToken, None) or (AnonymousUser, None, TokenRejected)."""
    try:
        validated = await validate_token(raw)
    except TokenRejected as rejected:
        return AnonymousUser(), None, rejected
    return validated.user, validated, None


class JWTAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        raw = token_from_scope(scope)
        if raw is None:
            user, token, error = (
                AnonymousUser(),
                None,
                TokenRejected("auth_required", "Authentication credentials were not provided."),
            )
        else:
            user, token, error = await authenticate(raw)
        scope = {**scope, "user": user, "token": token, "auth_error": error}
        return await self.app(scope, receive, send)

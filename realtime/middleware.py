"""WebSocket middleware: the Origin check and the JWT lookup.

``OriginCheckMiddleware`` refuses (close 4403 before accept, logged) a browser WebSocket whose
``Origin`` header is present and is neither listed in ``CORS_ALLOWED_ORIGINS`` nor the
request's own origin (same scheme, host and port; the host in ``ALLOWED_HOSTS``): the rule is
``realtime.origins``. A WebSocket without ``Origin`` (a non-browser client) is allowed.

``JWTAuthMiddleware`` puts the credential the handshake carried into ``scope["credentials"]``
(None when there is none), from, in this order: a ``?ticket=`` query parameter (a single-use
connection ticket, ``accounts.tickets.Ticket``: a client that made one means it), an
``Authorization: Bearer`` header, a ``token`` cookie, a ``?token=`` query parameter (query
strings end up in access logs: a last resort). It validates nothing and spends no ticket: a
consumer validates the credential when it authenticates the socket (the Socket.IO CONNECT, the
y-websocket accept) with ``accounts.tokens.validate_access_token`` — the same function as
HTTP — so a logout, revoke-all or deactivation between the handshake and the CONNECT refuses
the CONNECT, and a refused client receives a proper error (CONNECT_ERROR or close code).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from django.conf import settings

from accounts.authentication import bearer_token
from accounts.tickets import Ticket
from config.proxies import scope_client_address, scope_forwarded_proto
from realtime import origins

logger = logging.getLogger("chorus.realtime.auth")


def header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def origin_allowed(origin: str, scope: dict) -> bool:
    """Whether a browser ``Origin`` may open the WebSocket of ``scope`` (``realtime.origins``:
    the scheme is https for ``wss`` or a trusted proxy's ``X-Forwarded-Proto: https``)."""
    host = header(scope, b"host")
    secure = scope.get("scheme") in ("wss", "https")
    return origins.origin_allowed(
        origin,
        host=host.decode("latin-1") if host is not None else None,
        scheme=scope_forwarded_proto(scope) or ("https" if secure else "http"),
        allowed_hosts=settings.ALLOWED_HOSTS,
        cors_allowed_origins=settings.CORS_ALLOWED_ORIGINS,
    )


class OriginCheckMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            raw = header(scope, b"origin")
            origin = raw.decode("latin-1") if raw is not None else None
            if origin is not None and not origin_allowed(origin, scope):
                logger.warning(
                    "WebSocket refused: origin %r not allowed (path %s, client %s)",
                    origin,
                    scope.get("path"),
                    scope_client_address(scope),
                )
                await send({"type": "websocket.close", "code": 4403})
                return None
        return await self.app(scope, receive, send)


def token_from_scope(scope: dict, from_query: bool = True) -> str | Ticket | None:
    """The handshake's credential: a ``Ticket`` for ``?ticket=``, else the raw token from the
    header, the ``token`` cookie or (``from_query``) ``?token=``; None if absent. (A ticket
    is single-use and short-lived: a URL may carry it, even where URLs are logged.)"""
    raw_query = scope.get("query_string", b"")
    if b"ticket=" in raw_query:
        tickets = parse_qs(raw_query.decode("latin-1")).get("ticket")
        if tickets:
            return Ticket(tickets[0])
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
    if not from_query or b"token=" not in raw_query:  # the usual case: skip parsing
        return None
    query = parse_qs(raw_query.decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    return None


class JWTAuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        scope = {**scope, "credentials": token_from_scope(scope)}
        return await self.app(scope, receive, send)

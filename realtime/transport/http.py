"""Under daphne: request bodies over ``MAX_REQUEST_BODY_BYTES`` refused while they arrive, and
the WebSocket scope's ``scheme``.

**Body limit** (``DAPHNE_BODY_LIMIT``, default on). daphne reads a request's whole body (Twisted
keeps it in memory or a temporary file), then creates the application and queues all of the
body to it: an ASGI middleware (``config.body_limit``) only sees an oversize body once the
server holds it. ``install`` patches daphne's ``WebRequest`` (a Twisted ``http.Request``) where
Twisted's ``HTTPChannel`` feeds a body in:

- ``gotLength(length)`` — called from ``HTTPChannel.allHeadersReceived`` with the declared
  ``Content-Length`` (None when chunked): over the limit, refuse at once;
- ``handleContentChunk(data)`` — each decoded piece of an identity or chunked body: once the
  total crosses the limit, refuse;
- ``requestReceived`` — does nothing for a refused request, so daphne never builds a scope or
  an application for it.

Refusing writes ``config.body_limit.response_bytes`` (the JSON 413) straight to the transport,
as Twisted's own ``HTTPChannel._respondToBadRequestAndDisconnect`` does for a 400; drops the
request's ``Expect`` header (``allHeadersReceived`` reads it after ``gotLength``) so no
``100 Continue`` follows; makes the channel discard what still arrives (``dataReceived`` on the
instance, as Twisted does for a non-persistent connection); unregisters the channel as the
transport's producer (``HTTPChannel._networkProducer``, as daphne does on upgrade) and
half-closes. The rest of the upload is read and thrown away until the client closes or
``LINGER`` seconds pass, then the connection is aborted: closing with unread input would reset
the connection and could destroy the 413 before the client reads it (on TLS, which has no
half-close in Twisted, the connection is closed at once). Only HTTP/1.x
(``request.channel`` an ``HTTPChannel``); HTTP/2 streams keep the ASGI middleware's check.

**WebSocket scheme**. daphne's WebSocket scope has no ``"scheme"`` (ASGI's default: ``"ws"``),
even on TLS; the origin check needs it. ``install`` wraps ``Server.create_application`` to set
``"wss"`` for a WebSocket whose transport is TLS (``ISSLTransport``), ``"ws"`` otherwise.

``install`` is a no-op unless daphne is the server in this process (``daphne.server`` loaded)
and idempotent. ``tests/live/test_http_limits_live.py`` runs it under a real daphne.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import logging
import sys
from typing import cast

from django.conf import settings

from config.body_limit import response_bytes
from config.proxies import client_address, parse_networks

logger = logging.getLogger("chorus.http")

#: Seconds a refused upload is read and discarded before the connection is aborted.
LINGER = 5.0


def _discard(data: bytes) -> None:
    """A refused connection's ``dataReceived``: the rest of the upload goes nowhere."""


def _refuse(request, limit: int) -> None:
    """Answer ``request`` with the JSON 413 and wind its connection down (see module doc)."""
    from twisted.internet import reactor
    from twisted.internet.base import ReactorBase
    from twisted.internet.interfaces import ISSLTransport

    request._chorus_refused = True
    request.requestHeaders.removeHeader(b"expect")
    channel = request.channel
    transport = channel.transport
    peer = getattr(transport.getPeer(), "host", None)
    forwarded = request.requestHeaders.getRawHeaders(b"x-forwarded-for")
    logger.warning(
        "HTTP request refused: body over %d bytes (client %s)",
        limit,
        client_address(
            peer,
            b",".join(forwarded).decode("latin-1") if forwarded else None,
            parse_networks(settings.TRUSTED_PROXIES),
        ),
    )
    channel.dataReceived = _discard
    channel.setTimeout(None)
    channel._networkProducer.unregisterProducer()
    transport.write(response_bytes(limit))
    if ISSLTransport(transport, None) is None and hasattr(transport, "loseWriteConnection"):
        transport.loseWriteConnection()
        # Every installed reactor is a ``ReactorBase`` (see ``shutdown``: Twisted's interfaces
        # read without zope's mypy plugin).
        cast(ReactorBase, reactor).callLater(LINGER, transport.abortConnection)
    else:  # TLS has no half-close of its own: close (the peer may see a reset)
        transport.loseConnection()


def _install_body_limit() -> None:
    from daphne.http_protocol import WebRequest
    from twisted.web.http import HTTPChannel

    if getattr(WebRequest, "chorus_body_limit", False):
        return
    got_length = WebRequest.gotLength
    handle_chunk = WebRequest.handleContentChunk
    request_received = WebRequest.requestReceived

    def gotLength(self, length):
        self._chorus_refused = False
        self._chorus_left = limit = settings.MAX_REQUEST_BODY_BYTES
        if length is not None and length > limit and isinstance(self.channel, HTTPChannel):
            got_length(self, 0)
            _refuse(self, limit)
            return
        got_length(self, length)

    def handleContentChunk(self, data):
        if getattr(self, "_chorus_refused", False):
            return
        self._chorus_left = left = getattr(self, "_chorus_left", 0) - len(data)
        if left < 0 and isinstance(self.channel, HTTPChannel):
            _refuse(self, settings.MAX_REQUEST_BODY_BYTES)
            return
        handle_chunk(self, data)

    def requestReceived(self, command, path, version):
        if getattr(self, "_chorus_refused", False):
            return
        request_received(self, command, path, version)

    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.requestReceived = requestReceived
    WebRequest.chorus_body_limit = True


def _install_websocket_scheme() -> None:
    from daphne.server import Server
    from twisted.internet.interfaces import ISSLTransport

    if getattr(Server.create_application, "chorus_scheme", False):
        return
    create = Server.create_application

    def create_application(self, protocol, scope):
        if scope.get("type") == "websocket" and "scheme" not in scope:
            secure = ISSLTransport(getattr(protocol, "transport", None), None) is not None
            scope["scheme"] = "wss" if secure else "ws"
        return create(self, protocol, scope)

    create_application.chorus_scheme = True  # type: ignore[attr-defined]  # the patch's mark
    Server.create_application = create_application


def install() -> None:
    """Install both patches (the body limit unless ``DAPHNE_BODY_LIMIT`` is off). A no-op
    unless daphne is the server in this process; idempotent."""
    if "daphne.server" not in sys.modules:
        return
    if settings.DAPHNE_BODY_LIMIT:
        _install_body_limit()
    _install_websocket_scheme()

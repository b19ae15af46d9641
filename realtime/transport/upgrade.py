"""Under daphne, hand a clean WebSocket upgrade straight to autobahn (``FAST_UPGRADE``).

daphne receives every connection as HTTP: Twisted parses the request line by line into a
``Request``, daphne's ``WebRequest.process`` checks it, writes it back out as bytes and feeds
those to autobahn, which parses them again — about a tenth of the server's CPU while sockets
connect (docs/benchmarks.md). When the first bytes of a plain-TCP connection are one complete
upgrade request that passes every check Twisted and daphne would make, ``install`` builds
daphne's WebSocket protocol at once and gives it those bytes: what daphne does after its
parse, minus the parse. Everything else — a request split over several reads, TLS, a body,
bytes after the request, a repeated header, a header or target either would refuse or
handle specially, a request over Twisted's limits — goes to daphne's HTTP channel untouched,
which answers it exactly as before. The WebSocket scope autobahn then builds is the same
either way (same headers in the same order, same path and query string).

``upgrade_query`` is the pure check (bytes in, the query string or None out);
``install`` patches ``daphne.http_protocol.HTTPFactory.buildProtocol`` once per process and
does nothing when daphne is not the server. Relies on Twisted's ``_GenericHTTPChannelProtocol``
(``_channel``) and ``HTTPChannel`` (``setTimeout``, ``_networkProducer``, ``totalHeadersSize``,
``maxHeaders``), and takes daphne's header rules from ``daphne.utils``; ``tests/live`` runs
every socket test through this path under a real daphne.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import functools
import logging
import re
import sys

from daphne.utils import HEADER_NAME_RE, INVALID_HEADER_VALUE_BYTES

from realtime.conf import realtime_settings
from realtime.transport.direct import plain_tcp

logger = logging.getLogger("chorus.realtime.upgrade")

#: A request target daphne accepts unchanged: printable ASCII, no space, origin form.
_TARGET = re.compile(rb"/[\x21-\x7e]*")
#: Bytes daphne refuses in a header value, and the ones Twisted refuses (NUL, CR, LF); a
#: value holding any of them goes the ordinary way.
_BAD_VALUE = re.compile(
    b"[" + re.escape(bytes(sorted(INVALID_HEADER_VALUE_BYTES | set(b"\x00\r\n")))) + b"]"
)
#: Headers that announce a body: Twisted's decoders handle those requests.
_BODY = frozenset({b"content-length", b"transfer-encoding"})


def upgrade_query(data: bytes, max_size: int = 16384, max_headers: int = 500) -> bytes | None:
    """The raw query string of ``data`` if it is exactly one complete, clean WebSocket upgrade
    request (``GET /target HTTP/1.1``, unique well-formed headers, the first ``Upgrade``
    ``websocket``, no body, nothing after it) within Twisted's limits (``HTTPChannel``'s
    ``totalHeadersSize`` and ``maxHeaders``, whose defaults these are); else None."""
    if not data.startswith(b"GET /") or not data.endswith(b"\r\n\r\n"):
        return None
    head = data[:-4]
    if len(head) > max_size:
        return None
    lines = head.split(b"\r\n")
    if len(lines) - 1 > max_headers:
        return None
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or not _TARGET.fullmatch(parts[1]):
        return None
    seen: set[bytes] = set()
    upgrade = b""
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not HEADER_NAME_RE.fullmatch(name):
            return None  # also a continuation line (starts with SP/HT) or an empty name
        key = name.lower()
        if key in seen or key in _BODY or _BAD_VALUE.search(value):
            return None
        seen.add(key)
        if key == b"upgrade":
            upgrade = value.strip(b" \t")
    if upgrade.lower() != b"websocket":
        return None
    _, _, query = parts[1].partition(b"?")
    return query


def _first_data(channel_protocol, server, data: bytes) -> None:
    """The first ``dataReceived`` of a daphne HTTP connection: upgrade at once, or restore
    the ordinary method and let daphne's HTTP channel have the bytes."""
    del channel_protocol.dataReceived  # later reads: the class's own method
    channel = channel_protocol._channel
    transport = channel.transport
    query = None
    if realtime_settings.FAST_UPGRADE and plain_tcp(transport):
        query = upgrade_query(data, channel.totalHeadersSize, channel.maxHeaders)
    if query is None:
        channel_protocol.dataReceived(data)
        return
    protocol = server.ws_factory.buildProtocol(transport.getPeer())
    if protocol is None:
        channel_protocol.dataReceived(data)  # daphne answers its own failure
        return
    # As daphne's ``WebRequest.process`` after its parse, and as Twisted's own switch to
    # HTTP/2: the HTTP channel lets go of the idle timeout and of the transport's producer
    # slot (an idle HTTP channel as producer would stop reading the socket whenever the
    # send buffer filled), then the WebSocket protocol takes the transport.
    channel.setTimeout(None)
    channel._networkProducer.unregisterProducer()
    protocol._raw_query_string = query
    transport.protocol = protocol
    protocol.makeConnection(transport)
    protocol.dataReceived(data)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("Upgraded connection from %s directly", transport.getPeer())


def install() -> None:
    """Route the first bytes of every daphne HTTP connection through ``_first_data``. A no-op
    unless daphne is the server in this process (its ``daphne.server`` module is loaded);
    idempotent."""
    if "daphne.server" not in sys.modules:
        return
    from daphne.http_protocol import HTTPFactory

    if getattr(HTTPFactory.buildProtocol, "chorus_fast_upgrade", False):
        return
    build = HTTPFactory.buildProtocol

    def buildProtocol(self, addr):
        channel_protocol = build(self, addr)
        channel_protocol.dataReceived = functools.partial(
            _first_data, channel_protocol, self.server
        )
        return channel_protocol

    buildProtocol.chorus_fast_upgrade = True  # type: ignore[attr-defined]  # the patch's mark
    HTTPFactory.buildProtocol = buildProtocol

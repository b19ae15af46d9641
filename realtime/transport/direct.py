"""daphne's internals Chorus uses, in one place: frames written straight to the TCP transport
(``FAST_BROADCAST``), the bytes a connection has waiting, closes with any code, the factory's
options (``install``), and one autobahn habit that costs every new connection
(``defer_autobahn_config_log``).

Under daphne an ASGI ``websocket.send`` costs a message dict, daphne's reply dispatch and an
autobahn framing pass, and Twisted's asyncio reactor then registers the socket for writing,
waits a loop turn, sends, and unregisters it: two ``epoll_ctl`` calls and two selector-key
rebuilds per frame (a third of the server's profile in the broadcast benchmark). Chorus frames
the bytes itself (``realtime.protocol.wsframe``) and ``write`` sends them at once when the transport
has nothing queued — as uvicorn's transport does — handing only an unsent remainder (or the
whole frame, when something is queued or the send fails) to Twisted, which keeps the order.
``waiting`` reads how much is queued, for the send high-water mark (``realtime.outbound``).

``close`` writes the close frame at the protocol: through ASGI, autobahn refuses codes such as
1009 from an application (an exception in the handler, the client saw 1011 or a dropped
connection) and daphne drops the reason.

Relies on attributes of ``twisted.internet.tcp.Connection`` (``socket``, ``dataBuffer``,
``offset``, ``_tempDataLen``) and on autobahn's ``sendCloseFrame`` and ``failByDrop``;
``tests/live`` runs every socket test through them under a real daphne
(``test_large_frames_to_a_slow_reader_arrive_whole_and_in_order`` forces partial sends and
queued frames; the slow-consumer and 1009 tests read the close codes), so a Twisted or autobahn
upgrade that changes them fails there. Anything that is not a plain TCP transport (TLS, a test
communicator, uvicorn) takes the ordinary path for its frames.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import pprint
import sys
from collections.abc import Iterable

from realtime.conf import largest_client_message, realtime_settings

logger = logging.getLogger("chorus.realtime.socket")


def protocol_of(send):
    """daphne's WebSocket protocol behind an ASGI ``send`` (``partial(handle_reply, protocol)``),
    or None when the server is not daphne."""
    if not isinstance(send, functools.partial):
        return None
    protocol = send.args[0] if send.args else None
    cls: type = type(protocol)  # as ``type`` (mypy takes a ``type[X]`` for unhashable)
    return protocol if _websocket_protocol_class(cls) else None


@functools.cache
def _websocket_protocol_class(cls: type) -> bool:
    """daphne's WebSocket protocol (autobahn's state constants and a transport)."""
    return all(hasattr(cls, name) for name in ("STATE_OPEN", "transport"))


def plain_tcp(transport) -> bool:
    """A Twisted TCP connection carrying no TLS. Under TLS the protocol's transport is a
    ``TLSMemoryBIOProtocol`` that forwards unknown attributes (``socket``…) to the TCP
    connection beneath: bytes sent there would bypass the encryption. A TCP connection
    switched to TLS later (``startTLS``) gets ``TLS = True`` and provides ``ISSLTransport``
    on the instance; both are checked."""
    cls: type = type(transport)  # as in ``protocol_of``
    ssl_interface = _plain_tcp_class(cls)
    if ssl_interface is None or getattr(transport, "TLS", False):
        return False
    return not ssl_interface.providedBy(transport)


@functools.cache
def _plain_tcp_class(cls: type):
    """Twisted's ``ISSLTransport`` if ``cls`` is a TCP connection class without TLS, else
    None (also when Twisted is not installed)."""
    try:
        from twisted.internet.interfaces import ISSLTransport
        from twisted.internet.tcp import Connection
    except ImportError:
        return None
    if issubclass(cls, Connection) and not ISSLTransport.implementedBy(cls):
        return ISSLTransport
    return None


def waiting(transport) -> int:
    """Bytes handed to a Twisted transport and not yet given to the kernel; for TLS, those of
    the TCP connection beneath (0 for anything that is not a Twisted connection)."""
    for _ in range(3):  # TCP, or TLS over TCP
        buffer = getattr(transport, "dataBuffer", None)
        if buffer is not None:
            return len(buffer) - transport.offset + transport._tempDataLen
        transport = getattr(transport, "transport", None)
        if transport is None:
            break
    return 0


def write(protocol, data: bytes, queued: int | None = None) -> bool:
    """Write ``data`` (whole frames) to an open protocol's plain-TCP transport; False if it is
    not open (nothing written). ``queued``: ``waiting(transport)`` if the caller has it."""
    if protocol.state != protocol.STATE_OPEN:
        return False
    transport = protocol.transport
    sock = getattr(transport, "socket", None)
    if queued is None:
        queued = waiting(transport)
    if sock is not None and transport.connected and not transport.disconnecting and not queued:
        try:
            sent = sock.send(data)
        except OSError:  # full (EAGAIN) or failing: Twisted's own path retries or reports it
            sent = 0
        if sent == len(data):
            return True
        data = data[sent:]
    transport.write(data)
    return True


def close(protocol, code: int, reason: str = "") -> bool:
    """Close the WebSocket with ``code`` and ``reason`` at the protocol: autobahn's
    ``sendClose`` refuses codes an application may not use by its rules (1009 among them, so
    daphne's ASGI close crashed the handler) and daphne drops reasons. Writes the close frame
    after what is queued and starts autobahn's close-handshake timeout, after which a peer
    that does not answer is dropped. Before the handshake completes this refuses it (HTTP
    403, daphne's answer to an ASGI close). False if the socket is already closing."""
    if protocol.state == protocol.STATE_OPEN:
        payload = reason.encode()[:123] if reason else None  # Chorus's reasons are ASCII
        protocol.sendCloseFrame(code=code, reasonUtf8=payload, isReply=False)
        return True
    if protocol.state == protocol.STATE_CONNECTING and hasattr(protocol, "handshake_deferred"):
        protocol.serverReject()
        return True
    return False


class _Pformat:
    """``pprint.pformat(value)``, computed only if the log line is actually rendered."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)


def defer_autobahn_config_log() -> None:
    """autobahn (under daphne) pretty-prints its ~60 protocol options for a debug log line on
    every new WebSocket connection, whatever the log level — measurable while sockets
    connect (docs/benchmarks.md has the profile). Make that text lazy: rendered (identically)
    only when debug logging is on."""
    try:
        from autobahn.websocket import protocol
    except ImportError:  # not running under daphne
        return
    if getattr(protocol, "pformat", None) is pprint.pformat:
        # Patches of autobahn's module: a lazy stand-in for the function it imported, and
        # the module's one other pformat user that must return a str (with trackTimings on).
        protocol.pformat = _Pformat  # type: ignore[assignment]
        protocol.Timings.__str__ = lambda self: pprint.pformat(self._timings)  # type: ignore[method-assign]


def limit_messages(protocol, frame_size: int, message_size: int | None = None) -> None:
    """This connection's own limits on what it receives, in bytes (autobahn keeps them per
    protocol, copied from daphne's factory): a larger frame is answered with close 1009 as
    soon as its header arrives, before it is buffered. ``message_size`` (default: the
    factory's, daphne's ``--websocket-max-message-size``) bounds a fragmented message too —
    and, in autobahn, what is *sent* through daphne's own path (TLS, ``FAST_BROADCAST``
    off): so it is lowered only while a socket is not authenticated and is sent nothing
    large."""
    protocol.maxFramePayloadSize = frame_size
    protocol.maxMessagePayloadSize = message_size or protocol.factory.maxMessagePayloadSize


class InboundGate:
    """Backpressure for what one daphne WebSocket receives.

    daphne puts every message it reads into the application's queue at once, with no limit:
    a client flooding small frames (thousands per 64 KiB read) or large ones faster than the
    application handles them grew the server's memory without bound. daphne calls ``queued``
    after it queues a message (``install`` wraps its ``onMessage``), the consumer ``taken``
    after it takes one: with ``MAX_MESSAGES`` messages or ``MAX_BYTES`` waiting the connection
    stops reading its socket (TCP pushes back on the client), and reads again once the queue
    is empty. What may wait per socket is bounded by those limits plus the rest of the read
    (64 KiB) being parsed, or one frame in progress."""

    MAX_MESSAGES = 32
    MAX_BYTES = 4 * 2**20

    __slots__ = ("paused", "queue", "released", "transport")

    def __init__(self, transport, queue: asyncio.Queue) -> None:
        self.transport = transport
        self.queue = queue
        self.paused = False
        self.released = False

    def release(self) -> None:
        """The socket is closing: read again, for good — the client's close reply must be read
        (a socket closed with unread data is reset, and the client could lose the close frame
        it was sent)."""
        self.released = True
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()

    def queued(self) -> None:
        """A message was queued for the application: stop reading if too much waits."""
        if self.paused or self.released:
            return
        waiting = self.queue.qsize()
        if waiting >= self.MAX_MESSAGES or (waiting > 1 and self._bytes() >= self.MAX_BYTES):
            self.paused = True
            self.transport.pauseProducing()

    def taken(self) -> None:
        """The application took a message: read again once nothing waits."""
        if self.paused and not self.released and self.queue.qsize() == 0:
            self.paused = False
            self.transport.resumeProducing()

    def _bytes(self) -> int:
        # asyncio.Queue's deque: private, absent from its stubs.
        waiting: Iterable[dict] = self.queue._queue  # type: ignore[attr-defined]
        return sum(len(message.get("bytes") or message.get("text") or "") for message in waiting)


def inbound_gate(send, receive) -> InboundGate | None:
    """The ``InboundGate`` of a daphne WebSocket (``receive`` is its queue's ``get``); None
    under any other server (uvicorn pauses reading by itself) or with ``INBOUND_BACKPRESSURE``
    off."""
    if not realtime_settings.INBOUND_BACKPRESSURE:
        return None
    protocol = protocol_of(send)
    queue = getattr(receive, "__self__", None)
    if protocol is None or not isinstance(queue, asyncio.Queue):
        return None
    protocol.chorus_gate = gate = InboundGate(protocol.transport, queue)
    return gate


#: Seconds a client has to answer the server's close frame before it is dropped (autobahn's
#: default, 1 s, dropped busy clients — the close frame unsent — while they were still reading
#: what came before it). A client over the send high-water mark is dropped after it too.
CLOSE_HANDSHAKE_TIMEOUT = 5.0


def _apply_protocol_options(factory) -> None:
    """Chorus's options for daphne's WebSocket factory (see ``install``)."""
    factory.failByDrop = False
    factory.closeHandshakeTimeout = CLOSE_HANDSHAKE_TIMEOUT
    needed = largest_client_message()
    for option, flag in (
        ("maxMessagePayloadSize", "--websocket-max-message-size"),
        ("maxFramePayloadSize", "--websocket-max-frame-size"),
    ):
        limit = getattr(factory, option, 0)
        if 0 < limit < needed:
            logger.warning(
                "daphne's %s is %d bytes, below the %d Chorus accepts (DOC_MAX_BYTES + 64 KiB):"
                " larger y-websocket messages are refused with 1009; start daphne with"
                " %s %d (docs/operations.md)",
                flag,
                limit,
                needed,
                flag,
                needed,
            )


def install() -> None:
    """Under daphne (a no-op elsewhere; idempotent), so that every close reaches the client
    with its code:

    - a message over daphne's size limits is answered with close 1009 (autobahn's
      ``failByDrop`` off; on, it dropped the TCP connection without a close frame), a client
      has ``CLOSE_HANDSHAKE_TIMEOUT`` seconds to take the close frame and answer it, and a
      warning names limits below what Chorus accepts — applied when daphne sets its factory's
      options at startup (``Server.run``);
    - a protocol error in a frame that arrives while the server's close frame is on its way
      (a client still sending) no longer drops the TCP connection at once: autobahn did, with
      the client's data unread, so the kernel reset the connection and the client could lose
      the close frame it had been sent. Nothing more is delivered to the application (a frame
      that is not UTF-8 would otherwise reach daphne's decoder and kill the connection); the
      close handshake (or its timeout) ends it;
    - a queued message is reported to the socket's ``InboundGate`` (backpressure);
    - once the close handshake has completed, the TCP connection is closed, not reset
      (autobahn aborted it: a client that had sent its close frame before reading the
      server's could lose that frame to the reset). A handshake that times out still aborts,
      which discards what a client that does not read left in the send buffer."""
    if "daphne.server" not in sys.modules:
        return
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    if getattr(WebSocketFactory.setProtocolOptions, "chorus_options", False):
        return
    set_options = WebSocketFactory.setProtocolOptions
    fail = WebSocketProtocol._fail_connection
    drop = WebSocketProtocol.dropConnection
    on_message = WebSocketProtocol.onMessage

    def setProtocolOptions(self, *args, **kwargs):
        set_options(self, *args, **kwargs)
        _apply_protocol_options(self)

    def _fail_connection(self, *args, **kwargs):
        if self.state != self.STATE_CLOSING:
            fail(self, *args, **kwargs)
        else:  # deliver nothing more (as autobahn does once failed), but keep the connection
            self.failedByMe = True

    def dropConnection(self, abort: bool = False) -> None:
        drop(self, abort=abort and not self.wasClean)

    def onMessage(self, payload, isBinary):
        on_message(self, payload, isBinary)
        gate = getattr(self, "chorus_gate", None)
        if gate is not None:
            gate.queued()

    setProtocolOptions.chorus_options = True  # type: ignore[attr-defined]  # the patch's mark
    WebSocketFactory.setProtocolOptions = setProtocolOptions
    WebSocketProtocol._fail_connection = _fail_connection
    WebSocketProtocol.dropConnection = dropConnection
    WebSocketProtocol.onMessage = onMessage

"""Writing WebSocket frames straight to daphne's TCP transport (``FAST_BROADCAST``), and the
one autobahn habit that costs every new connection (``defer_autobahn_config_log``).

Under daphne an ASGI ``websocket.send`` costs a message dict, daphne's reply dispatch and an
autobahn framing pass, and Twisted's asyncio reactor then registers the socket for writing,
waits a loop turn, sends, and unregisters it: two ``epoll_ctl`` calls and two selector-key
rebuilds per frame (a third of the server's profile in the broadcast benchmark). Chorus frames
the bytes itself (``realtime.wsframe``) and ``write`` sends them at once when the transport
has nothing queued — as uvicorn's transport does — handing only an unsent remainder (or the
whole frame, when something is queued or the send fails) to Twisted, which keeps the order.

Relies on attributes of ``twisted.internet.tcp.Connection`` (``socket``, ``dataBuffer``,
``offset``, ``_tempDataBuffer``); ``tests/live`` runs every socket test through it under a
real daphne (``test_large_frames_to_a_slow_reader_arrive_whole_and_in_order`` forces partial
sends and queued frames), so a Twisted upgrade that changes them fails there. Anything that is
not a plain TCP transport (TLS, a test communicator, uvicorn) takes the ordinary path.
"""

from __future__ import annotations

import functools
import pprint

from .conf import realtime_settings


def daphne_protocol(send):
    """daphne's WebSocket protocol behind an ASGI ``send`` (``partial(handle_reply, protocol)``)
    when frames may be written to its transport directly (``FAST_BROADCAST``); else None."""
    if not realtime_settings.FAST_BROADCAST or not isinstance(send, functools.partial):
        return None
    protocol = send.args[0] if send.args else None
    if not _websocket_protocol_class(type(protocol)):
        return None
    return protocol if plain_tcp(protocol.transport) else None


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
    ssl_interface = _plain_tcp_class(type(transport))
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


def _queue_is_empty(transport) -> bool:
    return not transport._tempDataBuffer and transport.offset >= len(transport.dataBuffer)


def write(protocol, data: bytes) -> bool:
    """Write ``data`` (whole frames) to an open protocol's transport; False if it is not open
    (nothing written)."""
    if protocol.state != protocol.STATE_OPEN:
        return False
    transport = protocol.transport
    sock = getattr(transport, "socket", None)
    if (
        sock is not None
        and transport.connected
        and not transport.disconnecting
        and _queue_is_empty(transport)
    ):
        try:
            sent = sock.send(data)
        except OSError:  # full (EAGAIN) or failing: Twisted's own path retries or reports it
            sent = 0
        if sent == len(data):
            return True
        data = data[sent:]
    transport.write(data)
    return True


class _Pformat:
    """``pprint.pformat(value)``, computed only if the log line is actually rendered."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)


def defer_autobahn_config_log() -> None:
    """autobahn (under daphne) pretty-prints its ~60 protocol options for a debug log line on
    every new WebSocket connection, whatever the log level — 9% of the server's main thread
    while sockets connect (docs/benchmarks.md). Make that text lazy: rendered (identically)
    only when debug logging is on."""
    try:
        from autobahn.websocket import protocol
    except ImportError:  # not running under daphne
        return
    if getattr(protocol, "pformat", None) is pprint.pformat:
        protocol.pformat = _Pformat
        # The module's one other pformat user that must return a str (with trackTimings on).
        protocol.Timings.__str__ = lambda self: pprint.pformat(self._timings)

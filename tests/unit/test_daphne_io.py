"""autobahn's per-connection config log line becomes lazy but renders the same text."""

from __future__ import annotations

import pprint

from autobahn.websocket import protocol

from realtime.transport.direct import defer_autobahn_config_log


def test_autobahn_config_log_is_rendered_only_when_formatted():
    defer_autobahn_config_log()
    defer_autobahn_config_log()  # idempotent
    attrs = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("utf8validateIncoming", 1)]
    lazy = protocol.pformat(attrs)
    assert not isinstance(lazy, str)
    assert f"{lazy}" == str(lazy) == pprint.pformat(attrs)


def test_autobahn_timings_still_render_as_text():
    defer_autobahn_config_log()
    timings = protocol.Timings()
    timings.track("onOpen")
    assert str(timings) == pprint.pformat(timings._timings)


def _daphne_protocol_over(transport):
    """daphne's real WebSocket protocol object, open, over ``transport``."""
    from daphne.ws_protocol import WebSocketProtocol

    protocol = WebSocketProtocol()
    protocol.transport = transport
    protocol.state = protocol.STATE_OPEN  # set by the handshake on a live connection
    return protocol


def test_direct_writes_go_to_plain_tcp_only_never_around_tls():
    """A TLS transport forwards ``socket`` to the TCP connection beneath it: writing there
    would bypass the encryption, so TLS connections take the ASGI path."""
    import functools
    import socket

    from twisted.internet import ssl, tcp
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from realtime.outbound import DirectOutbound, QueuedOutbound, for_connection

    def outbound(protocol):
        return for_connection(functools.partial(print, protocol), lambda waiting: None)

    ours, theirs = socket.socketpair()
    try:
        plain = tcp.Connection(ours, Protocol())
        protocol = _daphne_protocol_over(plain)
        assert isinstance(outbound(protocol), DirectOutbound)

        factory = TLSMemoryBIOFactory(
            ssl.CertificateOptions(), False, Factory.forProtocol(Protocol)
        )
        tls = factory.buildProtocol(None)
        tls.makeConnection(plain)
        assert tls.socket is ours  # the attribute a naive check would trust
        assert isinstance(outbound(_daphne_protocol_over(tls)), QueuedOutbound)
    finally:
        ours.close()
        theirs.close()

"""autobahn's per-connection config log line becomes lazy but renders the same text."""

from __future__ import annotations

import pprint

from autobahn.websocket import protocol

from realtime.daphne_io import defer_autobahn_config_log


def test_autobahn_config_log_is_rendered_only_when_formatted():
    defer_autobahn_config_log()
    defer_autobahn_config_log()  # idempotent
    attrs = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("utf8validateIncoming", 1)]
    lazy = protocol.pformat(attrs)
    assert not isinstance(lazy, str)
    assert f"{lazy}" == str(lazy) == pprint.pformat(attrs)

"""Engine.IO v4 codec for the WebSocket transport (text frames only).

Contract:
- Pure functions, no I/O. Encoders return the exact text frame to send; decoders take one
  received text frame.
- Over WebSocket, Engine.IO v4 sends exactly one packet per frame: a single ASCII digit
  (the packet type) followed by the payload. There is no length prefix and no batching
  (batching with the "\\x1e" separator exists only for HTTP long-polling, which Chorus does
  not speak).
- Binary WebSocket frames carry raw attachment bytes with no type prefix, so there is nothing
  to decode for them here; the caller passes the bytes on as they are.
- ``decode_text`` refuses an empty frame or a first character that is not "0".."6" by raising
  ``DecodeError`` (the only exception it raises). It does not check the payload: for MESSAGE
  the caller hands the rest to ``realtime.protocol.socketio.decode``.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import json

from realtime.protocol.errors import DecodeError

__all__ = [
    "CLOSE",
    "CLOSE_FRAME",
    "MESSAGE",
    "NOOP",
    "NOOP_FRAME",
    "OPEN",
    "PING",
    "PING_FRAME",
    "PONG",
    "PONG_FRAME",
    "UPGRADE",
    "DecodeError",
    "decode_text",
    "encode_message",
    "encode_open",
]

OPEN = 0
CLOSE = 1
PING = 2
PONG = 3
MESSAGE = 4
UPGRADE = 5
NOOP = 6

PING_FRAME = "2"
PONG_FRAME = "3"
CLOSE_FRAME = "1"
NOOP_FRAME = "6"

# Map the first character straight to the packet type: one dict lookup per frame, and only
# ASCII "0".."6" match (str.isdigit() would also accept non-ASCII digits such as Arabic-Indic).
_TYPES: dict[str, int] = {str(t): t for t in range(OPEN, NOOP + 1)}

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_open(sid: str, ping_interval_ms: int, ping_timeout_ms: int, max_payload: int) -> str:
    """Return the OPEN handshake frame, e.g. ``0{"sid":"…","upgrades":[],…}``.

    Keys come out in the order sid, upgrades, pingInterval, pingTimeout, maxPayload, and
    ``upgrades`` is always empty because the connection is already a WebSocket.
    """
    return "0" + _dumps(
        {
            "sid": sid,
            "upgrades": [],
            "pingInterval": int(ping_interval_ms),
            "pingTimeout": int(ping_timeout_ms),
            "maxPayload": int(max_payload),
        }
    )


def encode_message(payload: str) -> str:
    """Return a MESSAGE frame: ``"4" + payload`` (payload is usually a Socket.IO packet)."""
    return "4" + payload


def decode_text(frame: str) -> tuple[int, str]:
    """Split a text frame into ``(packet_type, rest)``: ``"2probe"`` -> ``(2, "probe")``.

    Raises ``DecodeError`` if the frame is empty or its first character is not "0".."6".
    """
    if not frame:
        raise DecodeError("empty Engine.IO frame")
    packet_type = _TYPES.get(frame[0])
    if packet_type is None:
        raise DecodeError("unknown Engine.IO packet type")
    return packet_type, frame[1:]

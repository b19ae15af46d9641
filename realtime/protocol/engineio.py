"""Engine.IO v4 codec: WebSocket frames, HTTP long-polling payloads, and the HTTP errors.

Contract:
- Pure functions, no I/O. Encoders return the exact text to send; decoders take one received
  frame or request body.
- Over WebSocket, Engine.IO v4 sends exactly one packet per frame: a single ASCII digit
  (the packet type) followed by the payload. There is no length prefix and no batching.
  Binary WebSocket frames carry raw attachment bytes with no type prefix, so there is nothing
  to decode for them here; the caller passes the bytes on as they are.
- Over HTTP long-polling a body is a *payload*: packets joined by the record separator
  "\\x1e"; a text packet is as over WebSocket, a binary one is "b" + its base64
  (``encode_payload`` / ``decode_payload``). Refused requests get Engine.IO's JSON error body
  (``error_body``: the codes of the reference servers, ``TRANSPORT_UNKNOWN`` …).
- ``decode_text`` refuses an empty frame or a first character that is not "0".."6" by raising
  ``DecodeError`` (the only exception it raises). It does not check the payload: for MESSAGE
  the caller hands the rest to ``realtime.protocol.socketio.decode``.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

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
    "RECORD_SEPARATOR",
    "UPGRADE",
    "DecodeError",
    "decode_payload",
    "decode_text",
    "encode_binary",
    "encode_message",
    "encode_open",
    "encode_payload",
    "error_body",
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


def encode_open(
    sid: str,
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload: int,
    upgrades: Iterable[str] = (),
) -> str:
    """Return the OPEN handshake packet, e.g. ``0{"sid":"…","upgrades":[],…}``.

    Keys come out in the order sid, upgrades, pingInterval, pingTimeout, maxPayload.
    ``upgrades`` is empty on a WebSocket (already the best transport) and ``["websocket"]`` on
    a polling handshake.
    """
    return "0" + _dumps(
        {
            "sid": sid,
            "upgrades": list(upgrades),
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


# --- HTTP long-polling ------------------------------------------------------------------------

RECORD_SEPARATOR = "\x1e"

#: Engine.IO's error codes for refused HTTP requests (the reference servers' numbering).
TRANSPORT_UNKNOWN = 0
SESSION_ID_UNKNOWN = 1
BAD_HANDSHAKE_METHOD = 2
BAD_REQUEST = 3
FORBIDDEN = 4
UNSUPPORTED_PROTOCOL_VERSION = 5

_ERROR_MESSAGES = {
    TRANSPORT_UNKNOWN: "Transport unknown",
    SESSION_ID_UNKNOWN: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


def error_body(code: int, detail: str = "") -> bytes:
    """The JSON body of a refused request: ``{"code": 1, "message": "Session ID unknown"}``
    (``detail``, if given, is appended to the message after ": ")."""
    message = _ERROR_MESSAGES[code] + (f": {detail}" if detail else "")
    return _dumps({"code": code, "message": message}).encode()


def encode_binary(data: bytes) -> str:
    """A binary packet as it travels in a polling payload: ``"b"`` + base64."""
    return "b" + base64.b64encode(data).decode("ascii")


def encode_payload(packets: Iterable[str]) -> str:
    """Join encoded packets (text packets, ``encode_binary`` ones) into one payload."""
    return RECORD_SEPARATOR.join(packets)


def decode_payload(body: str) -> list[str | bytes]:
    """Split a polling request body into its packets: a text packet as ``str`` (decode it
    with ``decode_text``), a binary one (``"b"`` + base64) as its ``bytes``.

    Raises ``DecodeError`` for an empty body, an empty packet, or bad base64."""
    if not body:
        raise DecodeError("empty payload")
    packets: list[str | bytes] = []
    for packet in body.split(RECORD_SEPARATOR):
        if not packet:
            raise DecodeError("empty packet in payload")
        if packet[0] == "b":
            try:
                packets.append(base64.b64decode(packet[1:], validate=True))
            except (binascii.Error, ValueError) as error:
                raise DecodeError("bad base64 in a binary packet") from error
        else:
            packets.append(packet)
    return packets

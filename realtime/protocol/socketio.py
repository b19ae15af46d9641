"""Socket.IO v5 packet codec (the text after Engine.IO's "4" MESSAGE prefix).

Contract:
- Pure functions, no I/O. ``decode`` parses one text packet into a ``Packet``;
  ``reconstruct`` puts the binary attachments of a BINARY_EVENT/BINARY_ACK back in place;
  the ``encode_*`` functions build the text packet to send (the caller adds the "4").
- Wire format: ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]``. The namespace is
  read only when the character after the type (and attachment count) is "/", and it runs up
  to the first "," or to the end of the text. It is returned exactly as received; "/" is the
  default.
- ``decode`` raises only ``DecodeError``. It refuses: an unknown type; a missing or non-digit
  attachment count, or one above ``max_attachments``; an ack id longer than 10 digits, or an
  ack id on a packet type that cannot carry one; invalid JSON, NaN/Infinity, numbers that
  overflow to infinity (``1e999``, ``-1e999``), or JSON nested deeper than ``MAX_DEPTH``;
  strings with lone UTF-16 surrogates (they cannot be re-encoded as UTF-8 when relayed); and
  data of the wrong shape for the type. The shapes are: CONNECT carries no data or a dict;
  DISCONNECT no data; EVENT/BINARY_EVENT a non-empty list whose first item is a str;
  ACK/BINARY_ACK a list plus an ack id; CONNECT_ERROR a dict or a str. Only EVENT and ACK
  packets may carry an ack id. Only ASCII digits count as digits.
- Encoders take the data as JSON-ready Python values. Bytes are not supported (the JSON
  encoder raises TypeError) and NaN/Infinity raise ValueError. Namespaces are trusted: they
  must start with "/" and contain no ",".
Module map: docs/realtime.md.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from realtime.protocol.errors import DecodeError

CONNECT = 0
DISCONNECT = 1
EVENT = 2
ACK = 3
CONNECT_ERROR = 4
BINARY_EVENT = 5
BINARY_ACK = 6

#: Deepest JSON nesting accepted by decode(); an event is already depth 1. Room for a storable
#: value (lib.json_safety.MAX_DEPTH, 64: a ProseMirror document ~15 lists deep) inside an
#: event's envelope.
MAX_DEPTH = 72
MAX_ID_DIGITS = 10
_MAX_COUNT_DIGITS = 10

_DIGITS = frozenset("0123456789")


@dataclass(slots=True)
class Packet:
    """One decoded Socket.IO packet."""

    type: int
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one that overflows (``1e999``) is refused,
    as NaN/Infinity are: it could be neither relayed as JSON nor stored."""
    value = float(text)
    if math.isinf(value):
        raise DecodeError("JSON number out of range")
    return value


_decode_json = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
# Outside strings, valid JSON holds only brackets, braces, numbers, literals, ",", ":" and
# whitespace. Delete all but the brackets and fold "{}" into "[]"; a character left over means
# the JSON is invalid anyway.
_BRACKETS_ONLY = str.maketrans("{}", "[]", "0123456789.-+eE,: \t\n\rtruefalsn")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_depth(text: str) -> None:
    """Raise DecodeError if ``text`` nests deeper than MAX_DEPTH, without recursing.

    Costs two str.count calls when there are at most MAX_DEPTH brackets; otherwise a few passes
    of C-level string operations.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    if '"' in text:
        text = _STRING.sub("", text)  # strings may contain brackets
    brackets = text.translate(_BRACKETS_ONLY)
    for _ in range(MAX_DEPTH):  # each left-to-right pass peels off exactly one level
        if not brackets:
            return
        peeled = brackets.replace("[]", "")
        if len(peeled) == len(brackets):
            raise DecodeError("invalid JSON payload")
        brackets = peeled
    if brackets:
        raise DecodeError("JSON nested too deeply")


def _parse_json(text: str) -> Any:
    _check_depth(text)
    try:
        data = _decode_json(text)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise DecodeError("invalid JSON payload") from exc
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            _dumps(data).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DecodeError("lone surrogate in JSON string") from exc
    return data


def _valid(packet_type: int, data: Any, ack_id: int | None) -> bool:
    if packet_type in (EVENT, BINARY_EVENT):
        return type(data) is list and len(data) > 0 and type(data[0]) is str
    if packet_type in (ACK, BINARY_ACK):
        return type(data) is list and ack_id is not None
    if ack_id is not None:
        return False
    if packet_type == CONNECT:
        return data is None or type(data) is dict
    if packet_type == DISCONNECT:
        return data is None
    return type(data) is dict or type(data) is str  # CONNECT_ERROR


def decode(text: str, *, max_attachments: int = 10) -> Packet:
    """Parse one Socket.IO text packet: ``217["x",1]`` -> Packet(EVENT, data=["x", 1], id=17)."""
    if not isinstance(text, str) or not text or text[0] not in "0123456":
        raise DecodeError("unknown Socket.IO packet type")
    packet_type = ord(text[0]) - 48
    end = len(text)
    i = 1
    attachments = 0
    if packet_type in (BINARY_EVENT, BINARY_ACK):
        j = i
        while j < end and j - i <= _MAX_COUNT_DIGITS and text[j] in _DIGITS:
            j += 1
        if j == i or j >= end or text[j] != "-" or j - i > _MAX_COUNT_DIGITS:
            raise DecodeError("invalid attachment count")
        attachments = int(text[i:j])
        if attachments > max_attachments:
            raise DecodeError("too many attachments")
        i = j + 1
    namespace = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma == -1:
            comma = end
        namespace = text[i:comma]
        i = comma + 1
    ack_id = None
    if i < end and text[i] in _DIGITS:
        j = i + 1
        while j < end and text[j] in _DIGITS:
            j += 1
            if j - i > MAX_ID_DIGITS:
                raise DecodeError("ack id too long")
        ack_id = int(text[i:j])
        i = j
    data = _parse_json(text[i:]) if i < end else None
    if not _valid(packet_type, data, ack_id):
        raise DecodeError("packet data has the wrong shape for its type")
    return Packet(packet_type, namespace, data, ack_id, attachments)


def _fill(value: Any, attachments: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise DecodeError("packet data nested too deeply")
    if type(value) is list:
        return [_fill(item, attachments, depth + 1) for item in value]
    if type(value) is dict:
        if value.get("_placeholder") is True:
            num = value.get("num")
            if type(num) is not int or not 0 <= num < len(attachments):
                raise DecodeError("invalid attachment placeholder")
            return attachments[num]
        return {key: _fill(item, attachments, depth + 1) for key, item in value.items()}
    return value


def reconstruct(packet: Packet, attachments: list[bytes]) -> Packet:
    """Swap each ``{"_placeholder": true, "num": n}`` for ``attachments[n]``.

    Returns a new packet: BINARY_EVENT becomes EVENT, BINARY_ACK becomes ACK, attachments=0.
    """
    if packet.type == BINARY_EVENT:
        new_type = EVENT
    elif packet.type == BINARY_ACK:
        new_type = ACK
    else:
        raise DecodeError("only BINARY_EVENT and BINARY_ACK packets carry attachments")
    if len(attachments) != packet.attachments:
        raise DecodeError("attachment count mismatch")
    data = _fill(packet.data, attachments, 0)
    if not _valid(new_type, data, packet.id):
        raise DecodeError("packet data has the wrong shape for its type")
    return Packet(new_type, packet.namespace, data, packet.id, 0)


def _prefix(packet_type: str, namespace: str) -> str:
    return packet_type if namespace == "/" else packet_type + namespace + ","


def encode_connect(data: dict | None = None, namespace: str = "/") -> str:
    """``0{"sid":"x"}``; for another namespace ``0/chat,{"sid":"x"}``."""
    head = _prefix("0", namespace)
    return head if data is None else head + _dumps(data)


def encode_connect_error(message: str, data: dict | None = None, namespace: str = "/") -> str:
    """``4{"message":"…","data":{…}}``; the data key is left out when ``data`` is None."""
    body: dict[str, Any] = {"message": message}
    if data is not None:
        body["data"] = data
    return _prefix("4", namespace) + _dumps(body)


class RawJSON(str):
    """JSON text encoded already: the encoders below embed it as it is (a large value sent
    several times — a document's state as the event and as the ack — is encoded once)."""

    __slots__ = ()


def encode_event(
    event: str, data: Any = None, *, ack_id: int | None = None, namespace: str = "/"
) -> str:
    """``2["name",data]``, or ``2["name"]`` when data is None; ``217["name",data]`` with ack id 17.

    ``data`` is the event's single argument, so a list is sent as one array argument; a
    ``RawJSON`` is embedded as it is.
    """
    head = _prefix("2", namespace)
    if ack_id is not None:
        head += str(int(ack_id))
    if isinstance(data, RawJSON):
        return head + _dumps([event])[:-1] + "," + data + "]"
    return head + _dumps([event] if data is None else [event, data])


def encode_ack(ack_id: int, data: list, namespace: str = "/") -> str:
    """``317[{…}]``: ``data`` is the list of values passed to the client's ack callback (one
    ``RawJSON`` value is embedded as it is)."""
    head = _prefix("3", namespace) + str(int(ack_id))
    if len(data) == 1 and isinstance(data[0], RawJSON):
        return head + "[" + data[0] + "]"
    return head + _dumps(data)


_TRAILING_OFFSET = re.compile(r',"(\d{1,20}-\d{1,20})"\]\Z')


def add_offset(event: str, offset: str) -> str:
    """Append ``offset`` as the last argument of an encoded EVENT packet, with or without the
    Engine.IO "4": ``42["x",{}]`` and ``"5-1"`` -> ``42["x",{},"5-1"]``; ``42["x"]`` ->
    ``42["x","5-1"]`` (connection state recovery: the client keeps the last one it got).
    ``offset`` is trusted (``<digits>-<digits>``, nothing to escape)."""
    if not event.endswith("]"):
        raise ValueError("not an encoded EVENT packet")
    return event[:-1] + ',"' + offset + '"]'


def trailing_offset(event: str) -> str | None:
    """The offset ``add_offset`` appended to ``event``, or None: ``42["x",{},"5-1"]`` -> "5-1".
    (An event whose own last argument is such a string reads as one too.)"""
    match = _TRAILING_OFFSET.search(event)
    return match[1] if match else None


def encode_disconnect(namespace: str = "/") -> str:
    """``1``; for another namespace ``1/chat,``."""
    return _prefix("1", namespace)

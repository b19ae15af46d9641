"""y-websocket binary framing: y-protocols v1 sync, awareness and auth messages.

Contract:
- Pure functions, no I/O, no Doc. One WebSocket binary frame holds one message:
  ``varUint messageType`` and then a body that depends on the type.
  SYNC (0):            ``varUint subtype`` (0 step1, 1 step2, 2 update) + ``varUint8Array``
                       (a state vector for step1, an update for step2/update)
  AWARENESS (1):       ``varUint8Array`` holding an awareness update
  AUTH (2):            ``varUint 0`` (permission denied) + ``varString reason``
  QUERY_AWARENESS (3): no body
- lib0 encodings: varUint is little-endian 7-bit groups, with the high bit meaning "more
  bytes follow"; varUint8Array is a varUint length followed by that many bytes; varString is
  a varUint byte length followed by UTF-8.
- Decoders raise only ``DecodeError``. They refuse: truncated input; a varUint with more than
  8 continuation bytes or a value above ``MAX_VAR_UINT`` (2**53); a length that runs past the
  end of the buffer; an unknown message type or sync subtype; invalid UTF-8 in a varString.
- Trailing bytes: ``decode_message`` ignores anything after the first complete message, as
  the y-websocket reference server does, so relay the re-encoded message rather than the raw
  frame. ``decode_awareness_update`` is strict: trailing bytes raise ``DecodeError``.
- Payloads (updates, state vectors) are not checked here; applying them belongs to pycrdt.
  What is read of a Yjs v1 update itself: its leading client count (``check_update``), and
  the delete set of one that holds no structs (``delete_set``).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from realtime.protocol.errors import DecodeError

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

AUTH_PERMISSION_DENIED = 0

MAX_VAR_UINT = 2**53
_MAX_SHIFT = 56  # shift of the 9th byte: up to 8 continuation bytes are allowed


@dataclass(slots=True, frozen=True)
class YMessage:
    """A decoded y-websocket message. ``subtype`` is set only for SYNC messages."""

    kind: int
    subtype: int | None
    payload: bytes


def write_var_uint(n: int) -> bytes:
    """Encode ``0 <= n <= 2**53`` as a lib0 varUint (ValueError outside that range)."""
    if n < 0x80:
        if n < 0:
            raise ValueError("varUint must be non-negative")
        return bytes((n,))
    if n > MAX_VAR_UINT:
        raise ValueError("varUint larger than 2**53")
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def read_var_uint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a varUint at ``pos`` and return ``(value, new_pos)``."""
    end = len(buf)
    if not 0 <= pos < end:
        raise DecodeError("truncated varUint")
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise DecodeError("truncated varUint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > _MAX_SHIFT:
            raise DecodeError("varUint too long")
    if value > MAX_VAR_UINT:
        raise DecodeError("varUint larger than 2**53")
    return value, pos


def write_var_bytes(b: bytes) -> bytes:
    """Encode ``b`` as a lib0 varUint8Array (length prefix + bytes)."""
    return write_var_uint(len(b)) + bytes(b)


def _frame(header: bytes, payload: bytes) -> bytes:
    # One join means a single copy of a possibly large payload.
    return b"".join((header, write_var_uint(len(payload)), payload))


def read_var_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Read a varUint8Array at ``pos`` and return ``(content, new_pos)``."""
    length, pos = read_var_uint(buf, pos)
    stop = pos + length
    if stop > len(buf):
        raise DecodeError("varUint8Array length runs past the end")
    return bytes(buf[pos:stop]), stop


def _write_var_string(s: str) -> bytes:
    return write_var_bytes(s.encode("utf-8"))


def _read_var_string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_var_bytes(buf, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise DecodeError("varString is not valid UTF-8") from exc


def decode_message(data: bytes) -> YMessage:
    """Decode one y-websocket frame (trailing bytes after the message are ignored)."""
    kind, pos = read_var_uint(data, 0)
    if kind == MESSAGE_SYNC:
        subtype, pos = read_var_uint(data, pos)
        if subtype > SYNC_UPDATE:
            raise DecodeError("unknown sync message subtype")
        payload, _ = read_var_bytes(data, pos)
        return YMessage(kind, subtype, payload)
    if kind == MESSAGE_AWARENESS:
        payload, _ = read_var_bytes(data, pos)
        return YMessage(kind, None, payload)
    if kind == MESSAGE_QUERY_AWARENESS:
        return YMessage(kind, None, b"")
    if kind == MESSAGE_AUTH:
        return YMessage(kind, None, bytes(data[pos:]))
    raise DecodeError("unknown y-websocket message type")


def encode_sync_step1(state_vector: bytes) -> bytes:
    """SYNC step1 message carrying the sender's state vector."""
    return _frame(b"\x00\x00", state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    """SYNC step2 message carrying the update the peer is missing."""
    return _frame(b"\x00\x01", update)


def encode_sync_update(update: bytes) -> bytes:
    """SYNC update message carrying an incremental document update."""
    return _frame(b"\x00\x02", update)


def encode_awareness(update: bytes) -> bytes:
    """AWARENESS message wrapping an awareness update (see ``encode_awareness_update``)."""
    return _frame(b"\x01", update)


def encode_query_awareness() -> bytes:
    """QUERY_AWARENESS message (asks the peer to send its full awareness state)."""
    return b"\x03"


def encode_permission_denied(reason: str) -> bytes:
    """AUTH message: permission denied with a human-readable reason."""
    return b"\x02\x00" + _write_var_string(reason)


def decode_permission_denied(payload: bytes) -> str:
    """The reason of an AUTH message body (``YMessage.payload``: ``varUint 0`` + varString);
    ``DecodeError`` for another auth type or a body that does not parse."""
    kind, pos = read_var_uint(payload, 0)
    if kind != AUTH_PERMISSION_DENIED:
        raise DecodeError("unknown auth message type")
    reason, _ = _read_var_string(payload, pos)
    return reason


def decode_awareness_update(update: bytes) -> list[tuple[int, int, str]]:
    """Decode an awareness update into ``(client_id, clock, state_json)`` entries.

    ``state_json`` is returned verbatim and is not parsed; ``"null"`` means the client left.
    Trailing bytes after the last entry raise ``DecodeError``.
    """
    count, pos = read_var_uint(update, 0)
    if count * 3 > len(update) - pos:  # every entry takes at least 3 bytes
        raise DecodeError("awareness entry count exceeds the data")
    entries = []
    for _ in range(count):
        client_id, pos = read_var_uint(update, pos)
        clock, pos = read_var_uint(update, pos)
        state, pos = _read_var_string(update, pos)
        entries.append((client_id, clock, state))
    if pos != len(update):
        raise DecodeError("trailing bytes after awareness update")
    return entries


def encode_awareness_update(entries: list[tuple[int, int, str]]) -> bytes:
    """Encode ``(client_id, clock, state_json)`` entries; use ``"null"`` to remove a client."""
    parts = [write_var_uint(len(entries))]
    for client_id, clock, state in entries:
        parts.append(write_var_uint(client_id))
        parts.append(write_var_uint(clock))
        parts.append(_write_var_string(state))
    return b"".join(parts)


def check_update(update: bytes) -> None:
    """Refuse (``DecodeError``) an update whose leading count — the number of clients with
    structs, which the Yjs decoder reserves room for before reading any — cannot fit in its
    bytes (each client block takes at least 3). pycrdt reserved half a GiB for the 6 bytes
    ``80 80 80 80 01 00`` and blocked the event loop for 0.4 s; the rest of the update is
    left to its decoder. Check every client-supplied update (and state vector:
    ``decode_state_vector``) before it reaches pycrdt."""
    count, pos = read_var_uint(update, 0)
    if count * 3 > len(update) - pos:
        raise DecodeError("update client count exceeds its length")


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector (varUint count, then (client, clock) pairs) as ``{client: clock}``;
    ``DecodeError`` for one that does not parse (a count past its bytes included)."""
    count, pos = read_var_uint(data, 0)
    if count * 2 > len(data) - pos:
        raise DecodeError("state vector count exceeds its length")
    vector: dict[int, int] = {}
    for _ in range(count):
        client, pos = read_var_uint(data, pos)
        clock, pos = read_var_uint(data, pos)
        vector[client] = clock
    return vector


def unintegrated(leftover: bytes, state_vector: dict[int, int]) -> bool:
    """Whether a document still lacks part of an update it was given. ``leftover`` is what
    the update holds beyond the document's state (``pycrdt.get_update(update, state)``,
    taken after applying it) and ``state_vector`` the document's decoded state vector.

    Yjs parks what it cannot integrate yet — structs whose predecessors it has not seen,
    deletions of items it does not have — as pending, outside the document's state: the
    leftover then still carries structs (its first varUint, the count of struct blocks, is not
    0), or its delete set names clocks beyond the state vector."""
    if not leftover or leftover[0] != 0:
        return bool(leftover)
    pos = 1
    clients, pos = read_var_uint(leftover, pos)
    for _ in range(clients):
        client, pos = read_var_uint(leftover, pos)
        ranges, pos = read_var_uint(leftover, pos)
        known = state_vector.get(client, 0)
        for _ in range(ranges):
            clock, pos = read_var_uint(leftover, pos)
            length, pos = read_var_uint(leftover, pos)
            if clock + length > known:
                return True
    return False


#: A delete set: ``{client: [(clock, length), ...]}``.
DeleteSet = dict[int, list[tuple[int, int]]]


def delete_set(update: bytes) -> DeleteSet | None:
    """The delete set of a Yjs v1 update that holds no structs (its first varUint is 0: what
    ``pycrdt.get_update`` leaves of an update the state vector covers); None when it holds
    structs. ``DecodeError`` for one that does not parse, counts past its bytes and trailing
    bytes included (each client and each range takes at least 2 bytes)."""
    structs, pos = read_var_uint(update, 0)
    if structs:
        return None
    result: DeleteSet = {}
    clients, pos = read_var_uint(update, pos)
    if clients * 2 > len(update) - pos:
        raise DecodeError("delete set client count exceeds its length")
    for _ in range(clients):
        client, pos = read_var_uint(update, pos)
        count, pos = read_var_uint(update, pos)
        if count * 2 > len(update) - pos:
            raise DecodeError("delete set range count exceeds its length")
        ranges = result.setdefault(client, [])
        for _ in range(count):
            clock, pos = read_var_uint(update, pos)
            length, pos = read_var_uint(update, pos)
            ranges.append((clock, length))
    if pos != len(update):
        raise DecodeError("trailing bytes after the delete set")
    return result


def deletions_covered(deletions: DeleteSet, by: DeleteSet) -> bool:
    """Whether every range of ``deletions`` lies within the ranges of ``by`` (nothing in it
    is a deletion ``by`` lacks). Empty ranges count as covered."""
    for client, ranges in deletions.items():
        starts, ends = _merged(by.get(client, []))
        for clock, length in ranges:
            if not length:
                continue
            i = bisect.bisect_right(starts, clock) - 1
            if i < 0 or ends[i] < clock + length:
                return False
    return True


def _merged(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, merged ``ranges`` as parallel lists of starts and (exclusive) ends."""
    starts: list[int] = []
    ends: list[int] = []
    for clock, length in sorted(ranges):
        if starts and clock <= ends[-1]:
            ends[-1] = max(ends[-1], clock + length)
        elif length:
            starts.append(clock)
            ends.append(clock + length)
    return starts, ends

"""Open WebUI's awareness form: UTF-8 JSON of ``{"<client id>": state, ...}``. Pure.

Open WebUI's collaboration client (``src/lib/components/common/RichTextInput/Collaboration.ts``,
its ``SimpleAwareness``) does not speak y-protocols awareness. Over ``ydoc:awareness:update``
it sends ``update`` = the bytes (an int list) of ``JSON.stringify({[clientID]: state})`` — its
Yjs client id and its whole local state (``user`` {name, color, id}, y-prosemirror's ``cursor``
{anchor, head} or null), no clock — and it reads what it receives the same way: ``JSON.parse``
of the bytes, each key set as that client's state. It has no way to remove a state, and
y-prosemirror's cursor plugin reads ``state.cursor`` of every state (a ``null`` state throws).

Contract:
- ``is_json_form(data)``: the first byte is ``{``. (A y-protocols awareness update starting
  with that byte would announce 123 entries; at most ``AWARENESS_MAX_IDS_PER_CONNECTION`` of
  any update are ever kept.)
- ``decode(data)`` -> ``[(client_id, state_json)]`` in key order; ``state_json`` is the state
  re-encoded as compact JSON, ``"null"`` for a ``null`` value (the client is gone). Raises
  ``DecodeError`` (only) for: bytes that are not UTF-8; text that is not JSON a database could
  store (``lib.json_safety``: no NaN / Infinity, NUL, lone surrogate, nesting over 64); a
  value that is not an object; a key that is not a canonical decimal integer (``0`` or no
  leading zero) of at most 2**53 (the largest y-protocols client id).
- ``encode(entries)`` -> the JSON bytes of ``[(client_id, state_json)]``; a removed client
  (``"null"``) is written as ``{}``: an empty state, which Open WebUI's client stores and
  y-prosemirror draws no caret for.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import json
import re

from lib import json_safety
from realtime.protocol.errors import DecodeError

#: The largest client id (the y-protocols varUint bound, ``yprotocol.MAX_VAR_UINT``).
MAX_CLIENT_ID = 2**53
_CANONICAL_ID = re.compile(r"0|[1-9][0-9]{0,15}")


def is_json_form(data: bytes) -> bool:
    """Whether ``data`` is Open WebUI's JSON form rather than a y-protocols update."""
    return data[:1] == b"{"


def decode(data: bytes) -> list[tuple[int, str]]:
    """``(client_id, state_json)`` entries of a JSON-form awareness update."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("awareness JSON is not UTF-8") from None
    try:
        value = json_safety.loads(text)
    except ValueError as error:
        raise DecodeError(f"awareness JSON does not parse: {error}") from None
    if not isinstance(value, dict):
        raise DecodeError("awareness JSON must be an object of client id -> state")
    entries = []
    for key, state in value.items():
        if not _CANONICAL_ID.fullmatch(key) or int(key) > MAX_CLIENT_ID:
            raise DecodeError("awareness JSON keys must be client ids (integers 0..2**53)")
        entries.append((int(key), json.dumps(state, ensure_ascii=False, separators=(",", ":"))))
    return entries


def encode(entries: list[tuple[int, str]]) -> bytes:
    """The JSON form of ``(client_id, state_json)`` entries (``"null"`` written as ``{}``).

    ``state_json`` must be JSON text (the room keeps only states that parse); it is written
    as it is."""
    parts = [f'"{client_id}":{_shown(state)}' for client_id, state in entries]
    return ("{" + ",".join(parts) + "}").encode()


def _shown(state: str) -> str:
    return "{}" if state.strip(" \t\r\n") == "null" else state

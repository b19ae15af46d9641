"""The rules for a client-rendered ``data.content`` ({md, html, json}). Pure: no I/O, no ORM.

Every path that accepts content from a client (Socket.IO ``ydoc:document:update``, REST
``POST`` / ``PATCH /api/notes/``) calls ``check_content`` before anything is applied, relayed
or stored, so content that a database cannot store (or that the Yjs converter cannot read)
never reaches a save:

- ``md`` / ``html``: strings; ``json``: ``None`` or a ProseMirror document that
  ``check_prosemirror`` accepts (the rules ``notes.yjs.fill_fragment`` converts by);
- storable by both databases (``lib.json_safety.check_storable``): finite numbers, no NUL
  and no lone surrogate in any text, at most ``MAX_DEPTH`` containers deep;
- at most ``max_bytes`` as compact UTF-8 JSON (``DOC_MAX_CONTENT_BYTES``).

``ContentError`` (a ``ValueError``) names the first problem; ``ContentTooLarge`` is the size
refusal (``too_large`` on the socket). ``check_prosemirror`` is also the converter's own gate.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lib.json_safety import MAX_DEPTH, UnsafeJSON, check_storable

#: Deepest ProseMirror node nesting the converter builds (``doc`` itself is level 0).
MAX_NODE_DEPTH = 64
#: Integers Yjs attributes hold (pycrdt stores them as signed 64-bit; larger ones panic).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
#: A UTF-16 surrogate code point: pycrdt cannot encode a str holding one (and may panic).
_SURROGATE = re.compile("[\ud800-\udfff]")

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class ContentError(ValueError):
    """Content that cannot be accepted: not the schema, not storable, or not convertible."""


class ContentTooLarge(ContentError):
    """Content larger than the limit it was checked against."""


def content_size(content: Any) -> int:
    """Bytes of ``content`` as compact UTF-8 JSON (how the limit is measured)."""
    return len(_encode(content).encode("utf-8"))


def check_content(content: Any, max_bytes: int) -> None:
    """Raise ``ContentError`` unless ``content`` is an acceptable ``data.content`` (see the
    module doc); ``ContentTooLarge`` when it is over ``max_bytes``. Keys other than md, html
    and json are the caller's to drop; they are checked for storability and size only."""
    if not isinstance(content, dict):
        raise ContentError("data.content must be an object.")
    for key in ("md", "html"):
        if key in content and not isinstance(content[key], str):
            raise ContentError(f"data.content.{key} must be a string.")
    try:
        check_storable(content, max_depth=MAX_DEPTH)
    except UnsafeJSON as error:
        raise ContentError(f"data.content cannot be stored: {error}.") from None
    size = content_size(content)
    if size > max_bytes:
        raise ContentTooLarge(
            f"data.content is {size} bytes; at most {max_bytes} (DOC_MAX_CONTENT_BYTES)."
        )
    if content.get("json") is not None:
        check_prosemirror(content["json"])


def check_prosemirror(pm_json: Any) -> None:
    """Raise ``ContentError`` unless ``pm_json`` is a ProseMirror document that the Yjs
    converter (``notes.yjs.fill_fragment``) turns into the ``prosemirror`` fragment without
    error. The converter's rules, where an absent or empty (falsy) value counts as empty:
    ``{"type": "doc"}`` whose ``content`` is a list of nodes with a string ``type``; a text
    node has a string ``text`` and ``marks``, a list of objects with a string ``type``; any
    other node has ``attrs``, an object, and ``content``, a list; nodes nest at most
    ``MAX_NODE_DEPTH`` deep; every integer in ``attrs`` (of nodes and marks) fits in 64 bits
    and no string the converter reads holds a lone surrogate (pycrdt's limits: either would
    raise, or panic, inside the converter). Iterative: any input is checked without
    recursing. Storability as JSON is ``check_storable``'s job, not this one's."""
    if not isinstance(pm_json, dict) or pm_json.get("type") != "doc":
        raise ContentError("content.json must be a ProseMirror document ({'type': 'doc'}).")
    stack: list[tuple[Any, int]] = [(pm_json.get("content"), 0)]
    while stack:
        content, depth = stack.pop()
        if depth > MAX_NODE_DEPTH:
            raise ContentError("The document is nested too deeply.")
        for node in _list(content, "'content' must be a list."):
            if not isinstance(node, dict) or not isinstance(node.get("type"), str):
                raise ContentError("Every node needs a string 'type'.")
            _check_string(node["type"])
            if node["type"] == "text":
                _check_text(node)
            else:
                attrs = node.get("attrs") or {}
                if not isinstance(attrs, dict):
                    raise ContentError("'attrs' must be an object.")
                _check_values(attrs)
                stack.append((node.get("content"), depth + 1))


def _list(value: Any, message: str) -> list:
    """``value`` as a list (falsy is empty, as the converter reads it); ``ContentError``
    with ``message`` for anything else."""
    if not value:
        return []
    if not isinstance(value, list):
        raise ContentError(message)
    return value


def _check_text(node: dict) -> None:
    if not isinstance(node.get("text"), str):
        raise ContentError("A text node needs a string 'text'.")
    _check_string(node["text"])
    for mark in _list(node.get("marks"), "'marks' must be a list."):
        if not isinstance(mark, dict) or not isinstance(mark.get("type"), str):
            raise ContentError("A mark needs a string 'type'.")
        _check_string(mark["type"])
        _check_values(mark.get("attrs"))


def _check_string(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise ContentError("Text may not contain a lone surrogate.")


def _check_values(value: Any) -> None:
    """Every integer in ``value`` (at any depth) fits in 64 bits; every string and key is
    free of lone surrogates."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    _check_string(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _check_string(item)
        elif isinstance(item, int) and not _INT_MIN <= item <= _INT_MAX:
            raise ContentError("An integer in 'attrs' does not fit in 64 bits.")

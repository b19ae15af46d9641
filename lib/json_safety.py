"""JSON a database can store: finite numbers, no NUL or lone surrogate in any text, bounded
nesting. Pure.

Python's ``json`` accepts what neither SQLite's ``JSON_VALID`` nor PostgreSQL's ``jsonb``
store: ``NaN`` / ``Infinity`` and numbers that overflow to them (``1e999``),
``"\\u0000"`` in strings (PostgreSQL refuses NUL in text and ``jsonb``), and strings holding a
lone UTF-16 surrogate (``"\\ud800"``: not encodable as UTF-8, refused by ``jsonb``). A value that
passes ``check_storable`` can be written to either database and read back unchanged; one that
does not raises ``UnsafeJSON`` (a ``ValueError``) naming the first problem. Input that nests
deeper than Python's recursion limit is reported the same way, never as ``RecursionError``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deepest nesting accepted by default (a ProseMirror document of realistic depth is < 20).
MAX_DEPTH = 64


#: A UTF-16 surrogate code point: a str holding one cannot be encoded as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnsafeJSON(ValueError):
    """A JSON text or value that cannot be stored as it is."""


def _check_text(text: str) -> None:
    """Raise ``UnsafeJSON`` for a NUL or a lone surrogate in ``text`` (a value or a key)."""
    if "\x00" in text:
        raise UnsafeJSON("text may not contain NUL (\\u0000)")
    if not text.isascii() and _SURROGATE.search(text):
        raise UnsafeJSON("text may not contain a lone surrogate (\\ud800-\\udfff)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"number out of range: {text[:32]}")
    return value


def _no_constant(name: str) -> Any:
    raise UnsafeJSON(f"not a JSON value: {name}")


_decoder = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)


def loads(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` and ``check_storable`` the result; ``UnsafeJSON`` for anything that is
    not storable JSON (invalid JSON raises ``json.JSONDecodeError``, also a ``ValueError``)."""
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise UnsafeJSON("JSON nested too deeply") from None
    check_storable(value, max_depth=max_depth)
    return value


def check_storable(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``UnsafeJSON`` unless ``value`` (built of dict, list, str, int, float, bool and
    None) is storable: every float finite, no NUL or lone surrogate in a string or key,
    nesting at most ``max_depth`` containers deep. Iterative, so any depth is checked
    without recursing."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnsafeJSON(f"JSON nested deeper than {max_depth}")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise UnsafeJSON("object keys must be strings")
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeJSON("numbers must be finite")
        elif item is not None and not isinstance(item, bool | int):
            raise UnsafeJSON(f"not a JSON value: {type(item).__name__}")

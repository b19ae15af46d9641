"""The REST API's JSON parser: only JSON a database can store gets past it.

``SafeJSONParser`` is DRF's ``JSONParser`` with the parse done by ``lib.json_safety.loads``:
a body that is not UTF-8 JSON, nests deeper than ``json_safety.MAX_DEPTH``, holds ``NaN`` /
``Infinity`` or a number that overflows to them (``1e999``), or ``"\\u0000"`` in any string or
key raises DRF's ``ParseError`` — a 400 ``bad_request`` in the API's error shape — before a
view sees it (never a ``RecursionError`` 500, never a database error later).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from lib.json_safety import loads


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads(stream.read().decode(encoding))
        except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, UnsafeJSON
            raise ParseError(f"JSON parse error - {exc}") from None

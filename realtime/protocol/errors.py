"""Shared error type for Chorus's pure protocol codecs.

``DecodeError`` is the ONE exception that the codecs of ``realtime.protocol`` (``engineio``,
``socketio``, ``yprotocol``, ``jsonawareness``) raise for input that does not parse or fails
validation. No other exception type (IndexError, KeyError, json errors, RecursionError,
UnicodeDecodeError, ...) escapes a decoder for hostile input, so a transport can
``except DecodeError`` and close the connection. It subclasses ``ValueError`` so generic
``except ValueError`` handlers still work.
Module map: docs/realtime.md.
"""


class DecodeError(ValueError):
    """Raised by every codec for malformed or out-of-bounds input (the only decode error)."""

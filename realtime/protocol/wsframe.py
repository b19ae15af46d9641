"""WebSocket framing for the direct write path (RFC 6455 §5.2), pure.

A frame from server to client is never masked, so a broadcast's frame is the same bytes for
every recipient: the hub builds it once (``SharedFrame``) and, where the server exposes the
connection's transport (daphne), writes those bytes directly instead of paying a framing pass
per recipient. Hand-written because no library exposes "frame these bytes once" separately
from its own connection object; it is eight lines of the RFC.
"""

from __future__ import annotations

_FIN_TEXT = 0x81  # FIN + opcode 1 (text)
_FIN_BINARY = 0x82  # FIN + opcode 2 (binary)


def _frame(first: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (UTF-8 bytes)."""
    return _frame(_FIN_TEXT, payload)


def binary_frame(payload: bytes) -> bytes:
    """One final, unmasked binary frame carrying ``payload``."""
    return _frame(_FIN_BINARY, payload)


class SharedFrame:
    """A text frame shared by many recipients: the text, and its wire bytes built once."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.text.encode())
        return self._wire

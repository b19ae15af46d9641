"""WebSocket framing for the direct write path (RFC 6455 §5.2), pure.

A frame from server to client is never masked, so a broadcast's frame is the same bytes for
every recipient: the hub (room broadcasts) and a document room (relayed updates and
awareness) build it once (``SharedFrame``) and, where the server exposes the connection's
transport (daphne), write those bytes directly instead of paying a framing pass per
recipient. Hand-written because no library exposes "frame these bytes once" separately
from its own connection object; it is eight lines of the RFC.
Module map: docs/realtime.md.
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
    """A frame shared by many recipients: its ``payload`` — text (``str``) or binary
    (``bytes``) — and its wire bytes, built once on first use."""

    __slots__ = ("_wire", "payload")

    def __init__(self, payload: str | bytes) -> None:
        self.payload = payload
        self._wire: bytes | None = None

    @property
    def text(self) -> str:
        """The payload of a text frame (``TypeError`` for a binary one)."""
        if not isinstance(self.payload, str):
            raise TypeError("a binary frame has no text")
        return self.payload

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            payload = self.payload
            if isinstance(payload, str):
                self._wire = text_frame(payload.encode())
            else:
                self._wire = binary_frame(payload)
        return self._wire

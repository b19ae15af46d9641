"""Whole WebSocket text frames of the Socket.IO endpoint, built from the two codecs. Pure.
Module map: docs/realtime.md."""

from __future__ import annotations

from typing import Any

from realtime.protocol import engineio, socketio


def event_frame(event: str, data: Any) -> str:
    """The WebSocket text frame of a Socket.IO event (Engine.IO MESSAGE + EVENT packet)."""
    return engineio.encode_message(socketio.encode_event(event, data))

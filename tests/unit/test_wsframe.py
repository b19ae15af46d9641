"""The frame encoder against the websockets library's own framing."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from realtime.protocol.wsframe import SharedFrame, binary_frame, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 1_000_000])
def test_text_frame_matches_websockets(size):
    payload = b"x" * size
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


@pytest.mark.parametrize("size", [0, 125, 126, 65536])
def test_binary_frame_matches_websockets(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert binary_frame(payload) == Frame(Opcode.BINARY, payload).serialize(mask=False)


def test_shared_frame_encodes_utf8_once():
    shared = SharedFrame('42["e","é"]')
    assert shared.wire is shared.wire
    assert shared.wire == Frame(Opcode.TEXT, '42["e","é"]'.encode()).serialize(mask=False)


def test_shared_binary_frame_is_a_binary_frame_built_once():
    payload = b"\x00\x02\x05\x01\x01\x00"  # a y-websocket sync update
    shared = SharedFrame(payload)
    assert shared.wire is shared.wire
    assert shared.wire == Frame(Opcode.BINARY, payload).serialize(mask=False)
    with pytest.raises(TypeError):
        shared.text  # noqa: B018 - a binary frame has no text

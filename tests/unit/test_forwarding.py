"""``realtime.consumers.forwarding.home_of``: which layer channel a polling sid may name as its
home — only ever a hub's (a client writes the sid: it must not steer messages elsewhere)."""

import base64

import pytest

from realtime.consumers.forwarding import home_of


def sid_naming(channel: bytes) -> str:
    return "token." + base64.urlsafe_b64encode(channel).decode().rstrip("=")


def test_a_hub_channel_is_a_home():
    channel = "chorus.hub.a1b2c3d4e5f6!0123456789abcdef"
    assert home_of(sid_naming(channel.encode())) == channel


@pytest.mark.parametrize(
    "sid",
    [
        "token",  # single process: no home in it
        "token.",
        sid_naming(b"some.group!x"),  # a layer channel that is no hub's
        sid_naming(b"chorus.hub.bad name"),  # not a valid channel name
        sid_naming(b"chorus.hub." + b"x" * 200),  # too long
        "token.%%%not-base64",
        sid_naming("chorus.hub.é".encode()),  # not ASCII
    ],
)
def test_anything_else_is_no_home(sid):
    assert home_of(sid) is None

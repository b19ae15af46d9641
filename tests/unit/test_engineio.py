"""Unit tests for realtime.protocol.engineio (Engine.IO v4 WebSocket frames, polling payloads)."""

import json

import pytest

from realtime.protocol import engineio as eio
from realtime.protocol.errors import DecodeError

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev-only dependency
    given = None


def test_constants():
    assert (eio.OPEN, eio.CLOSE, eio.PING, eio.PONG) == (0, 1, 2, 3)
    assert (eio.MESSAGE, eio.UPGRADE, eio.NOOP) == (4, 5, 6)
    assert (eio.PING_FRAME, eio.PONG_FRAME, eio.CLOSE_FRAME, eio.NOOP_FRAME) == ("2", "3", "1", "6")


def test_encode_open_exact():
    frame = eio.encode_open("AbC-123_", 25000, 20000, 1000000)
    assert frame == (
        '0{"sid":"AbC-123_","upgrades":[],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":1000000}'
    )


def test_encode_open_escapes_sid():
    frame = eio.encode_open('a"b\\é', 1, 2, 3)
    assert (
        frame
        == '0{"sid":"a\\"b\\\\é","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3}'
    )
    assert json.loads(frame[1:])["sid"] == 'a"b\\é'


def test_encode_open_is_accepted_by_python_engineio():
    from engineio import packet as pe

    pkt = pe.Packet(encoded_packet=eio.encode_open("s1", 25000, 20000, 1000000))
    assert pkt.packet_type == pe.OPEN
    assert pkt.data == {
        "sid": "s1",
        "upgrades": [],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 1000000,
    }


def test_encode_message():
    assert eio.encode_message('2["x"]') == '42["x"]'
    assert eio.encode_message("") == "4"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("2", (eio.PING, "")),
        ("3", (eio.PONG, "")),
        ("2probe", (eio.PING, "probe")),
        ("3probe", (eio.PONG, "probe")),
        ("5", (eio.UPGRADE, "")),
        ("6", (eio.NOOP, "")),
        ("1", (eio.CLOSE, "")),
        ("0{}", (eio.OPEN, "{}")),
        ('42["typing",{"a":1}]', (eio.MESSAGE, '2["typing",{"a":1}]')),
        ("4héllo", (eio.MESSAGE, "héllo")),
    ],
)
def test_decode_text(frame, expected):
    assert eio.decode_text(frame) == expected


@pytest.mark.parametrize("frame", ["", "7", "9", "x", " 4", "-1", "\u0664x", "\x00", "é"])
def test_decode_text_rejects(frame):
    with pytest.raises(DecodeError):
        eio.decode_text(frame)


def test_decode_error_is_value_error():
    assert issubclass(DecodeError, ValueError)


def test_roundtrip_with_python_engineio():
    from engineio import packet as pe

    for ptype in (pe.PING, pe.PONG, pe.MESSAGE, pe.NOOP, pe.CLOSE, pe.UPGRADE):
        encoded = pe.Packet(ptype, data="probe").encode()
        assert eio.decode_text(encoded) == (ptype, "probe")


if given is not None:

    @settings(database=None, deadline=None, max_examples=500)
    @given(st.text())
    def test_fuzz_decode_text_only_raises_decode_error(frame):
        try:
            packet_type, rest = eio.decode_text(frame)
        except DecodeError:
            return
        assert 0 <= packet_type <= 6
        assert str(packet_type) + rest == frame


# --- HTTP long-polling payloads -------------------------------------------------------------


def test_encode_open_offers_upgrades():
    frame = eio.encode_open("s", 1, 2, 3, ("websocket",))
    assert json.loads(frame[1:])["upgrades"] == ["websocket"]


def test_payload_round_trip_exact():
    packets = ["0{}", '42["x",1]', eio.encode_binary(b"\x00\xffab"), "6"]
    body = eio.encode_payload(packets)
    assert body == '0{}\x1e42["x",1]\x1ebAP9hYg==\x1e6'
    assert eio.decode_payload(body) == ["0{}", '42["x",1]', b"\x00\xffab", "6"]


def test_payload_matches_python_engineio():
    """The reference implementation decodes our payload to the same packets, and ours decodes
    its payload (text and binary)."""
    from engineio import packet as pe
    from engineio import payload as pp

    ours = eio.encode_payload(['42["a"]', eio.encode_binary(b"\x01\x02")])
    theirs = pp.Payload(encoded_payload=ours)
    assert [p.data for p in theirs.packets] == ['2["a"]', b"\x01\x02"]
    reference = pp.Payload(
        packets=[pe.Packet(pe.MESSAGE, data='2["b"]'), pe.Packet(pe.MESSAGE, data=b"\x03")]
    ).encode()
    assert eio.decode_payload(reference) == ['42["b"]', b"\x03"]


@pytest.mark.parametrize("body", ["", "\x1e", "42\x1e", "\x1e42", "b!!notbase64", "bAAA"])
def test_bad_payloads_raise_decode_error(body):
    with pytest.raises(DecodeError):
        eio.decode_payload(body)


def test_error_bodies_are_engineio_json():
    assert json.loads(eio.error_body(eio.TRANSPORT_UNKNOWN)) == {
        "code": 0,
        "message": "Transport unknown",
    }
    assert json.loads(eio.error_body(eio.SESSION_ID_UNKNOWN, "gone")) == {
        "code": 1,
        "message": "Session ID unknown: gone",
    }
    codes = (
        eio.TRANSPORT_UNKNOWN,
        eio.SESSION_ID_UNKNOWN,
        eio.BAD_HANDSHAKE_METHOD,
        eio.BAD_REQUEST,
        eio.FORBIDDEN,
        eio.UNSUPPORTED_PROTOCOL_VERSION,
    )
    assert codes == (0, 1, 2, 3, 4, 5)

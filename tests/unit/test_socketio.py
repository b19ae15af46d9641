"""Unit tests for realtime.protocol.socketio (Socket.IO v5 packet codec)."""

import contextlib
import json

import pytest
from socketio import packet as ref  # python-socketio's own codec, used as the reference

from realtime.protocol import engineio as eio
from realtime.protocol import socketio as sio
from realtime.protocol.errors import DecodeError
from realtime.protocol.socketio import Packet

try:
    from hypothesis import assume, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev-only dependency
    given = None


def test_constants():
    assert (sio.CONNECT, sio.DISCONNECT, sio.EVENT, sio.ACK) == (0, 1, 2, 3)
    assert (sio.CONNECT_ERROR, sio.BINARY_EVENT, sio.BINARY_ACK) == (4, 5, 6)


# --------------------------------------------------------------------------- decode


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Packet(sio.CONNECT)),
        ('0{"token":"abc"}', Packet(sio.CONNECT, data={"token": "abc"})),
        ('0/admin,{"token":"x"}', Packet(sio.CONNECT, "/admin", {"token": "x"})),
        ("0/admin", Packet(sio.CONNECT, "/admin")),
        ("0/admin,", Packet(sio.CONNECT, "/admin")),
        ("0/,{}", Packet(sio.CONNECT, "/", {})),
        ("1", Packet(sio.DISCONNECT)),
        ("1/chat,", Packet(sio.DISCONNECT, "/chat")),
        ('2["typing",{"a":1}]', Packet(sio.EVENT, data=["typing", {"a": 1}])),
        ('217["x",1]', Packet(sio.EVENT, data=["x", 1], id=17)),
        ('20["x"]', Packet(sio.EVENT, data=["x"], id=0)),
        ('2/chat,5["m","héllo 😀"]', Packet(sio.EVENT, "/chat", ["m", "héllo 😀"], 5)),
        ('2["m","\\u00e9\\ud83d\\ude00"]', Packet(sio.EVENT, data=["m", "é😀"])),
        ('2["x","[[[[{{{{\\"]]]"]', Packet(sio.EVENT, data=["x", '[[[[{{{{"]]]'])),
        ("317[{}]", Packet(sio.ACK, data=[{}], id=17)),
        ("31[]", Packet(sio.ACK, data=[], id=1)),
        ("3/chat,9999999999[null]", Packet(sio.ACK, "/chat", [None], 9999999999)),
        ('4{"message":"no"}', Packet(sio.CONNECT_ERROR, data={"message": "no"})),
        ('4"bad"', Packet(sio.CONNECT_ERROR, data="bad")),
        ('50-["x"]', Packet(sio.BINARY_EVENT, data=["x"])),
        (
            '51-["ydoc:document:update",{"update":{"_placeholder":true,"num":0}}]',
            Packet(
                sio.BINARY_EVENT,
                data=["ydoc:document:update", {"update": {"_placeholder": True, "num": 0}}],
                attachments=1,
            ),
        ),
        (
            '62-/chat,4[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]',
            Packet(
                sio.BINARY_ACK,
                "/chat",
                [{"_placeholder": True, "num": 1}, {"_placeholder": True, "num": 0}],
                4,
                2,
            ),
        ),
    ],
)
def test_decode(text, expected):
    assert sio.decode(text) == expected


def test_decode_after_engineio_prefix():
    ptype, rest = eio.decode_text(
        '451-["ydoc:document:update",{"update":{"_placeholder":true,"num":0}}]'
    )
    assert ptype == eio.MESSAGE
    packet = sio.decode(rest)
    assert (packet.type, packet.attachments) == (sio.BINARY_EVENT, 1)
    full = sio.reconstruct(packet, [b"\x00\x01\x02"])
    assert full == Packet(sio.EVENT, data=["ydoc:document:update", {"update": b"\x00\x01\x02"}])


def test_ack_id_ten_digits_is_the_limit():
    assert sio.decode('29999999999["x"]').id == 9999999999
    with pytest.raises(DecodeError):
        sio.decode('211111111111["x"]')


def test_depth_limit_is_exact():
    assert sio.MAX_DEPTH == 72
    ok = '2["x",' + "[" * 71 + "]" * 71 + "]"  # 72 levels including the event array
    assert sio.decode(ok).data[0] == "x"
    with pytest.raises(DecodeError):
        sio.decode('2["x",' + "[" * 72 + "]" * 72 + "]")
    with pytest.raises(DecodeError):
        sio.decode('2["x",' + '{"a":' * 72 + "1" + "}" * 72 + "]")
    alternating = '2["x",' + '[{"a":' * 36 + "1" + "}]" * 36 + "]"  # 73 levels
    with pytest.raises(DecodeError):
        sio.decode(alternating)


def test_depth_check_ignores_brackets_inside_strings():
    text = '2["x","' + "[" * 100 + '\\"' + "{" * 100 + '\\\\"]'
    assert sio.decode(text).data == ["x", "[" * 100 + '"' + "{" * 100 + "\\"]


def test_depth_check_handles_every_json_token():
    item = {"t": True, "f": False, "n": None, "e": -1e300, "E": 1e-300, "s": "é\n[", "l": [0]}
    data = ["x", [item] * 40]
    text = "2" + json.dumps(data, indent="\t", ensure_ascii=False).replace("\t", " \t\r\n")
    text = text.replace("1e-300", "1E-300")
    assert "-1e+300" in text and "1E-300" in text
    assert sio.decode(text).data == data


def test_many_flat_brackets_are_fine():
    data = ["x", [{"i": i, "v": [i]} for i in range(500)]]
    assert sio.decode("2" + json.dumps(data)).data == data


MALFORMED = [
    "",
    "9",
    "7",
    "x",
    " 2[]",
    '\u0662["x"]',  # ARABIC-INDIC DIGIT TWO is not a packet type
    "2[",
    '2{"a":1}',
    "2[1]",
    "2[]",
    "2",
    '2"x"',
    "2null",
    '2["x"]trailing',
    '2["x",NaN]',
    '2["x",Infinity]',
    '2["x",-Infinity]',
    '2["x",1e999]',  # overflows to inf: no more JSON than Infinity is
    '2["x",-1e999]',
    '2["x",' + "1" * 5000 + "]",  # int too large for int()
    '2["x","\\ud800"]',  # lone surrogate escape
    '2["x","\\udc00 tail"]',
    "2[\"x\",'a']",
    '2["x"',
    "2/chat",
    "2" + "1" * 30 + '["x"]',  # 30-digit ack id
    '2\u0661\u0667["x"]',  # ARABIC-INDIC digits are not an ack id
    "2" + "[" * 100000,
    "2" + "[" * 100000 + "]" * 100000,
    '2["x",' + "{" * 50000,
    '2["x",' + '{"a":' * 100000 + "1" + "}" * 100000 + "]",
    "3[]",  # ack without id
    "31{}",  # ack data not a list
    '31"x"',
    "31",
    "0[]",  # connect data must be a dict
    '0"x"',
    "01{}",  # connect cannot carry an ack id
    '1{"a":1}',  # disconnect carries no data
    "11",
    "4",  # connect_error needs data
    "4[1]",
    "5",
    '5["x"]',  # binary without attachment count
    '5-["x"]',
    '5-1-["x"]',
    '5a-["x"]',
    '51["x"]',
    "51",
    '511-["x"]',  # more than max_attachments (10)
    "5" + "9" * 30 + '-["x"]',
    '5\u0661-["x"]',
    '51-{"a":1}',
    "61-[]",  # binary ack without id
]


@pytest.mark.parametrize("text", MALFORMED)
def test_decode_rejects(text):
    with pytest.raises(DecodeError):
        sio.decode(text)


@pytest.mark.parametrize(
    "text",
    [
        '2["x",1e999]',
        '2["x",-1e999]',
        '2["x",1E400]',
        '2["x",{"a":[1,2.5e+999]}]',
        '217["ydoc:document:update",{"data":{"content":{"json":{"type":"doc","n":1e999}}}}]',
        '51-["x",{"n":-1e999,"update":{"_placeholder":true,"num":0}}]',
        "3/chat,5[1e999]",
    ],
)
def test_numbers_that_overflow_to_infinity_do_not_parse(text):
    with pytest.raises(DecodeError, match="out of range"):
        sio.decode(text)


def test_finite_numbers_at_the_edges_still_parse_exactly():
    text = '2["x",[1e308,-1.7976931348623157e308,1e-999,-2.5E-3,5e-324,-0.0,12345678901234567890]]'
    numbers = [1e308, -1.7976931348623157e308, 0.0, -0.0025, 5e-324, -0.0, 12345678901234567890]
    assert sio.decode(text) == Packet(sio.EVENT, data=["x", numbers])


def test_decode_rejects_non_str():
    with pytest.raises(DecodeError):
        sio.decode(b'2["x"]')  # type: ignore[arg-type]


def test_max_attachments_parameter():
    assert sio.decode('53-["x"]', max_attachments=3).attachments == 3
    with pytest.raises(DecodeError):
        sio.decode('53-["x"]', max_attachments=2)
    with pytest.raises(DecodeError):
        sio.decode('51-["x"]', max_attachments=0)


# --------------------------------------------------------------------------- reconstruct


def test_reconstruct_nested_and_ack():
    packet = sio.decode(
        '62-/chat,7[{"a":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":0},3]'
    )
    full = sio.reconstruct(packet, [b"zero", b"one"])
    assert full == Packet(sio.ACK, "/chat", [{"a": [b"one"]}, b"zero", 3], 7, 0)
    assert packet.type == sio.BINARY_ACK  # the input packet is not modified


@pytest.mark.parametrize(
    ("text", "attachments"),
    [
        ('51-["x",{"_placeholder":true,"num":1}]', [b"a"]),  # num out of range
        ('51-["x",{"_placeholder":true,"num":-1}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":"0"}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":true}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":0.0}]', [b"a"]),
        ('51-["x",{"_placeholder":true}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":0}]', []),  # count mismatch
        ('51-["x",{"_placeholder":true,"num":0}]', [b"a", b"b"]),
        ('2["x",{"_placeholder":true,"num":0}]', []),  # not a binary packet
    ],
)
def test_reconstruct_rejects(text, attachments):
    with pytest.raises(DecodeError):
        sio.reconstruct(sio.decode(text), attachments)


def test_reconstruct_refuses_too_deep_data_built_by_hand():
    data: list = ["x"]
    for _ in range(2000):
        data = [data]
    with pytest.raises(DecodeError):
        sio.reconstruct(Packet(sio.BINARY_EVENT, data=["x", data]), [])


def test_placeholder_lookalikes_are_left_alone():
    packet = sio.decode(
        '50-["x",{"_placeholder":false,"num":0},{"num":0},{"_placeholder":1,"num":0}]'
    )
    assert sio.reconstruct(packet, []).data == [
        "x",
        {"_placeholder": False, "num": 0},
        {"num": 0},
        {"_placeholder": 1, "num": 0},
    ]


# --------------------------------------------------------------------------- encode


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (sio.encode_connect({"sid": "x"}), '0{"sid":"x"}'),
        (sio.encode_connect({"sid": "x"}, namespace="/chat"), '0/chat,{"sid":"x"}'),
        (sio.encode_connect(), "0"),
        (sio.encode_connect_error("Not authorized"), '4{"message":"Not authorized"}'),
        (
            sio.encode_connect_error("Not authorized", {"code": 4001}),
            '4{"message":"Not authorized","data":{"code":4001}}',
        ),
        (sio.encode_connect_error("no", namespace="/a"), '4/a,{"message":"no"}'),
        (sio.encode_event("typing", {"a": 1}), '2["typing",{"a":1}]'),
        (sio.encode_event("x"), '2["x"]'),
        (sio.encode_event("x", 1, ack_id=17), '217["x",1]'),
        (sio.encode_event("x", 0), '2["x",0]'),
        (sio.encode_event("x", ""), '2["x",""]'),
        (sio.encode_event("x", [1, 2], namespace="/chat"), '2/chat,["x",[1,2]]'),
        (sio.encode_event("m", "héllo 😀"), '2["m","héllo 😀"]'),
        (sio.encode_event("u", {"update": [0, 1, 255]}), '2["u",{"update":[0,1,255]}]'),
        (sio.encode_ack(17, [{}]), "317[{}]"),
        (sio.encode_ack(3, [], namespace="/chat"), "3/chat,3[]"),
        (sio.encode_disconnect(), "1"),
        (sio.encode_disconnect("/chat"), "1/chat,"),
    ],
)
def test_encoders_exact(encoded, expected):
    assert encoded == expected


def test_encoders_refuse_bytes_and_nan():
    with pytest.raises(TypeError):
        sio.encode_event("x", {"update": b"\x00"})
    with pytest.raises(ValueError):
        sio.encode_event("x", float("nan"))


# --------------------------------------------------------------------------- python-socketio


REFERENCE_TABLE = [
    # (type, namespace, data, id)
    (sio.CONNECT, "/", None, None),
    (sio.CONNECT, "/", {"token": "abc"}, None),
    (sio.CONNECT, "/admin", {"token": "x"}, None),
    (sio.DISCONNECT, "/", None, None),
    (sio.DISCONNECT, "/chat", None, None),
    (sio.EVENT, "/", ["typing", {"a": 1}], None),
    (sio.EVENT, "/", ["x", 1], 17),
    (sio.EVENT, "/", ["x"], 0),
    (sio.EVENT, "/chat", ["msg", ["héllo ünïcode 😀", None, True, 1.5, -2]], 3),
    (sio.ACK, "/", [{}], 17),
    (sio.ACK, "/", [], 1),
    (sio.ACK, "/chat", [1, "a", None], 9999999999),
    (sio.CONNECT_ERROR, "/", {"message": "nope", "data": {"x": 1}}, None),
    (sio.CONNECT_ERROR, "/", "bad", None),
]


@pytest.mark.parametrize(("ptype", "nsp", "data", "pid"), REFERENCE_TABLE)
def test_decode_what_python_socketio_encodes(ptype, nsp, data, pid):
    text = ref.Packet(ptype, data=data, namespace=nsp, id=pid).encode()
    assert sio.decode(text) == Packet(ptype, nsp, data, pid)


def _ours(ptype, nsp, data, pid):
    if ptype == sio.CONNECT:
        return sio.encode_connect(data, namespace=nsp)
    if ptype == sio.DISCONNECT:
        return sio.encode_disconnect(nsp)
    if ptype == sio.ACK:
        return sio.encode_ack(pid, data, namespace=nsp)
    if ptype == sio.CONNECT_ERROR:
        return "4" + json.dumps(data)  # our encoder only builds the {"message": ...} form
    return sio.encode_event(data[0], data[1] if len(data) == 2 else None, ack_id=pid, namespace=nsp)


@pytest.mark.parametrize(("ptype", "nsp", "data", "pid"), REFERENCE_TABLE)
def test_python_socketio_decodes_what_we_encode(ptype, nsp, data, pid):
    decoded = ref.Packet(encoded_packet=_ours(ptype, nsp, data, pid))
    assert decoded.packet_type == ptype
    assert (decoded.namespace or "/") == nsp
    assert decoded.data == data
    assert decoded.id == pid


def test_connect_error_matches_python_socketio_shape():
    text = sio.encode_connect_error("Not authorized", {"code": 4001})
    decoded = ref.Packet(encoded_packet=text)
    assert decoded.packet_type == ref.CONNECT_ERROR
    assert decoded.data == {"message": "Not authorized", "data": {"code": 4001}}


def test_binary_event_from_python_socketio():
    payload = ["ydoc:document:update", {"update": b"\x00\x01", "more": [b"\xff"]}]
    text, *attachments = ref.Packet(ref.EVENT, data=payload, namespace="/", id=4).encode()
    assert text.startswith("52-4[")
    packet = sio.decode(text)
    assert (packet.type, packet.attachments, packet.id) == (sio.BINARY_EVENT, 2, 4)
    assert sio.reconstruct(packet, attachments) == Packet(sio.EVENT, data=payload, id=4)


def test_binary_ack_from_python_socketio():
    text, *attachments = ref.Packet(ref.ACK, data=[b"ok"], namespace="/chat", id=9).encode()
    full = sio.reconstruct(sio.decode(text), attachments)
    assert full == Packet(sio.ACK, "/chat", [b"ok"], 9)


# --------------------------------------------------------------------------- fuzz

if given is not None:
    fuzz = settings(database=None, deadline=None, max_examples=300)
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=25,
    )
    namespaces = st.from_regex(r"/[a-z0-9_-]{0,10}", fullmatch=True)

    def _depth(value) -> int:
        if isinstance(value, list):
            return 1 + max((_depth(v) for v in value), default=0)
        if isinstance(value, dict):
            return 1 + max((_depth(v) for v in value.values()), default=0)
        return 0

    @fuzz
    @given(st.text())
    def test_fuzz_decode_text_only_raises_decode_error(text):
        with contextlib.suppress(DecodeError):
            sio.decode(text)

    @fuzz
    @given(
        st.text(alphabet='0123456789-/,[]{}":_ \\aeuntrlsfx', max_size=80),
        st.lists(st.binary(max_size=3), max_size=3),
    )
    def test_fuzz_structured_decode_and_reconstruct(text, attachments):
        try:
            packet = sio.decode(text)
            if packet.type in (sio.BINARY_EVENT, sio.BINARY_ACK):
                sio.reconstruct(packet, attachments)
        except DecodeError:
            pass

    @fuzz
    @given(
        st.text(),
        json_values,
        st.none() | st.integers(0, 9999999999),
        namespaces,
    )
    def test_fuzz_event_roundtrip(event, data, ack_id, namespace):
        assume(_depth(data) <= sio.MAX_DEPTH - 1)
        text = sio.encode_event(event, data, ack_id=ack_id, namespace=namespace)
        expected = [event] if data is None else [event, data]
        assert sio.decode(text) == Packet(sio.EVENT, namespace, expected, ack_id)
        theirs = ref.Packet(encoded_packet=text)
        assert (theirs.data, theirs.id, theirs.namespace or "/") == (expected, ack_id, namespace)


def test_raw_json_is_embedded_as_it_is_in_events_and_acks():
    """A document's state is encoded once and sent as the event and the ack."""
    raw = sio.RawJSON('{"state":[1,2,3]}')
    assert (
        sio.encode_event("ydoc:document:state", raw) == '2["ydoc:document:state",{"state":[1,2,3]}]'
    )
    assert sio.encode_ack(7, [raw]) == '37[{"state":[1,2,3]}]'
    assert sio.decode(sio.encode_event("x", raw)).data == ["x", {"state": [1, 2, 3]}]
    assert sio.encode_event('a"b', raw) == '2["a\\"b",{"state":[1,2,3]}]'


def test_an_offset_is_appended_as_the_last_argument_of_an_event():
    """Connection state recovery: the offset is the event's last argument, on the exact wire."""
    assert sio.add_offset('42["x",{"a":1}]', "17-3") == '42["x",{"a":1},"17-3"]'
    assert sio.add_offset('2["x"]', "0-1") == '2["x","0-1"]'
    framed = sio.add_offset("4" + sio.encode_event("note-events", {"id": "n"}), "5-1")
    assert sio.decode(framed[1:]).data == ["note-events", {"id": "n"}, "5-1"]
    with pytest.raises(ValueError):
        sio.add_offset('0{"sid":"x"}', "5-1")


def test_the_trailing_offset_is_read_back_and_nothing_else_is():
    assert sio.trailing_offset('42["x",{"a":1},"17-3"]') == "17-3"
    assert sio.trailing_offset('42["x",{"a":1}]') is None
    assert sio.trailing_offset('42["x",{"a":"17-3"}]') is None
    assert sio.trailing_offset('42["x","17-3x"]') is None

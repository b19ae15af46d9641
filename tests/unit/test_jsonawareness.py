"""realtime.protocol.jsonawareness (Open WebUI's JSON awareness form), exact bytes."""

from __future__ import annotations

import json

import pytest

from realtime.protocol import jsonawareness as ja
from realtime.protocol.errors import DecodeError

#: What Open WebUI's SimpleAwareness emits: JSON.stringify({[doc.clientID]: localState}).
OPEN_WEBUI = (
    b'{"2816190446":{"user":{"name":"Ann","color":"#FF6B6B","id":"sid1"},'
    b'"cursor":{"anchor":{"type":{"client":1,"clock":0},"tname":null,"item":null,"assoc":0},'
    b'"head":{"type":{"client":1,"clock":0},"tname":null,"item":null,"assoc":0}}}}'
)


def test_is_json_form_looks_at_the_first_byte():
    assert ja.is_json_form(OPEN_WEBUI)
    assert ja.is_json_form(b"{}")
    assert not ja.is_json_form(b"\x01\x05\x01\x04null")  # a y-protocols update
    assert not ja.is_json_form(b"")
    assert not ja.is_json_form(b' {"1":{}}')


def test_decode_open_webui_payload():
    [(client_id, state)] = ja.decode(OPEN_WEBUI)
    assert client_id == 2816190446
    assert state == OPEN_WEBUI[len(b'{"2816190446":') : -1].decode()  # compact, unchanged
    assert json.loads(state)["user"]["name"] == "Ann"


def test_decode_compacts_and_keeps_key_order_and_nulls():
    data = '{"7": {"a": [1, 2], "n": "é"}, "0": null, "9007199254740992": {}}'.encode()
    assert ja.decode(data) == [(7, '{"a":[1,2],"n":"é"}'), (0, "null"), (2**53, "{}")]
    assert ja.decode(b"{}") == []


@pytest.mark.parametrize(
    "data",
    [
        b"\xff{",  # not UTF-8
        b'{"1":{}',  # not JSON
        b"[1]",  # not an object
        b'{"1":NaN}',
        b'{"1":"\\u0000"}',
        b'{"1":' + b"[" * 65 + b"]" * 65 + b"}",  # nested too deep
        b'{"x":{}}',
        b'{"-1":{}}',
        b'{"01":{}}',
        b'{"1.0":{}}',
        b'{" 1":{}}',
        b'{"9007199254740993":{}}',  # over 2**53
        b'{"99999999999999999999":{}}',
    ],
)
def test_decode_refuses_with_decode_error_only(data):
    with pytest.raises(DecodeError):
        ja.decode(data)


def test_encode_exact():
    assert ja.encode([]) == b"{}"
    assert ja.encode([(7, '{"user":{"name":"A"}}')]) == b'{"7":{"user":{"name":"A"}}}'
    # a removed client becomes an empty state: Open WebUI cannot remove one, and
    # y-prosemirror throws on a null state
    assert ja.encode([(7, "null"), (8, " null\n"), (9, "{}")]) == b'{"7":{},"8":{},"9":{}}'
    assert ja.encode([(1, '"é"')]) == '{"1":"é"}'.encode()


def test_round_trip():
    assert ja.decode(ja.encode(ja.decode(OPEN_WEBUI))) == ja.decode(OPEN_WEBUI)

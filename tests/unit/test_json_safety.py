"""lib/json_safety.py: only JSON a database can store is accepted."""

from __future__ import annotations

import json

import pytest

from lib.json_safety import MAX_DEPTH, UnsafeJSON, check_storable, loads


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, -3e10, true, null, "x"]}', '"\\u00e9\\ud83d\\ude00"', "0", "1e308", "[]"],
)
def test_storable_json_parses_as_json_does(text):
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        '{"a": Infinity}',
        "[-Infinity]",
        '{"a": 1e999}',
        "-1e999",
        '"a\\u0000b"',
        '{"a\\u0000": 1}',
        '{"a": {"b": ["\\u0000"]}}',
    ],
)
def test_unstorable_json_raises_unsafe_json(text):
    with pytest.raises(UnsafeJSON):
        loads(text)


def test_any_depth_is_refused_as_unsafe_json_never_recursion_error():
    with pytest.raises(UnsafeJSON):
        loads(nested(100_000))
    with pytest.raises(UnsafeJSON):
        loads('{"a":' * 100_000 + "1" + "}" * 100_000)


def test_depth_limit_is_exact():
    assert loads(nested(MAX_DEPTH)) is not None
    with pytest.raises(UnsafeJSON, match="deeper"):
        loads(nested(MAX_DEPTH + 1))
    assert loads(nested(3), max_depth=3) is not None
    with pytest.raises(UnsafeJSON):
        loads(nested(4), max_depth=3)


def test_invalid_json_is_a_value_error():
    with pytest.raises(ValueError):
        loads("{")
    with pytest.raises(ValueError):
        loads("")


def test_check_storable_on_built_values():
    check_storable({"a": [1, 2.0, "x", None, True]})
    for bad in (float("nan"), float("inf"), {"k": "\x00"}, {"\x00": 1}, {1: "a"}, {1, 2}, b"x"):
        with pytest.raises(UnsafeJSON):
            check_storable(bad)
    deep: list = []
    for _ in range(100_000):  # built, not parsed: checked without recursing
        deep = [deep]
    with pytest.raises(UnsafeJSON):
        check_storable(deep)


# --- lone surrogates (PostgreSQL's jsonb refuses them; UTF-8 cannot encode them) --------------


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', '"a\\udfffb"', '{"\\ud83d": 1}', '["ok", {"k": "\\ude00 tail"}]'],
)
def test_lone_surrogates_are_unsafe_json(text):
    with pytest.raises(UnsafeJSON, match="surrogate"):
        loads(text)


def test_surrogate_pairs_and_other_non_ascii_text_are_storable():
    assert loads('"\\ud83d\\ude00 \\u00e9 \\u4e2d"') == "😀 é 中"
    check_storable({"é": ["中", "😀"]})


def test_check_storable_refuses_built_lone_surrogates_in_values_and_keys():
    for bad in ("a\ud800", ["x", "\udc00"], {"k\udbff": 1}, {"a": {"b": "é\ud800"}}):
        with pytest.raises(UnsafeJSON, match="surrogate"):
            check_storable(bad)

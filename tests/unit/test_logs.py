"""``config.logs``: what a log line may carry — a request id only when it is a short safe
token, and never a credential (``redact``). The live test (tests/live/test_logs_live.py) runs
them in a real daphne."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from config import logs


@pytest.mark.parametrize("header", ["abc", "req-42.a_b", "A" * 64])
def test_a_safe_request_id_is_kept(header):
    assert logs.accepted_request_id(header) == header


@pytest.mark.parametrize("header", [None, "", "a b", "a\nb", "x" * 65, "é", "<script>"])
def test_any_other_request_id_is_replaced(header):
    made = logs.accepted_request_id(header)
    assert made != header and logs.SAFE_REQUEST_ID.fullmatch(made)


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"GET /ws/socket.io/?EIO=4&token={JWT}&transport=polling", "EIO=4&token=[redacted]&"),
        ("GET /ws/yjs/note:1?ticket=AbC-123_x HTTP/1.1", "?ticket=[redacted] "),
        (f"Authorization: Bearer {JWT}", "Bearer [redacted]"),
        ("POST /api/server/?api_key=k3y&x=1", "api_key=[redacted]&x=1"),
        (f"GET /api/server/?q=chorus_0123abcd_{'k3y' * 10}", "?q=[redacted]"),
    ],
)
def test_credentials_are_redacted(text, kept):
    redacted = logs.redact(text)
    assert kept in redacted
    assert JWT not in redacted and "AbC-123_x" not in redacted and "k3y" not in redacted


def test_a_json_line_carries_the_context_ids_and_no_credential():
    record = logging.LogRecord("chorus.x", logging.INFO, __file__, 1, "got %s", (JWT,), None)
    formatter = logs.json_formatter()
    token_r, token_s = logs.request_id.set("r1"), logs.socket_id.set("s1")
    try:
        assert logs.ContextFilter().filter(record) and logs.RedactFilter().filter(record)
    finally:
        logs.request_id.reset(token_r)
        logs.socket_id.reset(token_s)
    line = json.loads(formatter.format(record))
    assert line["message"] == "got [redacted]"
    assert (line["level"], line["logger"], line["request_id"], line["socket_id"]) == (
        "INFO",
        "chorus.x",
        "r1",
        "s1",
    )
    assert line["timestamp"].endswith("+00:00")


def test_a_traceback_is_redacted_too():
    try:
        raise ValueError(f"cannot use {JWT}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert logs.RedactFilter().filter(record)
    for formatter in (logs.json_formatter(), logging.Formatter()):
        text = formatter.format(record)
        assert "cannot use [redacted]" in text and JWT not in text, text


def test_extra_fields_of_a_json_line_are_redacted_and_it_stays_json():
    class Request:  # as Django's request in django.request's extra: its text is its URL
        def __str__(self) -> str:
            return f"<ASGIRequest: GET '/api/x/?token={JWT}&a=1'>"

    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Bad", (), None)
    record.request = Request()
    line = json.loads(logs.json_formatter().format(record))
    assert line["request"] == "<ASGIRequest: GET '/api/x/?token=[redacted]&a=1'>"

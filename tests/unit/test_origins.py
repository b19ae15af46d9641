"""realtime/origins.py: origins compared by scheme, host and port."""

from __future__ import annotations

import pytest

from realtime.origins import (
    Origin,
    normalised_origins,
    origin_allowed,
    parse_authority,
    parse_origin,
)

ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", ".example.com"]


def allowed(origin: str, host: str | None, scheme: str = "http", cors: tuple = ()) -> bool:
    return origin_allowed(
        origin, host=host, scheme=scheme, allowed_hosts=ALLOWED_HOSTS, cors_allowed_origins=cors
    )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("http://127.0.0.1:8000", Origin("http", "127.0.0.1", 8000)),
        ("HTTP://LocalHost", Origin("http", "localhost", 80)),
        ("http://localhost:80", Origin("http", "localhost", 80)),
        ("https://app.example.com:443", Origin("https", "app.example.com", 443)),
        ("http://[::1]:8080", Origin("http", "[::1]", 8080)),
        ("http://[0:0::1]", Origin("http", "[::1]", 80)),
        ("app://x", Origin("app", "x", None)),
    ],
)
def test_parse_origin_normalises(text, parsed):
    assert parse_origin(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "",
        "127.0.0.1:8000",
        "http://",
        "http://evil.com@127.0.0.1",
        "http://127.0.0.1:8000/",
        "http://127.0.0.1/path",
        "http://127.0.0.1?q",
        "http://127.0.0.1#f",
        "http://127.0.0.1:",
        "http://127.0.0.1:65536",
        "http://::1",
        "http://[::1",
        "http://[zz::1]",
        "http://a b",
        "http://a\\b",
    ],
)
def test_parse_origin_refuses_anything_but_scheme_host_port(text):
    assert parse_origin(text) is None


def test_str_omits_the_default_port():
    assert str(Origin("https", "a.example.com", 443)) == "https://a.example.com"
    assert str(Origin("http", "[::1]", 8080)) == "http://[::1]:8080"


def test_parse_authority():
    assert parse_authority("127.0.0.1:8000", 80) == ("127.0.0.1", 8000)
    assert parse_authority("Example.COM", 443) == ("example.com", 443)
    assert parse_authority("[::1]", 80) == ("[::1]", 80)
    assert parse_authority("a:b", 80) is None


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "accepted"),
    [
        # the request's own origin
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "http", True),
        ("http://localhost:8000", "localhost:8000", "http", True),
        ("http://localhost", "localhost:80", "http", True),
        ("http://localhost:80", "localhost", "http", True),
        ("https://app.example.com", "app.example.com", "https", True),
        ("https://app.example.com", "app.example.com:443", "https", True),
        ("http://[::1]:8080", "[::1]:8080", "http", True),
        ("http://[::1]:8080", "[0::1]:8080", "http", True),
        # another port, scheme or host of the same machine
        ("http://localhost:9999", "127.0.0.1:8000", "http", False),
        ("http://localhost:9999", "localhost:8000", "http", False),
        ("https://127.0.0.1", "127.0.0.1:8000", "http", False),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "http", False),
        ("http://app.example.com", "app.example.com", "https", False),
        ("http://evil.com@127.0.0.1:8000", "127.0.0.1:8000", "http", False),
        ("http://127.0.0.1:8000/x", "127.0.0.1:8000", "http", False),
        # the Host itself must be allowed, and present
        ("http://evil.example:8000", "evil.example:8000", "http", False),
        ("http://127.0.0.1:8000", None, "http", False),
        ("null", "127.0.0.1:8000", "http", False),
    ],
)
def test_own_origin(origin, host, scheme, accepted):
    assert allowed(origin, host, scheme) is accepted


def test_cors_entries_are_normalised_and_matched_exactly():
    cors = ("https://App.Example.org:443", "http://localhost:5173", "not an origin", "http://x/")
    assert allowed("https://app.example.org", None, cors=cors)
    assert allowed("http://localhost:5173", "127.0.0.1:8000", cors=cors)
    assert not allowed("http://localhost:5174", "127.0.0.1:8000", cors=cors)
    assert not allowed("http://app.example.org", None, cors=cors)
    assert not allowed("http://x", None, cors=cors)  # a malformed entry matches nothing


def test_settings_store_cors_entries_as_a_browser_sends_its_origin():
    """config/settings.py stores CORS_ALLOWED_ORIGINS so; django-cors-headers (REST) compares
    the ``Origin`` header's text with them, so both checks agree on every entry."""
    entries = [
        "HTTPS://App.Example.org:443",
        "http://localhost:5173",
        "http://[0:0::1]:80",
        "https://app.example.org",
        "not an origin",
        "http://x/",
    ]
    assert normalised_origins(entries) == [
        "https://app.example.org",
        "http://localhost:5173",
        "http://[::1]",
    ]

"""config/proxies.py: the client address and scheme, forwarded headers from trusted proxies only."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from config.proxies import (
    client_address,
    forwarded_proto,
    parse_address,
    parse_networks,
    request_client_address,
    scope_client_address,
    scope_forwarded_proto,
)

PROXIES = parse_networks(["10.0.0.0/8", "192.168.1.1", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # an untrusted peer is the client, whatever it claims
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "1.2.3.4", "203.0.113.7"),
        ("203.0.113.7", "10.0.0.1, 1.2.3.4", "203.0.113.7"),
        # a trusted peer: the first untrusted entry from the right
        ("10.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the forged left entry is never reached
        ("10.0.0.1", "6.6.6.6, 1.2.3.4, 192.168.1.1, 10.9.9.9", "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4,10.0.0.2", "1.2.3.4"),
        # a trusted peer without the header is the client
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "", "10.0.0.1"),
        # every hop trusted: the leftmost
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
        # a malformed entry stops the walk at the last good hop
        ("10.0.0.1", "1.2.3.4, garbage", "10.0.0.1"),
        ("10.0.0.1", "1.2.3.4, garbage, 10.0.0.2", "10.0.0.2"),
        ("10.0.0.1", "1.2.3.4, , 10.0.0.2", "10.0.0.2"),
        ("10.0.0.1", "unknown", "10.0.0.1"),
        # ports and brackets, IPv6, IPv4-mapped peers
        ("10.0.0.1", "1.2.3.4:5678", "1.2.3.4"),
        ("10.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.1", "2001:db8::1", "2001:db8::1"),
        ("fd00::5", "2001:db8::1", "2001:db8::1"),
        ("::ffff:10.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("::ffff:203.0.113.7", "1.2.3.4", "203.0.113.7"),
        # not an IP peer (a Unix socket): returned as it is, the header ignored
        ("", "1.2.3.4", ""),
        (None, "1.2.3.4", ""),
    ],
)
def test_client_address(peer, forwarded_for, client):
    assert client_address(peer, forwarded_for, PROXIES) == client


def test_nothing_trusted_means_the_peer_always():
    assert client_address("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"


@pytest.mark.parametrize(
    ("peer", "header", "proto"),
    [
        ("10.0.0.1", "https", "https"),
        ("10.0.0.1", "HTTP", "http"),
        ("10.0.0.1", "wss", "https"),
        ("10.0.0.1", "http, https", "https"),  # the value the nearest proxy set
        ("10.0.0.1", "gopher", None),
        ("10.0.0.1", None, None),
        ("203.0.113.7", "https", None),  # not from a trusted proxy
    ],
)
def test_forwarded_proto(peer, header, proto):
    assert forwarded_proto(peer, header, PROXIES) == proto


@pytest.mark.parametrize("text", ["1.2.3.4.5", "[::1", "[::1]x", "1.2.3.4:x", "host", "", None])
def test_parse_address_refuses_malformed(text):
    assert parse_address(text) is None


def test_parse_networks_accepts_addresses_networks_and_parsed_networks():
    networks = parse_networks(["10.0.0.1", " 10.1.0.0/16 ", "::1", "10.2.0.1/16"])
    assert [str(n) for n in networks] == ["10.0.0.1/32", "10.1.0.0/16", "::1/128", "10.2.0.0/16"]
    assert parse_networks(networks) == networks


def test_parse_networks_names_a_bad_entry():
    with pytest.raises(ImproperlyConfigured, match="nginx"):
        parse_networks(["10.0.0.1", "nginx"])


def test_request_and_scope_read_their_headers_with_the_setting(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert request_client_address(request) == "1.2.3.4"
    scope = {
        "client": ["127.0.0.1", 5000],
        "headers": [
            (b"x-forwarded-for", b"6.6.6.6"),
            (b"x-forwarded-for", b"1.2.3.4"),  # a second header line counts as a later entry
            (b"x-forwarded-proto", b"https"),
        ],
    }
    assert scope_client_address(scope) == "1.2.3.4"
    assert scope_forwarded_proto(scope) == "https"
    settings.TRUSTED_PROXIES = []
    assert request_client_address(request) == "127.0.0.1"
    assert scope_client_address(scope) == "127.0.0.1"
    assert scope_forwarded_proto(scope) is None
    assert scope_client_address({"client": None, "headers": []}) == ""

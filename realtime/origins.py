"""Which browser ``Origin`` may open a WebSocket: compared by scheme, host and port. Pure.

An origin is accepted only in its serialised form ``scheme://host[:port]`` — no userinfo, path,
query or fragment; the host a DNS name or IPv4 address, or an IPv6 address in brackets. Scheme
and host are compared lower-case, IPv6 addresses in their compressed form, and a default port
(80 for http/ws, 443 for https/wss) is the same as none. ``origin_allowed`` accepts an origin
that is

- an entry of ``CORS_ALLOWED_ORIGINS`` (entries normalised the same way; a malformed entry
  matches nothing), or
- the request's own origin: its host and port equal the request's ``Host`` header, that host
  validates against ``ALLOWED_HOSTS`` (Django's ``validate_host``), and its scheme is the one
  the browser used to reach us (``http`` for a plain connection, ``https`` for TLS).

Everything else is refused, including ``null`` and anything that does not parse. Written here
because it is Chorus's own rule; Django's helpers do the ``ALLOWED_HOSTS`` matching.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import NamedTuple

from django.http.request import validate_host

#: Default ports by scheme; an explicit default port is normalised away.
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ORIGIN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<authority>[^/?#@\\]*)", re.IGNORECASE)
_AUTHORITY = re.compile(
    r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?", re.IGNORECASE
)


class Origin(NamedTuple):
    """A normalised origin; ``port`` is None only for a scheme without a default port."""

    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        if self.port is None or self.port == DEFAULT_PORTS.get(self.scheme):
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_authority(text: str, default_port: int | None) -> tuple[str, int | None] | None:
    """``host[:port]`` (a ``Host`` header, an origin's authority) as (host, port): the host
    lower-case, IPv6 compressed in brackets; ``default_port`` when none is given. None if
    malformed (a port over 65535, an empty port, an invalid IPv6 address, other characters)."""
    match = _AUTHORITY.fullmatch(text)
    if match is None:
        return None
    if match["ipv6"] is not None:
        try:
            host = f"[{ipaddress.IPv6Address(match['ipv6']).compressed}]"
        except ValueError:
            return None
    else:
        host = match["name"].lower()
    if match["port"] is None:
        return host, default_port
    port = int(match["port"])
    return (host, port) if port <= 65535 else None


def parse_origin(text: str) -> Origin | None:
    """``text`` as an ``Origin``, or None unless it is exactly ``scheme://host[:port]``."""
    match = _ORIGIN.fullmatch(text.strip())
    if match is None:
        return None
    scheme = match["scheme"].lower()
    authority = parse_authority(match["authority"], DEFAULT_PORTS.get(scheme))
    if authority is None:
        return None
    return Origin(scheme, *authority)


def normalised_origins(entries: Iterable[str]) -> list[str]:
    """``entries`` in the serialised form a browser sends as ``Origin`` (lower-case, no default
    port, IPv6 compressed), in order, duplicates and malformed entries (which match nothing)
    left out. The settings store ``CORS_ALLOWED_ORIGINS`` so, for the REST CORS check
    (django-cors-headers compares the header's text) to agree with this module."""
    kept: dict[str, None] = {}
    for entry in entries:
        origin = parse_origin(entry)
        if origin is not None:
            kept[str(origin)] = None
    return list(kept)


@functools.cache
def _normalised(entries: tuple[str, ...]) -> frozenset[Origin]:
    return frozenset(origin for entry in entries if (origin := parse_origin(entry)) is not None)


def origin_allowed(
    origin: str,
    *,
    host: str | None,
    scheme: str,
    allowed_hosts: Iterable[str],
    cors_allowed_origins: Iterable[str],
) -> bool:
    """Whether a browser may open a WebSocket from ``origin`` (see module doc). ``host``: the
    request's ``Host`` header (None if absent); ``scheme``: ``"http"`` or ``"https"``, how the
    browser reached this server (after a trusted proxy's ``X-Forwarded-Proto``)."""
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    if parsed in _normalised(tuple(cors_allowed_origins)):
        return True
    if parsed.scheme != scheme or host is None:
        return False
    own = parse_authority(host.strip(), DEFAULT_PORTS.get(scheme))
    return own == (parsed.host, parsed.port) and validate_host(parsed.host, list(allowed_hosts))

"""The client's address and scheme, believing forwarded headers from trusted proxies only.

``TRUSTED_PROXIES`` (IPs or CIDRs, default none) names the reverse proxies in front of Chorus.
The contract of ``client_address``: when the socket peer is not a trusted proxy, the peer *is*
the client and ``X-Forwarded-For`` is ignored (a client can write any header it likes). When
it is, ``X-Forwarded-For`` is walked from the right — each proxy appends the address it
received the request from — skipping trusted addresses; the first untrusted one is the client.
A malformed entry stops the walk and the last good hop (a trusted proxy) is the answer, so a
forged or broken header can never name an arbitrary address. ``forwarded_proto`` believes
``X-Forwarded-Proto`` on the same condition (the value the nearest proxy set).

Hand-written on purpose: django-ipware / python-ipware believe the header by default (whoever
the peer is) and recognise proxies by string prefix; here the socket peer is checked first and
networks are compared as addresses (stdlib ``ipaddress``). Pure functions take the peer and the
header values; ``request_client_address`` / ``scope_client_address`` (and ``scope_forwarded_proto``)
read them from a Django request or an ASGI scope with ``settings.TRUSTED_PROXIES``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: X-Forwarded-Proto values believed from a trusted proxy, by the HTTP scheme they mean.
_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


@functools.cache
def _parse_networks(entries: tuple[str | Network, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        if isinstance(entry, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(entry)
            continue
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def parse_networks(entries: Iterable[str | Network]) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES`` entries (``"10.0.0.1"``, ``"10.0.0.0/8"``, ``"::1"`` or networks)
    as networks; ``ImproperlyConfigured`` naming the first entry that is neither."""
    return _parse_networks(tuple(entries))


def parse_address(text: str | None) -> Address | None:
    """An IP address from a peer or an ``X-Forwarded-For`` entry (``1.2.3.4``, ``::1``,
    ``[::1]``, ``1.2.3.4:5678``, ``[::1]:5678``); IPv4-mapped IPv6 as IPv4; None if malformed."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    elif text.count(":") == 1:  # IPv4 with a port
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address | None, trusted: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Iterable[Network]) -> str:
    """The client's address (see module doc): ``peer`` unless it is a trusted proxy, else the
    first untrusted ``X-Forwarded-For`` entry from the right (``forwarded_for``: the header's
    comma-separated value, several headers joined by commas). An unparseable peer (a Unix
    socket) is returned as it is (``""`` for None)."""
    trusted = tuple(trusted)
    current = parse_address(peer)
    if current is None:
        return peer or ""
    if forwarded_for and _trusted(current, trusted):
        for entry in reversed(forwarded_for.split(",")):
            hop = parse_address(entry)
            if hop is None:
                break  # malformed: the last good hop (a trusted proxy) stands
            current = hop
            if not _trusted(current, trusted):
                break
    return str(current)


def forwarded_proto(
    peer: str | None, forwarded_proto_header: str | None, trusted: Iterable[Network]
) -> str | None:
    """``"http"`` or ``"https"`` from ``X-Forwarded-Proto`` if ``peer`` is a trusted proxy and
    the header's last value (set by that proxy) is http, https, ws or wss; else None."""
    if not forwarded_proto_header or not _trusted(parse_address(peer), tuple(trusted)):
        return None
    return _PROTOS.get(forwarded_proto_header.rsplit(",", 1)[-1].strip().lower())


# --- Django requests and ASGI scopes ---------------------------------------------------------


def _settings_trusted() -> tuple[Network, ...]:
    from django.conf import settings

    return parse_networks(getattr(settings, "TRUSTED_PROXIES", ()))


def request_client_address(request: Any) -> str:
    """``client_address`` of a Django ``HttpRequest`` (``REMOTE_ADDR`` and
    ``HTTP_X_FORWARDED_FOR``) with ``settings.TRUSTED_PROXIES``."""
    meta = request.META
    return client_address(
        meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), _settings_trusted()
    )


def _scope_peer(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _scope_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name]
    return ",".join(values) if values else None


def scope_client_address(scope: Mapping[str, Any]) -> str:
    """``client_address`` of an ASGI scope (``scope["client"][0]`` and the ``x-forwarded-for``
    headers) with ``settings.TRUSTED_PROXIES``. Without trusted proxies (the default) the peer
    as the server gives it, unparsed: every socket connect asks."""
    trusted = _settings_trusted()
    if not trusted:
        return _scope_peer(scope) or ""
    return client_address(_scope_peer(scope), _scope_header(scope, b"x-forwarded-for"), trusted)


def scope_forwarded_proto(scope: dict) -> str | None:
    """``forwarded_proto`` of an ASGI scope (the ``x-forwarded-proto`` header) with
    ``settings.TRUSTED_PROXIES``: ``"http"`` / ``"https"``, or None when not believed."""
    return forwarded_proto(
        _scope_peer(scope), _scope_header(scope, b"x-forwarded-proto"), _settings_trusted()
    )

"""CORS for the REST API against a real daphne (django-cors-headers; docs/protocol.md §11).

The origins of ``CORS_ALLOWED_ORIGINS`` — the list the WebSocket and polling check uses —
may call ``/api/`` from a browser: a preflight is answered before authentication, an answer
carries ``Access-Control-Allow-Origin`` for them only, never ``Allow-Credentials``. The
configured entry has an explicit default port and capitals: the browser's ``Origin`` has
neither, and both checks (REST, Socket.IO) still agree that it is allowed.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.live.harness import DaphneServer, access

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: As an operator might write it; a browser on that page sends ``https://app.example``.
CONFIGURED = "HTTPS://App.Example:443"
ALLOWED = "https://app.example"
REFUSED = "https://evil.example"


async def http(
    server: DaphneServer, method: str, path: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.url + path, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }


async def test_rest_cors_follows_the_websocket_list(servers, polls, alice):
    server = servers(CORS_ALLOWED_ORIGINS=CONFIGURED)

    # a preflight from an allowed origin: 200 with the CORS headers, no credential needed
    status, headers, body = await http(server, "OPTIONS", "/api/notes/", **preflight(ALLOWED))
    assert (status, body) == (200, b"")
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in headers

    # a refused origin: no Allow-Origin (the browser withholds the answer)
    status, headers, _ = await http(server, "OPTIONS", "/api/notes/", **preflight(REFUSED))
    assert "Access-Control-Allow-Origin" not in headers

    # the real request from the allowed origin carries the header; from the refused one not
    token = await access(alice)
    auth = {"Authorization": f"Bearer {token}"}
    status, headers, body = await http(server, "GET", "/api/notes/", Origin=ALLOWED, **auth)
    assert status == 200 and body == b"[]"
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]
    status, headers, _ = await http(server, "GET", "/api/notes/", Origin=REFUSED, **auth)
    assert status == 200 and "Access-Control-Allow-Origin" not in headers

    # an error answer is readable too (a page must see the 401's code)
    status, headers, body = await http(server, "GET", "/api/notes/", Origin=ALLOWED)
    assert status == 401 and b"auth_required" in body
    assert headers["Access-Control-Allow-Origin"] == ALLOWED

    # the Socket.IO endpoint agrees on the same entry (its own CORS, with credentials)
    raw = polls(server)
    status, headers, _ = await raw.request("GET", raw.url(), Origin=ALLOWED)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED
    status, _, _ = await raw.request("GET", raw.url(), Origin=REFUSED)
    assert status == 403


async def test_cors_is_only_for_the_api(servers):
    """Outside ``/api/`` (the admin) no CORS header is ever added."""
    server = servers(CORS_ALLOWED_ORIGINS=CONFIGURED)
    status, headers, _ = await http(server, "OPTIONS", "/admin/login/", **preflight(ALLOWED))
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = await http(server, "GET", "/admin/login/", Origin=ALLOWED)
    assert status == 200 and "Access-Control-Allow-Origin" not in headers

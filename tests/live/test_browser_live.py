"""The stock socket.io-client's BROWSER build in headless Chromium against a real daphne
(docs/protocol.md §2.1): socket.io-client's default options (polling, then the upgrade to
WebSocket), polling alone, and pages from other origins, where the browser itself enforces
CORS — for the socket and for the REST API (``fetch`` from tests/live/browser/fetch_page.html).

The page (tests/live/browser/stock_page.html, loading socket.io-client 4.8.1's
``dist/socket.io.min.js``) is served by Playwright's routing at ``<origin>/__page__/``: with the
daphne's own origin it is same-origin with Chorus, with another one it is cross-origin. One
browser for the module (the ``browser`` fixture), a context of its own for each page.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.live.browserproc import BROWSER_DIR, BrowserPage, stock_page_files
from tests.live.harness import (
    SOCKETIO_PATH,
    Client,
    DaphneServer,
    access,
    eventually,
    typing_event,
    typing_payload,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DEFAULT = None  # socket.io-client's default transports: polling, then the upgrade
POLLING = ("polling",)
#: Origins of pages that are not the daphne's, with no server behind them (the route answers):
#: the first in CORS_ALLOWED_ORIGINS, the second not.
ALLOWED_ORIGIN = "http://127.0.0.2:8123"
OTHER_ORIGIN = "http://127.0.0.3:8123"
#: A routed page has no address of its own, so Chromium counts it as public and asks the user
#: before it may reach a loopback server (Local Network Access: its WebSockets, and requests
#: to another origin). A page served by the daphne itself would not be asked; the test grants
#: the permission, as a user would, so that what is left to pass is CORS.
PERMISSIONS = ("local-network-access",)


@pytest.fixture
def stock_page(pages):
    """``await stock_page(origin, server, token, **options)`` -> a page from ``origin`` whose
    socket.io-client connects to ``server`` with its default options plus ``options``."""

    async def make(origin: str, server: DaphneServer, token: str, **options: Any) -> BrowserPage:
        page = await pages(f"{origin}/__page__/", stock_page_files(origin), PERMISSIONS)
        options = {"path": SOCKETIO_PATH, "auth": {"token": token}, **options}
        await page.call("start", server.url, options)
        return page

    return make


async def events_both_ways(page: BrowserPage, alice, channel, peer: Client, bob) -> None:
    """In ``channel``, the page's (alice's) typing reaches ``peer`` (bob's python-socketio
    client), and the peer's reaches the page."""
    assert await page.call("emitWithAck", "events:channel", typing_payload(channel.id, True)) == {}
    await peer.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert await peer.call("events:channel", typing_payload(channel.id, True)) == {}
    from_bob = typing_event(channel.id, bob.id)
    await eventually(
        lambda: [e for e in page.found("event", name="events:channel") if from_bob(e["args"][0])]
    )


@pytest.mark.parametrize("transports", [DEFAULT, POLLING])
async def test_browser_client_defaults_and_polling_alone(
    server, clients, stock_page, alice, bob, group_channel, transports
):
    """socket.io-client's browser build as shipped: polling, then the upgrade; or polling alone."""
    channel = await group_channel(alice, bob)
    b = await clients(server, "bob").connect(await access(bob))
    await b.join()
    options = {"transports": list(transports)} if transports else {}
    page = await stock_page(server.url, server, await access(alice), **options)
    (opened,) = await page.wait_for("open")
    assert opened["transport"] == "polling"
    await page.wait_for("connect")
    joined = await page.call("emitWithAck", "user-join", {})
    assert joined["id"] == str(alice.id)
    if transports is DEFAULT:
        await page.wait_for("upgrade", transport="websocket")
    await events_both_ways(page, alice, channel, b, bob)
    assert await page.call("transport") == ("polling" if transports else "websocket")
    assert not page.found("disconnect") and not page.found("connect_error")
    assert not page.found("pageerror")


async def test_cross_origin_page_from_an_allowed_origin_polls_with_credentials(
    servers, clients, stock_page, alice, bob, group_channel
):
    """The browser only hands the page answers with the right CORS headers — with
    ``withCredentials`` the exact origin and ``Allow-Credentials: true``: every request of the
    session got them (handshake, long-polls, POSTs)."""
    server = servers(CORS_ALLOWED_ORIGINS=ALLOWED_ORIGIN)
    channel = await group_channel(alice, bob)
    b = await clients(server, "bob").connect(await access(bob))
    await b.join()
    page = await stock_page(
        ALLOWED_ORIGIN, server, await access(alice), transports=["polling"], withCredentials=True
    )
    await page.wait_for("connect")
    assert (await page.call("emitWithAck", "user-join", {}))["id"] == str(alice.id)
    await events_both_ways(page, alice, channel, b, bob)
    assert not page.found("connect_error") and not page.found("disconnect")


async def test_page_from_an_origin_not_allowed_never_connects(servers, stock_page, alice):
    """The server refuses the handshake (403, no CORS headers) and the browser withholds the
    answer: ``connect_error`` on every attempt, never an Engine.IO open nor a connect."""
    server = servers(CORS_ALLOWED_ORIGINS=ALLOWED_ORIGIN)
    page = await stock_page(
        OTHER_ORIGIN,
        server,
        await access(alice),
        withCredentials=True,
        reconnectionDelay=50,
        reconnectionDelayMax=50,
    )
    # the marker: the third failed attempt. A page that had connected would have stopped
    # retrying, so nothing before it can be a connect.
    errors = await page.wait_for("connect_error", count=3)
    assert {(e["message"], e["description"]) for e in errors} == {("xhr poll error", 0)}
    assert not page.found("open") and not page.found("connect")


async def test_rest_from_another_origin_is_handed_to_allowed_pages_only(servers, pages, alice):
    """A real cross-origin ``fetch`` with a bearer token (so with a preflight): a page from an
    origin in ``CORS_ALLOWED_ORIGINS`` gets the answer; one from another origin does not — the
    browser withholds it (docs/protocol.md §11)."""
    server = servers(CORS_ALLOWED_ORIGINS=ALLOWED_ORIGIN)
    token = await access(alice)
    url = f"{server.url}/api/users/me/"
    answers = {}
    for origin in (ALLOWED_ORIGIN, OTHER_ORIGIN):
        files = {f"{origin}/__page__/": BROWSER_DIR / "fetch_page.html"}
        page = await pages(f"{origin}/__page__/", files, PERMISSIONS)
        answers[origin] = await page.call("getJson", url, token)
    allowed = answers[ALLOWED_ORIGIN]
    assert allowed.get("status") == 200 and allowed["body"]["id"] == str(alice.id), allowed
    assert answers[OTHER_ORIGIN] == {"blocked": "TypeError: Failed to fetch"}, answers

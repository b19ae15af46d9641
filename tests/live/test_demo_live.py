"""The demo page at ``/`` (docs/demo.md) in headless Chromium against a real daphne.

Three browser contexts log in through the page's form as the ``seed_demo`` users: alice and bob
(who may edit the note) and carol (who may only read it). Everything is done as a user does it,
with Playwright's real keyboard and mouse (``BrowserPage.act``), and read back from the page's
DOM; the server's side is read with a fresh y-websocket peer (what is stored and relayed).

The bundle is built first by the project's own step (``make demo``: ``npm ci`` + vite, a no-op
when already built). Screenshots go to ``test-artifacts/demo/`` (git-ignored).

Two tests, each a story whose steps build on the one before (so each loads its pages once):
chat, co-editing, a reader and a restart; then token renewal, logout and revocation with short
tokens. Both run in both passes (~30 s together): the second pass puts the demo on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command

from accounts.models import User
from notes.models import Note
from tests.live.browserproc import BrowserPage
from tests.live.conftest import unavailable
from tests.live.doc_peers import paragraphs
from tests.live.harness import ROOT, access, eventually

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BUNDLE = ROOT / "demo" / "static" / "demo" / "demo.js"
ARTIFACTS = ROOT / "test-artifacts" / "demo"
#: A page's steps wait this long at most (a reconnect after a restart takes a few seconds of
#: backoff: socket.io-client's Manager and the note's own, both capped at 5 s).
WAIT = 20.0
EDITOR = "#editor .tiptap"


@pytest.fixture(scope="module")
def demo_bundle() -> Path:
    """The demo's front end, built by ``make demo`` (what ``make run`` does) if needed."""
    if shutil.which("npm") is None:
        unavailable("npm is needed to build the demo page (make demo)")
    subprocess.run(["make", "--no-print-directory", "demo"], cwd=ROOT, check=True)
    assert BUNDLE.is_file(), f"make demo did not build {BUNDLE}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return BUNDLE


@pytest.fixture
def demo_users(http_login_enabled):
    """``seed_demo``'s users (alice, bob, carol), able to log in on a daphne with ``PASSWORD``."""

    async def seed() -> dict[str, User]:
        await database_sync_to_async(call_command)("seed_demo", verbosity=0)
        users = {}
        for name in ("alice", "bob", "carol"):
            user = await database_sync_to_async(User.objects.get)(username=name)
            users[name] = await http_login_enabled(user)
        return users

    return seed


async def text(page: BrowserPage, selector: str) -> str:
    return await page.act("text", selector=selector)


async def shows(page: BrowserPage, selector: str, *parts: str, timeout: float = WAIT) -> str:
    """Wait until ``selector``'s text holds every one of ``parts``; that text."""

    async def check() -> str | None:
        found = await text(page, selector)
        return found if all(part in found for part in parts) else None

    try:
        return await eventually(check, timeout=timeout, every=0.1)
    except AssertionError as timed_out:
        shown = await text(page, selector)
        raise AssertionError(f"{page}: {selector} never showed {parts}: {shown!r}") from timed_out


async def log_in(page: BrowserPage, username: str) -> None:
    from tests.conftest import PASSWORD

    await page.act("fill", selector="#username", text=username)
    await page.act("fill", selector="#password", text=PASSWORD)
    await page.act("click", selector="#login button[type=submit]")
    await shows(page, "#me", username.capitalize())
    shown = "getComputedStyle(document.getElementById('{}')).display"
    assert await page.act("evaluate", text=shown.format("login")) == "none"
    assert await page.act("evaluate", text=shown.format("app")) != "none"


async def type_in_editor(page: BrowserPage, words: str) -> None:
    """Click into the note, go to the end of the document, type ``words``."""
    await page.act("click", selector=EDITOR)
    await page.act("press", text="Control+End")
    await page.act("type", text=words)


async def screenshots(pages: dict[str, BrowserPage], step: str) -> None:
    for name, page in pages.items():
        path = await page.act("screenshot", path=str(ARTIFACTS / f"{step}-{name}.png"))
        assert Path(path).stat().st_size > 0


async def server_text(ypeers, server, note_id, token: str) -> str:
    """The note as the server holds it: the paragraphs a fresh y-websocket peer receives."""
    peer = await ypeers(server, note_id, token, name="reader").start()
    try:
        return "\n".join(paragraphs(peer.doc))
    finally:
        await peer.leave()


async def test_demo_page_chat_coediting_restart_and_a_reader(
    demo_bundle, servers, pages, ypeers, demo_users
):
    """Alice, bob and carol log in; chat with typing and presence; alice and bob co-edit the
    note with carets; carol reads and cannot type; daphne restarts on the same port and every
    page reconnects by itself with all the text, an edit made while the server was down too."""
    users = await demo_users()
    note = await database_sync_to_async(Note.objects.get)(title="Welcome")
    server = servers(DEMO_ENABLED="true")
    alice, bob, carol = [await pages(f"{server.url}/") for _ in range(3)]
    everyone = {"alice": alice, "bob": bob, "carol": carol}
    # A wrong password is refused in words, and the form stays.
    await alice.act("fill", selector="#username", text="alice")
    await alice.act("fill", selector="#password", text="not the password")
    await alice.act("click", selector="#login button[type=submit]")
    await shows(alice, "#login-error", "wrong username or password")
    for name, page in everyone.items():
        await log_in(page, name)
    # Connection state in words: writers connected on both; the reader is told she reads only.
    for page in (alice, bob):
        await shows(page, "#chat-state", "connected")
        await shows(page, "#note-state", "connected")
    await shows(carol, "#chat-state", "connected")
    await shows(carol, "#note-state", "read-only")
    # socket.io-client's default transports: long-polling first, then the upgrade.
    chosen = "demo.chat.socket.io.opts.transports === undefined"  # none set: the defaults
    assert await alice.act("evaluate", text=chosen)
    transport = "demo.chat.socket.io.engine.transport.name"
    assert await eventually(lambda: _is_websocket(alice, transport), timeout=WAIT)
    # The seeded note's text came through y-websocket into every editor.
    for page in everyone.values():
        await shows(page, EDITOR, "Welcome to Chorus.")
    # Presence: everyone is listed online on alice's page.
    await shows(alice, "#presence", "Alice", "Bob", "Carol")

    # --- chat: bob's typing and message reach alice --------------------------------------------
    await bob.act("click", selector="#message")
    await bob.act("type", text="hello from bo")
    await shows(alice, "#typing", "Bob is typing")
    await bob.act("type", text="b")
    await bob.act("press", text="Enter")
    await shows(alice, "#messages", "Bob hello from bob")
    await shows(carol, "#messages", "Bob hello from bob")
    await eventually(lambda: _no_typing(alice), timeout=WAIT)  # a sent message ends the typing

    # --- the note: each writer sees the other's text and caret with its name --------------------
    await type_in_editor(alice, " Alice writes.")
    await type_in_editor(bob, " Bob writes.")
    for page in everyone.values():
        await shows(page, EDITOR, "Alice writes.", "Bob writes.")
    await shows(alice, f"{EDITOR} .collaboration-carets__label", "Bob")
    await shows(bob, f"{EDITOR} .collaboration-carets__label", "Alice")

    # --- the reader cannot type: her page changes nothing, nor does the server --------------------
    await type_in_editor(carol, "CAROL")
    await type_in_editor(alice, " Marker one.")  # after carol's keys: every page sees it
    await shows(carol, EDITOR, "Marker one.")
    assert "CAROL" not in await text(carol, EDITOR)
    owner_token = await access(users["alice"])
    on_server = await server_text(ypeers, server, note.id, owner_token)
    assert "Marker one." in on_server and "CAROL" not in on_server
    await screenshots(everyone, "1-connected")

    # --- restart: stop daphne, type while it is down, start it again on the same port ------------
    await asyncio.to_thread(server.stop)
    await shows(alice, "#note-state", "reconnecting")
    await shows(alice, "#chat-state", "reconnecting")
    await type_in_editor(alice, " Typed while the server was down.")
    await screenshots({"alice": alice}, "2-server-down")
    await asyncio.to_thread(server.spawn, server.port)
    await asyncio.to_thread(server.wait_ready)
    # The pages reconnect by themselves (nobody reloads or clicks anything).
    for page in (alice, bob):
        await shows(page, "#chat-state", "connected")
        await shows(page, "#note-state", "connected")
    await shows(carol, "#note-state", "read-only")
    # All the text is there, on every page and on the server, the edit made offline included.
    every_line = ("Welcome to Chorus.", "Alice writes.", "Bob writes.", "Marker one.")
    for page in everyone.values():
        await shows(page, EDITOR, *every_line, "Typed while the server was down.")
    on_server = await server_text(ypeers, server, note.id, owner_token)
    assert all(line in on_server for line in every_line), on_server
    assert "Typed while the server was down." in on_server and "CAROL" not in on_server
    # The chat works again, history included (the page fetched it after reconnecting).
    await alice.act("fill", selector="#message", text="back again")
    await alice.act("click", selector="#send button")
    await shows(bob, "#messages", "Bob hello from bob", "Alice back again")
    await screenshots(everyone, "3-after-restart")
    assert not alice.found("pageerror") and not bob.found("pageerror")
    assert not carol.found("pageerror")


async def _no_typing(page: BrowserPage) -> bool:
    return (await text(page, "#typing")).strip() == ""


#: Access tokens this short make the page renew (and the note reconnect) every few seconds.
SHORT_TTL = 3


async def test_demo_page_renews_its_token_logs_out_and_ends_a_revoked_session(
    demo_bundle, servers, pages, demo_users
):
    """With 3 s access tokens: the page refreshes its token before ``exp`` and sends
    ``auth:renew``, so its Socket.IO connection outlives several tokens without a reconnect
    (the same Engine.IO session throughout); the note's y-websocket connection, which the
    server closes at each token's ``exp`` (4401), comes back with a fresh ticket each time.
    Then alice logs out (bob sees her go offline) and bob's tokens are revoked elsewhere (his
    page ends the session and says so)."""
    await demo_users()
    server = servers(DEMO_ENABLED="true", JWT_ACCESS_TTL=SHORT_TTL)
    alice, bob = [await pages(f"{server.url}/") for _ in range(2)]
    for name, page in (("alice", alice), ("bob", bob)):
        await log_in(page, name)
        await shows(page, "#chat-state", "connected")
        await shows(page, "#note-state", "connected")
    engine = "demo.chat.socket.io.engine.id"
    first_engine = await alice.act("evaluate", text=engine)
    first_expiry = await alice.act("evaluate", text="demo.session.expiresAt")

    async def outlived_two_tokens() -> bool:
        now = await alice.act("evaluate", text="Date.now()")
        return now > first_expiry + 2 * SHORT_TTL * 1000

    await eventually(outlived_two_tokens, timeout=4 * SHORT_TTL)
    assert await alice.act("evaluate", text="demo.chat.socket.connected")
    assert await alice.act("evaluate", text=engine) == first_engine  # never reconnected
    assert await alice.act("evaluate", text="demo.session.expiresAt") > first_expiry
    # Both connections still carry everything: a message and an edit.
    await bob.act("fill", selector="#message", text="still here")
    await bob.act("click", selector="#send button")
    await shows(alice, "#messages", "Bob still here")
    await type_in_editor(alice, " Written after three tokens.")
    await shows(bob, EDITOR, "Written after three tokens.")
    await shows(alice, "#note-state", "connected")

    # Logging out closes both of alice's connections: she goes offline for bob.
    await alice.act("click", selector="#logout")
    await shows(alice, "#login", "Log in")

    async def alice_offline() -> bool:
        return "Alice" not in await text(bob, "#presence")

    await eventually(alice_offline, timeout=WAIT)
    # Revoke-all from elsewhere (another login of bob's): his page is kicked, its refresh is
    # refused, and it asks him to log in again.
    from tests.conftest import PASSWORD

    elsewhere = await server.login("bob", PASSWORD)
    status, _ = await server.arequest(
        "POST", "/api/auth/revoke-all/", token=elsewhere["access"], body={}
    )
    assert status == 200
    await shows(bob, "#login-error", "Your session ended", "Log in again")


async def _is_websocket(page: BrowserPage, expression: str) -> bool:
    return await page.act("evaluate", text=expression) == "websocket"

"""Fixtures of the live tests: daphne servers, Socket.IO clients, users that can log in over HTTP,
group channels, and a clean Redis keyspace.

Servers are started per test (function scope) on the test database of a transactional test
(``@pytest.mark.django_db(transaction=True)``), so what the test creates is committed and
visible to daphne; the server fixture depends on ``transactional_db`` so servers stop before
pytest-django flushes the tables. On a failing test the tail of each server's log is added
to the report.

Redis (multi-instance tests): before a test starts its servers, ``clean_redis`` deletes only
the keys Chorus uses (``chorus:*``: channel layer, cache, session registry) in the database
of ``REDIS_URL``; it never runs FLUSHALL / FLUSHDB.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password

from accounts.models import User
from channels_app.models import Channel, ChannelMember, ChannelType, MemberRole
from tests.conftest import PASSWORD, delete_chorus_keys
from tests.live.browserproc import Browser, BrowserPage, browser_tools
from tests.live.harness import Client, DaphneServer, RawPolling, RawSocket, UvicornServer
from tests.live.nodeproc import node_binary

SERVERS = pytest.StashKey[list]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Append each live server's log tail to the report of a failed test."""
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append((f"{server.name} log (tail)", server.log_tail()))
    return report


class ServerPool:
    """Starts daphne servers for one test and stops them all afterwards.

    ``pool(name, redis_url=None, **knobs)`` starts one; ``pool.many(names, ...)`` starts
    several side by side (spawned together, then each awaited). Knobs are realtime settings
    by their environment names (docs/configuration.md), e.g. ``WEBSOCKET_PING_INTERVAL=0.5``,
    and the settings in ``harness.SERVER_SETTINGS`` (``LOG_LEVEL``, ``MAX_REQUEST_BODY_BYTES`` …).
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[DaphneServer] = []

    def __call__(
        self, name: str = "daphne", redis_url: str | None = None, **knobs: Any
    ) -> DaphneServer:
        return self.many([name], redis_url, **knobs)[0]

    def uvicorn(self, name: str = "uvicorn", **knobs: Any) -> DaphneServer:
        """One server of the app under uvicorn instead of daphne (no Redis)."""
        return self.many([name], None, server_class=UvicornServer, **knobs)[0]

    def many(
        self,
        names: list[str],
        redis_url: str | None = None,
        server_class: type[DaphneServer] = DaphneServer,
        **knobs: Any,
    ) -> list[DaphneServer]:
        servers = [server_class(self.log_dir, n, redis_url, knobs) for n in names]
        self.started += servers
        for server in servers:
            server.spawn()
        return [server.start() for server in servers]

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def servers(request, transactional_db, tmp_path) -> Iterator[ServerPool]:
    """A ``ServerPool`` for this test (stopped, SIGTERM, before the database is flushed)."""
    pool = ServerPool(tmp_path)
    request.node.stash[SERVERS] = pool.started
    yield pool
    pool.stop_all()


@pytest.fixture
def server(servers) -> DaphneServer:
    """One daphne with the default knobs, no Redis."""
    return servers()


@pytest.fixture
def socket_transport() -> tuple[str, ...]:
    """The transports ``clients`` connect with unless told otherwise: WebSocket alone. A test
    module whose behaviour is the same on every transport parametrizes this fixture."""
    return ("websocket",)


@pytest.fixture
async def clients(servers, socket_transport) -> AsyncIterator[Callable[..., Client]]:
    """``clients(server, name, transports)`` -> a new, unconnected ``Client`` (on
    ``socket_transport`` unless ``transports`` says otherwise; ``None`` there is
    python-socketio's default); all disconnect after the test."""
    made: list[Client] = []

    def make(
        server: DaphneServer,
        name: str = "client",
        transports: tuple[str, ...] | str | None = "",
    ) -> Client:
        chosen = socket_transport if transports == "" else transports
        client = Client(server, name, chosen)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.disconnect()


@pytest.fixture
async def raw_sockets(servers) -> AsyncIterator[Callable[[DaphneServer], RawSocket]]:
    """``raw_sockets(server)`` -> a new ``RawSocket`` (hand-spoken Engine.IO); closed after."""
    made: list[RawSocket] = []

    def make(server: DaphneServer) -> RawSocket:
        made.append(RawSocket(server))
        return made[-1]

    yield make
    for raw in made:
        await raw.close()


@pytest.fixture
async def polls(servers) -> AsyncIterator[Callable[[DaphneServer], RawPolling]]:
    """``polls(server)`` -> a new ``RawPolling`` (hand-spoken Engine.IO long-polling); closed
    after the test."""
    made: list[RawPolling] = []

    def make(server: DaphneServer) -> RawPolling:
        made.append(RawPolling(server))
        return made[-1]

    yield make
    for raw in made:
        await raw.close()


@functools.cache
def _server_password_hash() -> str:
    """``PASSWORD`` hashed the way daphne's default hasher expects (no upgrade on login).

    The test process uses a fast MD5 hasher that daphne does not know; an upgrade-on-login
    would change the password and so revoke every token of the user (accounts.receivers).
    """
    return make_password(PASSWORD, hasher=PBKDF2PasswordHasher())


@pytest.fixture
def http_login_enabled() -> Callable[[User], Awaitable[User]]:
    """``await http_login_enabled(user)``: the user can log in with ``PASSWORD`` on a daphne."""

    @database_sync_to_async
    def enable(user: User) -> User:
        # queryset update: no post_save, so no token revocation
        User.objects.filter(pk=user.pk).update(password=_server_password_hash())
        return user

    return enable


@pytest.fixture
def carol(make_user) -> User:
    return make_user("carol", name="Carol")


@pytest.fixture
def group_channel(db) -> Callable[..., Awaitable[Channel]]:
    """``await group_channel(owner, *members)`` -> a group channel with those active members."""

    @database_sync_to_async
    def make(owner: User, *members: User, name: str = "team") -> Channel:
        channel = Channel.objects.create(type=ChannelType.GROUP, name=name, owner=owner)
        ChannelMember.objects.create(channel=channel, user=owner, role=MemberRole.OWNER)
        for member in members:
            ChannelMember.objects.create(channel=channel, user=member)
        return channel

    return make


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """``REDIS_URL`` with every ``chorus:*`` key deleted (nothing else is touched)."""
    delete_chorus_keys(redis_url)
    return redis_url


@pytest.fixture
def instances(servers, clean_redis):
    """``instances(**knobs)`` -> (A, B): two daphnes on the same Redis and database."""

    def start(**knobs):
        return servers.many(["instance-A", "instance-B"], clean_redis, **knobs)

    return start


@pytest.fixture
async def ypeers(servers):
    """A pool of Yjs peers (``tests.live.doc_peers``) closed before the servers stop."""
    from tests.live.doc_peers import PeerPool

    pool = PeerPool()
    yield pool
    await pool.close_all()


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with tests/live/node/node_modules (the stock socket.io-client)."""
    binary = node_binary()
    if binary is None:
        unavailable("node and npm are needed for the stock socket.io-client")
    return binary


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for a test module (tests/live/browserproc.py); Debian's chromium
    and the pinned playwright-core are installed on first use; skips when they cannot be
    (fails under ``CI=true``)."""
    tools = browser_tools()
    if isinstance(tools, str):
        unavailable(tools)
    driver = Browser(*tools).start()
    yield driver
    driver.stop()


@pytest.fixture
async def pages(servers, browser) -> AsyncIterator[Callable[..., Awaitable[BrowserPage]]]:
    """``await pages(url, files, permissions)`` -> a new page in its own browser context
    (``Browser.open``); all closed after the test, before its servers stop."""
    made: list[BrowserPage] = []

    async def make(
        url: str, files: dict[str, Path] | None = None, permissions: tuple[str, ...] = ()
    ) -> BrowserPage:
        made.append(await browser.open(url, files, permissions))
        return made[-1]

    yield make
    for page in made:
        await page.close()


def unavailable(why: str) -> None:
    """Skip a test whose real client cannot run on this machine — but under ``CI=true`` (as
    for PostgreSQL and Redis in scripts/test) fail: CI must run every client."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs this: {why}")
    pytest.skip(why)

"""Tokens renewed without losing the session, and single-use connection tickets, against real
daphne processes (docs/protocol.md §4, §4.2, §4.3; issue 17, points 5 and 6).

- At the token's expiry a stock Node ``socket.io-client`` with default reconnection
  (``tests/live/node/renew_client.cjs``, whose ``auth`` function asks this test for each
  token) reconnects by itself, asks for a fresh token and resumes its session; a logout is
  final. python-socketio reconnects the same way.
- ``auth:renew`` moves a socket's expiry in band; a refused renewal changes nothing.
- A ticket from ``POST /api/auth/ws-ticket/`` opens one connection on either endpoint, on any
  instance; a replay or an expired ticket is refused with ``ticket_invalid``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import socketio
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from config.formats import iso
from notes.models import Note
from tests.live.harness import SOCKETIO_PATH, DaphneServer, Marker, access, short_lived
from tests.live.nodeproc import NodeProcess
from tests.live.test_channels_live import People, create_channel, post

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EVENT = "events:channel"


def expiry_of(token: str) -> float:
    return jwt.decode(token, options={"verify_signature": False})["exp"]


async def until_past(moment: float) -> None:
    """Wait until ``moment`` (epoch seconds) has passed, with a margin: the behaviour under test
    is what a timer due then does (or no longer does)."""
    await asyncio.sleep(max(0.0, moment - time.time()) + 0.5)


@pytest.fixture
def people(make_user) -> People:
    return People(make_user)


# --- the stock Node client: reconnect with a fresh token, resume --------------------------------


class RenewingClient(NodeProcess):
    """``renew_client.cjs`` in a subprocess: its printed lines in ``lines``; ``give(token)``
    answers its ``auth`` function's pending call."""

    def __init__(self, binary: str, url: str, options: dict | None = None) -> None:
        super().__init__(binary, "renew_client.cjs", url, json.dumps(options or {}))

    async def give(self, token: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(token.encode() + b"\n")
        await self.process.stdin.drain()

    async def wait_event(
        self, name: str, predicate: Callable[[list], bool] | None = None, timeout: float = 15.0
    ) -> list:
        """The arguments of the first event ``name`` whose arguments match ``predicate``
        (received or to come)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if (
                    line["type"] == "event"
                    and line["name"] == name
                    and (predicate is None or predicate(line["args"]))
                ):
                    return line["args"]
            assert time.monotonic() < deadline, f"no {name!r}: {self.lines[-6:]}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def renewing_clients(node):
    made: list[RenewingClient] = []

    async def make(url: str, options: dict | None = None) -> RenewingClient:
        made.append(await RenewingClient(node, url, options).start())
        return made[-1]

    yield make
    for client in made:
        await client.stop()


#: socket.io-client's defaults (polling, then the upgrade: the WebSocket ends), and polling
#: alone (the session ends: its next GET is refused) — (options, the disconnect reason).
STOCK_TRANSPORTS = pytest.mark.parametrize(
    ("options", "cut"),
    [({}, "transport close"), ({"transports": ["polling"]}, "transport error")],
    ids=["defaults", "polling"],
)


@STOCK_TRANSPORTS
async def test_at_expiry_a_stock_client_reconnects_with_a_fresh_token_and_resumes(
    servers, renewing_clients, people, options, cut
):
    server = servers()
    alice, bob = await people("Alice"), await people("Bob")
    cid = (await create_channel(server, alice, bob))["id"]
    client = await renewing_clients(server.url, options)
    await client.wait_for("auth")
    await client.give(await short_lived(alice.user, 3))
    [first] = await client.wait_for("connect")
    await client.wait_for("joined")  # in the channel's room

    [error] = await client.wait_event("error")
    assert error["code"] == "token_expired"
    [gone] = await client.wait_for("disconnect")
    assert gone == {"type": "disconnect", "reason": cut, "active": True}

    # The client reconnected by itself and asks for a token: until it has one it sends no
    # CONNECT, so what is published now can only reach it by recovery.
    await client.wait_for("auth", 2)
    await post(server, bob, cid, "while away")
    await client.give(await access(alice.user))
    connects = await client.wait_for("connect", 2)
    assert connects[1]["recovered"] is True and connects[1]["id"] == first["id"]
    payload, offset = await client.wait_event(
        EVENT, lambda args: args[0]["data"]["type"] == "message"
    )
    assert payload["data"]["data"]["content"] == "while away"
    assert isinstance(offset, str)  # a logged broadcast, replayed with its offset
    assert [line["type"] for line in client.lines].count("connect_error") == 0


@STOCK_TRANSPORTS
async def test_a_logout_is_final_for_a_stock_client(
    servers, renewing_clients, people, options, cut
):
    server = servers()
    alice = await people("Alice")
    client = await renewing_clients(server.url, options)
    await client.wait_for("auth")
    await client.give(alice.token)
    await client.wait_for("connect")
    status, _ = await server.arequest("POST", "/api/auth/logout/", token=alice.token, body={})
    assert status == 200
    [error] = await client.wait_event("error")
    assert error["code"] == "token_revoked"
    [gone] = await client.wait_for("disconnect")
    # ``active``: socket.io-client's own statement that it will not reconnect.
    assert gone == {"type": "disconnect", "reason": "io server disconnect", "active": False}


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_python_socketio_reconnects_at_expiry_with_its_auth_function(
    server, alice, transport
):
    """python-socketio's ``AsyncClient`` with its default reconnection and ``auth`` given as a
    function: the same recipe (it has no recovery: a new session)."""
    tokens = [await short_lived(alice, 3), await access(alice)]
    calls: list[int] = []

    def auth() -> dict:
        calls.append(1)
        return {"token": tokens[min(len(calls), len(tokens)) - 1]}

    sio = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    errors: list[Any] = []
    connects: list[str] = []
    sio.on("error", errors.append)
    sio.on("connect", lambda: connects.append(sio.sid))
    try:
        await sio.connect(
            server.url, auth=auth, transports=[transport], socketio_path=SOCKETIO_PATH
        )
        deadline = time.monotonic() + 15
        while len(connects) < 2:
            assert time.monotonic() < deadline, (errors, connects, calls)
            await asyncio.sleep(0.05)
        assert [e["code"] for e in errors] == ["token_expired"]
        assert len(calls) == 2 and connects[0] != connects[1]
        assert await sio.call("heartbeat", {}, timeout=5) == {}
    finally:
        await sio.disconnect()
        await sio.shutdown()


# --- auth:renew ----------------------------------------------------------------------------------


async def test_a_renewal_moves_the_expiry(server, clients, alice):
    token = await short_lived(alice, 3)
    client = await clients(server, "alice").connect(token)
    fresh = await access(alice)
    ack = await client.call("auth:renew", {"token": fresh})
    assert ack == {
        "ok": True,
        "expires_at": iso(datetime.fromtimestamp(expiry_of(fresh), tz=UTC)),
    }
    await until_past(expiry_of(token))
    # The socket's own order: anything sent to it before the heartbeat's ack came first.
    await client.assert_no_event_before("error", client.call("heartbeat"))
    assert client.connected and client.disconnects == []


@pytest.mark.parametrize("kind", ["other-user", "garbage"])
async def test_a_refused_renewal_changes_nothing(server, clients, alice, bob, kind):
    token = await short_lived(alice, 3)
    client = await clients(server, "alice").connect(token)
    offered = await access(bob) if kind == "other-user" else "not.a.jwt"
    ack = await client.call("auth:renew", {"token": offered})
    code = "forbidden" if kind == "other-user" else "invalid_token"
    assert ack["error"]["code"] == code and ack["error"]["message"]
    error = await client.wait_for("error", timeout=8)  # the old expiry still fires
    assert error["code"] == "token_expired"
    await client.wait_disconnected()
    assert client.disconnects == ["transport error"]  # no "41": a client would reconnect


async def test_after_a_renewal_the_new_tokens_logout_kicks_and_the_old_ones_does_not(
    server, clients, people
):
    alice, bob = await people("Alice"), await people("Bob")
    old, new = alice.token, await access(alice.user)
    client = await clients(server, "alice").connect(old)
    assert (await client.call("auth:renew", {"token": new}))["ok"] is True
    status, _ = await server.arequest("POST", "/api/auth/logout/", token=old, body={})
    assert status == 200
    # The marker takes the kick's path after it: published by the same server, after its
    # commit, to alice's user room (``channel:created`` of a channel bob makes with her).
    cid = (await create_channel(server, bob, alice, name="marker"))["id"]
    marker = Marker(EVENT, lambda d: d.get("channel_id") == cid)
    await client.assert_no_event_before("error", marker)
    status, _ = await server.arequest("POST", "/api/auth/logout/", token=new, body={})
    assert status == 200
    error = await client.wait_for("error")
    assert error["code"] == "token_revoked"
    await client.wait_disconnected()
    assert client.disconnects == ["server disconnect"]  # "41": final


# --- connection tickets --------------------------------------------------------------------------


async def ticket_from(server: DaphneServer, token: str) -> str:
    status, body = await server.arequest("POST", "/api/auth/ws-ticket/", token=token)
    assert status == 200, (status, body)
    return body["ticket"]


async def yjs_first(server: DaphneServer, note_id: str, ticket: str) -> bytes | tuple:
    """Open the y-websocket endpoint with ``?ticket=``: the first frame, or (code, reason)
    when the server closes instead."""
    url = f"ws://127.0.0.1:{server.port}/ws/yjs/note:{note_id}?ticket={ticket}"
    async with ws_connect(url, ping_interval=None) as ws:
        try:
            async with asyncio.timeout(5):
                return await ws.recv()
        except ConnectionClosed as closed:
            return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, None)


@database_sync_to_async
def note_of(user) -> str:
    return str(Note.objects.create(owner=user, title="ticketed").id)


async def test_the_endpoint_needs_a_token(server):
    status, body = await server.arequest("POST", "/api/auth/ws-ticket/")
    assert status == 401 and body["error"]["code"] == "auth_required"


async def test_a_ticket_opens_one_socketio_connection(server, clients, alice):
    ticket = await ticket_from(server, await access(alice))
    client = await clients(server, "alice").connect(auth={}, query={"ticket": ticket})
    assert await client.join() == {"id": str(alice.id), "name": "Alice", "role": "user"}
    error = await clients(server, "replay").refused(auth={}, query={"ticket": ticket})
    assert error["data"] == {"code": "ticket_invalid"}
    assert ticket not in server.log_path.read_text()  # daphne's access log, Chorus's own


async def test_a_ticket_opens_one_yjs_connection(server, alice):
    note_id = await note_of(alice)
    ticket = await ticket_from(server, await access(alice))
    first = await yjs_first(server, note_id, ticket)
    assert isinstance(first, bytes) and first[:2] == b"\x00\x00"  # sync step 1
    assert await yjs_first(server, note_id, ticket) == (4401, "ticket_invalid")
    assert ticket not in server.log_path.read_text()


async def test_an_expired_ticket_is_refused_on_both_endpoints(servers, clients, alice):
    ttl = 0.3
    server = servers(WS_TICKET_TTL=ttl)
    token = await access(alice)
    note_id = await note_of(alice)
    tickets = [await ticket_from(server, token), await ticket_from(server, token)]
    await asyncio.sleep(ttl + 0.1)  # the TTL itself: the behaviour under test
    error = await clients(server).refused(auth={}, query={"ticket": tickets[0]})
    assert error["data"] == {"code": "ticket_invalid"}
    assert await yjs_first(server, note_id, tickets[1]) == (4401, "ticket_invalid")


async def test_a_ticket_connection_is_kicked_by_its_tokens_logout(server, clients, alice):
    token = await access(alice)
    client = await clients(server, "alice").connect(
        auth={}, query={"ticket": await ticket_from(server, token)}
    )
    status, _ = await server.arequest("POST", "/api/auth/logout/", token=token, body={})
    assert status == 200
    assert (await client.wait_for("error"))["code"] == "token_revoked"
    await client.wait_disconnected()


@pytest.mark.services
async def test_a_ticket_issued_on_one_instance_connects_on_another_once(
    servers, clean_redis, clients, alice
):
    a, b = servers.many(["instance-A", "instance-B"], clean_redis)
    token = await access(alice)
    note_id = await note_of(alice)
    ticket = await ticket_from(a, token)
    client = await clients(b, "alice-on-B").connect(auth={}, query={"ticket": ticket})
    assert client.connected
    error = await clients(a, "replay-on-A").refused(auth={}, query={"ticket": ticket})
    assert error["data"] == {"code": "ticket_invalid"}
    ticket = await ticket_from(b, token)
    first = await yjs_first(a, note_id, ticket)
    assert isinstance(first, bytes) and first[:2] == b"\x00\x00"
    assert await yjs_first(b, note_id, ticket) == (4401, "ticket_invalid")

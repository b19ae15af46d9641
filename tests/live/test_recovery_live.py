"""Connection state recovery with the stock Node ``socket.io-client`` against real daphne
(docs/protocol.md §4).

The client reaches daphne through ``TcpProxy``, a TCP forwarder in the test process: ``cut``
resets both TCP connections (no WebSocket close, no DISCONNECT: what a network failure looks
like to both ends) and refuses new ones until ``restore``, so that events published meanwhile
can only reach the client through recovery. The Node client (tests/live/node/) is installed
with ``npm ci`` on first use.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.live.harness import Client
from tests.live.nodeproc import NodeProcess
from tests.live.tcpproxy import TcpProxy
from tests.live.test_channels_live import People, create_channel, post, rest

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EVENT = "events:channel"


class NodeClient(NodeProcess):
    """``recovery_client.cjs`` in a subprocess: every line it prints, parsed, in ``lines``."""

    def __init__(self, node: str, url: str, auth: dict[str, Any]) -> None:
        super().__init__(node, "recovery_client.cjs", url, json.dumps(auth))

    def events(self, name: str = EVENT) -> list[list]:
        return [
            line["args"] for line in self.lines if line["type"] == "event" and line["name"] == name
        ]


@pytest.fixture
async def proxies():
    made: list[TcpProxy] = []

    async def make(target: int) -> TcpProxy:
        made.append(await TcpProxy(target).start())
        return made[-1]

    yield make
    for proxy in made:
        await proxy.close()


@pytest.fixture
async def node_clients(node):
    made: list[NodeClient] = []

    async def make(url: str, auth: dict[str, Any]) -> NodeClient:
        made.append(await NodeClient(node, url, auth).start())
        return made[-1]

    yield make
    for client in made:
        await client.stop()


@pytest.fixture
def people(make_user) -> People:
    return People(make_user)


async def offline(server, channel_id: str, who, viewer) -> None:
    """Poll until ``who`` is offline in the channel (the server noticed the cut)."""
    for _ in range(200):
        if who.id not in await server.online_ids(channel_id, viewer.token):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{who.user.name} still online after the cut")


def messages(args_list: list[list]) -> list[tuple[str, str]]:
    """(content, offset) of each ``message`` event (args: [payload, offset])."""
    return [
        (args[0]["data"]["data"]["content"], args[-1])
        for args in args_list
        if args[0].get("data", {}).get("type") == "message"
    ]


async def quiet_until_created(server, client: NodeClient, creator, member) -> None:
    """No ``message`` event reached ``client`` (a socket of ``member``) before a marker:
    ``channel:created`` of a new channel with ``member``, which ``server`` sends now through
    the user's room. A replay is written on the socket right after the CONNECT reply, which
    the client has already printed, so any would arrive before the marker (the rule of
    ``Client.assert_no_event_before``, for the Node client)."""
    cid = (await create_channel(server, creator, member, name="marker"))["id"]
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        received = client.events()
        at = next(
            (
                i
                for i, args in enumerate(received)
                if args[0].get("channel_id") == cid and args[0]["data"]["type"] == "channel:created"
            ),
            None,
        )
        if at is not None:
            break
        assert asyncio.get_running_loop().time() < deadline, f"no marker: {client.lines[-5:]}"
        await asyncio.sleep(0.05)
    assert messages(received[:at]) == []


async def alice_in_a_channel(server, proxies, node_clients, alice, bob):
    """Alice's stock client, through a proxy, joined to a channel she shares with Bob:
    ``(channel id, proxy, client, its first connect line)``."""
    cid = (await create_channel(server, alice, bob))["id"]
    proxy = await proxies(server.port)
    client = await node_clients(f"http://127.0.0.1:{proxy.port}", {"token": alice.token})
    [first] = await client.wait_for("connect")
    await client.wait_for("joined")
    return cid, proxy, client, first


async def cut_and_miss(proxy, server, client, cid, alice, bob, count: int) -> None:
    """Cut alice's client off, wait until the server knows, and post ``count`` messages."""
    await proxy.cut()
    await client.wait_for("disconnect")
    await offline(server, cid, alice, bob)
    for i in range(count):
        await post(server, bob, cid, f"missed {i}")


async def test_a_cut_client_gets_all_100_missed_events_in_order_once(
    servers, proxies, node_clients, people
):
    """The headline: TCP cut, 100 events to its channel, reconnect: all 100, in order, no
    duplicate, ``socket.recovered === true``, same id."""
    server = servers()
    alice, bob = await people("Alice"), await people("Bob")
    cid, proxy, client, first = await alice_in_a_channel(server, proxies, node_clients, alice, bob)
    assert first["recovered"] is False and first["pid"]
    await post(server, bob, cid, "before")
    await client.wait_for("event")
    await cut_and_miss(proxy, server, client, cid, alice, bob, 100)
    await proxy.restore()
    connects = await client.wait_for("connect", 2)
    assert connects[1]["recovered"] is True
    assert (connects[1]["id"], connects[1]["pid"]) == (first["id"], first["pid"])
    await asyncio.sleep(0)
    for _ in range(200):
        if len(messages(client.events())) >= 101:
            break
        await asyncio.sleep(0.05)
    await post(server, bob, cid, "after")  # live again, after the replay
    for _ in range(100):
        if len(messages(client.events())) >= 102:
            break
        await asyncio.sleep(0.05)
    got = messages(client.events())
    contents = [content for content, _ in got]
    assert contents == ["before", *(f"missed {i}" for i in range(100)), "after"]
    offsets = [offset for _, offset in got]
    assert len(set(offsets)) == len(offsets)  # each once


async def test_past_the_window_the_client_connects_anew(servers, proxies, node_clients, people):
    server = servers(RECOVERY_WINDOW=1)
    alice, bob = await people("Alice"), await people("Bob")
    cid, proxy, client, first = await alice_in_a_channel(server, proxies, node_clients, alice, bob)
    await cut_and_miss(proxy, server, client, cid, alice, bob, 3)
    await asyncio.sleep(1.5)  # the recovery window lapses (the behaviour under test)
    await proxy.restore()
    connects = await client.wait_for("connect", 2)
    assert connects[1]["recovered"] is False
    assert connects[1]["id"] != first["id"] and connects[1]["pid"] != first["pid"]
    await quiet_until_created(server, client, bob, alice)


async def test_another_users_pid_connects_anew_and_leaves_the_session(
    servers, proxies, node_clients, people
):
    """Carol sends Alice's pid (a stock client passes ``auth`` through): a normal connect,
    nothing of Alice's; Alice then resumes as if nothing happened."""
    server = servers()
    alice, bob, carol = await people("Alice"), await people("Bob"), await people("Carol")
    cid, proxy, client, first = await alice_in_a_channel(server, proxies, node_clients, alice, bob)
    await cut_and_miss(proxy, server, client, cid, alice, bob, 3)
    intruder = await node_clients(
        server.url, {"token": carol.token, "pid": first["pid"], "offset": "0-0"}
    )
    [theirs] = await intruder.wait_for("connect")
    assert theirs["recovered"] is False
    assert theirs["id"] != first["id"] and theirs["pid"] != first["pid"]
    await proxy.restore()
    connects = await client.wait_for("connect", 2)
    assert connects[1]["recovered"] is True
    for _ in range(100):
        if len(messages(client.events())) >= 3:
            break
        await asyncio.sleep(0.05)
    assert [content for content, _ in messages(client.events())] == [
        f"missed {i}" for i in range(3)
    ]
    await quiet_until_created(server, intruder, bob, carol)


@pytest.mark.services
async def test_a_client_resumes_on_the_other_instance(
    servers, clean_redis, proxies, node_clients, people
):
    """Cut from instance A, reconnected to instance B (same Redis): rooms and the 100 missed
    events are found there."""
    a, b = servers.many(["instance-A", "instance-B"], clean_redis)
    alice, bob = await people("Alice"), await people("Bob")
    cid, proxy, client, first = await alice_in_a_channel(a, proxies, node_clients, alice, bob)
    await cut_and_miss(proxy, a, client, cid, alice, bob, 100)
    await proxy.restore(b.port)
    connects = await client.wait_for("connect", 2)
    assert connects[1]["recovered"] is True and connects[1]["id"] == first["id"]
    for _ in range(200):
        if len(messages(client.events())) >= 100:
            break
        await asyncio.sleep(0.05)
    await post(a, bob, cid, "after")  # published on A, live on B: the room is back on B
    for _ in range(100):
        if len(messages(client.events())) >= 101:
            break
        await asyncio.sleep(0.05)
    assert [c for c, _ in messages(client.events())] == [
        *(f"missed {i}" for i in range(100)),
        "after",
    ]
    await rest(b, alice, "GET", f"/api/channels/{cid}/presence/")


async def test_python_socketio_gets_no_pid_or_offsets_and_its_one_argument_handlers_work(
    servers, people
):
    """python-socketio cannot recover, and it passes an event's arguments positionally: an
    offset after the data would be a ``TypeError`` in a handler written ``def f(data)``.
    Its sockets (User-Agent ``Python/… aiohttp/…``) get neither a pid nor offsets."""
    server = servers()
    alice, bob = await people("Alice"), await people("Bob")
    cid = (await create_channel(server, alice, bob))["id"]
    client = Client(server, "python-socketio")
    got: list[Any] = []

    async def on_channel(data):  # one parameter, as python-socketio's docs write handlers
        got.append(data)

    client.sio.on(EVENT, on_channel)
    await client.connect(alice.token)
    await client.join(alice.token)
    await post(server, bob, cid, "hello")
    for _ in range(100):
        if any(g.get("data", {}).get("type") == "message" for g in got):
            break
        await asyncio.sleep(0.05)
    message = [g for g in got if g.get("data", {}).get("type") == "message"]
    assert message and message[0]["data"]["data"]["content"] == "hello"
    await client.disconnect()

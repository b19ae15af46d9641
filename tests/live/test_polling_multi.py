"""Long-polling without sticky sessions: two daphne instances on Redis + PostgreSQL, a client's
requests landing on either (docs/operations.md, "Several instances"). A session lives on the
instance of its handshake; a request reaching the other is forwarded there through the channel
layer (``realtime.consumers.forwarding``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.live.harness import (
    SOCKETIO_PATH,
    Client,
    access,
    eventually,
    typing_event,
    typing_payload,
)
from tests.live.tcpproxy import TcpProxy
from tests.live.test_polling_live import held_again

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def events_named(packets, name: str) -> list:
    found = []
    for packet in packets:
        if isinstance(packet, str) and packet.startswith("42"):
            event = json.loads(packet[2:])
            if event[0] == name:
                found.append(event[1])
    return found


async def test_requests_alternating_between_instances_work_as_on_one(
    instances, polls, clients, alice, bob, group_channel
):
    # (short pings: a home nobody answers for is given up after the ping timeout, below)
    a, b = instances(WEBSOCKET_PING_INTERVAL=3, WEBSOCKET_PING_TIMEOUT=2)
    channel = await group_channel(alice, bob)
    raw = polls(a)
    await raw.handshake(via=a)
    assert "." in raw.sid  # the sid names its home instance
    # CONNECT posted to B, its reply polled from B: both forwarded to A
    assert (await raw.post("40" + json.dumps({"token": await access(alice)}), via=b))[0] == 200
    packets = await raw.get(via=b)
    assert any(isinstance(p, str) and p.startswith("40{") for p in packets), packets
    assert (await raw.post('421["user-join",{}]', via=a))[0] == 200
    packets = await raw.get(via=b)
    (ack,) = [p for p in packets if isinstance(p, str) and p.startswith("431[")]
    assert json.loads(ack[3:])[0]["id"] == str(alice.id)
    # an event from a WebSocket client on B reaches the polling session (on A) polled via B
    bob_ws = await clients(b, "bob@B").connect(await access(bob))
    await bob_ws.join()
    assert await bob_ws.call("events:channel", typing_payload(channel.id)) == {}
    bob_typing = typing_event(channel.id, bob.id)
    seen: list = []
    for via in itertools.islice(itertools.cycle((b, a)), 6):  # (presence may come first)
        seen += [e for e in events_named(await raw.get(via=via), "events:channel") if bob_typing(e)]
        if seen:
            break
    assert seen
    # and the polling session's event, posted via B, reaches bob
    event = "422" + json.dumps(["events:channel", typing_payload(channel.id)])
    assert (await raw.post(event, via=b))[0] == 200
    await bob_ws.wait_for("events:channel", typing_event(channel.id, alice.id))
    # a sid with a home nobody answers for: Session ID unknown (after the forward's wait)
    gone = base64.urlsafe_b64encode(b"chorus.hub.gone!0123").decode().rstrip("=")
    status, _, body = await raw.request("POST", raw.url(f"x.{gone}", via=b), "6")
    assert status == 400 and json.loads(body)["code"] == 1
    # a sid naming a layer channel that is no hub's: never sent anywhere, unknown at once
    other = base64.urlsafe_b64encode(b"some.group!x").decode().rstrip("=")
    status, _, body = await raw.request("POST", raw.url(f"x.{other}", via=b), "6")
    assert status == 400 and json.loads(body)["code"] == 1


async def test_upgrade_on_another_instance_is_relayed_to_the_home(
    instances, polls, clients, alice, bob, group_channel
):
    """The WebSocket of the upgrade lands on B, the session lives on A: B relays it — acks,
    broadcasts and the end of the socket all go through."""
    a, b = instances()
    channel = await group_channel(alice, bob)
    raw = polls(a)
    await raw.connect(await access(alice), via=a)
    await raw.join(via=a)
    polling = asyncio.ensure_future(raw.get(via=a))
    upgrade = f"ws://127.0.0.1:{b.port}{SOCKETIO_PATH}/?EIO=4&transport=websocket&sid={raw.sid}"
    ws = await ws_connect(upgrade, ping_interval=None)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
    await asyncio.wait_for(polling, 5)  # the home released its waiting GET
    await ws.send("5")
    await ws.send('427["heartbeat",{}]')
    bob_ws = await clients(b, "bob@B").connect(await access(bob))
    await bob_ws.join()
    assert await bob_ws.call("events:channel", typing_payload(channel.id)) == {}
    got_ack = got_typing = False
    bob_typing = typing_event(channel.id, bob.id)
    while not (got_ack and got_typing):
        frame = await asyncio.wait_for(ws.recv(), 5)
        if frame == "2":
            await ws.send("3")
        elif isinstance(frame, str) and frame.startswith("437["):
            got_ack = True
        elif isinstance(frame, str) and frame.startswith('42["events:channel"'):
            got_typing = got_typing or bob_typing(json.loads(frame[2:])[1])
    await ws.send("42" + json.dumps(["events:channel", typing_payload(channel.id)]))
    await bob_ws.wait_for("events:channel", typing_event(channel.id, alice.id))
    status, _, body = await raw.request("GET", raw.url(raw.sid, via=a))
    assert status == 400 and json.loads(body)["code"] == 3  # polling is over
    await ws.close()  # the end of the relayed WebSocket ends the session at its home

    async def offline() -> bool:
        return str(alice.id) not in await b.online_ids(channel.id, await access(bob))

    await eventually(offline)


async def test_a_client_leaving_a_forwarded_poll_loses_nothing(
    instances, polls, clients, alice, bob, group_channel
):
    """A long-poll forwarded A <- B whose client goes away: the home stops waiting, so the
    next GET (anywhere) is no overlap, and it gets what was published meanwhile."""
    a, b = instances()
    channel = await group_channel(alice, bob)
    raw = polls(a)
    await raw.connect(await access(alice), via=a)
    await raw.join(via=a)
    cut = asyncio.ensure_future(raw.request("GET", raw.url(raw.sid, via=b)))
    await asyncio.sleep(0.3)  # the forwarded GET waits at A (nothing to send yet)
    cut.cancel()  # the client goes away mid-poll
    bob_ws = await clients(b, "bob@B").connect(await access(bob))
    await bob_ws.join()
    assert await bob_ws.call("events:channel", typing_payload(channel.id)) == {}
    bob_typing = typing_event(channel.id, bob.id)
    for _ in range(6):  # (presence may come first)
        events = events_named(await raw.get(via=a), "events:channel")
        if any(bob_typing(e) for e in events):
            break
    else:
        raise AssertionError("bob's typing never reached the polling session")


@pytest.mark.parametrize("transports", [("polling",), None])
async def test_stock_client_behind_a_balancer_without_affinity(
    instances, alice, bob, group_channel, transports
):
    """python-socketio through a TCP balancer that alternates instances per connection:
    polling alone, or its defaults (the upgrade succeeds when the WebSocket lands on the
    session's home, else the session stays on polling) — everything works either way."""
    a, b = instances()
    channel = await group_channel(alice, bob)
    proxy = await TcpProxy(a.port, b.port).start()  # a balancer without affinity
    front = SimpleNamespace(url=f"http://127.0.0.1:{proxy.port}", port=proxy.port)
    alice_client = Client(front, "alice@balancer", transports)  # type: ignore[arg-type]
    bob_client = Client(b, "bob@B")
    try:
        await alice_client.connect(await access(alice))
        await bob_client.connect(await access(bob))
        assert (await alice_client.join())["id"] == str(alice.id)
        await bob_client.join()
        for _ in range(3):  # several round trips, each over whichever connections
            assert await alice_client.call("events:channel", typing_payload(channel.id, True)) == {}
            assert (
                await alice_client.call("events:channel", typing_payload(channel.id, False)) == {}
            )
        await bob_client.wait_for("events:channel", typing_event(channel.id, alice.id))
        assert await bob_client.call("events:channel", typing_payload(channel.id)) == {}
        await alice_client.wait_for("events:channel", typing_event(channel.id, bob.id))
        if transports:  # (with the defaults, aiohttp may reuse one connection for everything)
            assert {a.port, b.port} <= set(proxy.picked)  # both served it
        assert alice_client.connected and not alice_client.disconnects
    finally:
        await alice_client.disconnect()
        await bob_client.disconnect()
        await proxy.close()


async def test_an_abandoned_relayed_probe_leaves_the_session_polling(instances, polls, alice):
    """A probe through B that never switches: the home stops answering GETs at once."""
    a, b = instances()
    raw = polls(a)
    await raw.connect(await access(alice), via=a)
    upgrade = f"ws://127.0.0.1:{b.port}{SOCKETIO_PATH}/?EIO=4&transport=websocket&sid={raw.sid}"
    ws = await ws_connect(upgrade, ping_interval=None)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
    await ws.close()
    await held_again(raw, a)

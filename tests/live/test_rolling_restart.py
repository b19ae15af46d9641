"""A rolling restart under load (docs/operations.md, "Rolling restart"): two daphne instances on
PostgreSQL + Redis behind a round-robin TCP balancer without affinity (tests/live/tcpproxy.py),
stock socket.io-clients (WebSocket and polling-only) in the users' channel, a chatter posting
messages through the balancer and two y-websocket editors writing one note, while each
instance in turn gets SIGTERM, exits, and is started again on its port.

Afterwards: every client is connected, every acked message is in the database and reached
every socket (they resumed: connection state recovery), every acked edit is in the database
and in what a fresh peer gets, and presence lists exactly the connected users on both
instances."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from channels_app.models import Message
from tests.live.doc_peers import create_note, durable_doc, sorted_parts, text_of
from tests.live.harness import DaphneServer, access, eventually
from tests.live.rolling import Chatter, Editor, Front, StockSocket
from tests.live.tcpproxy import TcpProxy

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


async def restart(server: DaphneServer) -> None:
    """SIGTERM, wait for the exit (status 0: drained within its limits), start again on the
    same port."""
    await asyncio.to_thread(server.stop, 20)
    assert server.process is not None and server.process.returncode == 0, server.log_tail()
    assert "Drained" in server.log_tail(200)
    server.spawn(port=server.port)
    await asyncio.to_thread(server.wait_ready)


@database_sync_to_async
def stored_message_ids(channel_id: object) -> set[str]:
    return {
        str(pk) for pk in Message.objects.filter(channel_id=channel_id).values_list("pk", flat=True)
    }


async def roll_under_load(front, instances, node, users, channel, note_id, ypeers) -> None:
    """The scenario of the module doc, through ``front`` (its ``url`` and ``port``)."""
    alice, bob, carol = users
    sockets = [
        await StockSocket(
            node, front.url, await access(alice), "alice-ws", transports=["websocket"]
        ).start(),
        await StockSocket(
            node, front.url, await access(bob), "bob-ws", transports=["websocket"]
        ).start(),
        await StockSocket(
            node, front.url, await access(carol), "carol-polling", transports=["polling"]
        ).start(),
    ]
    stop = asyncio.Event()
    chatter = Chatter(front, channel.id, await access(alice))
    editors = [
        Editor(ypeers, front, note_id, await access(alice), "a"),
        Editor(ypeers, front, note_id, await access(bob), "b"),
    ]
    load = [asyncio.create_task(worker.run(stop)) for worker in (chatter, *editors)]
    try:
        await eventually(lambda: all(e.acked for e in editors) and chatter.acked, 10)
        for server in instances:
            await restart(server)
            # everybody back (and some traffic on the new process) before the next restart
            await eventually(lambda: all(s.connected() for s in sockets), 15)
            try:
                await eventually(lambda: all(e.connected() for e in editors), 15)
            except AssertionError:
                raise AssertionError([e.errors[-5:] for e in editors]) from None
            acked = len(chatter.acked), [len(e.acked) for e in editors]
            await eventually(
                lambda: (
                    len(chatter.acked) > acked[0]
                    and all(len(e.acked) > n for e, n in zip(editors, acked[1], strict=True))
                ),
                10,
            )
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)

    try:
        # every client ended connected, and each was cut over at least once
        assert all(s.connected() for s in sockets), [s.process.lines[-3:] for s in sockets]
        assert all(s.reconnects() >= 1 for s in sockets)
        assert all(e.connects >= 2 for e in editors)

        # no acked message lost: in the database, and delivered to every socket
        acked_messages = set(chatter.acked)
        assert acked_messages <= await stored_message_ids(channel.id)
        for socket in sockets:
            try:
                await eventually(lambda s=socket: acked_messages <= s.message_ids(), 10)
            except AssertionError:
                missing = acked_messages - socket.message_ids()
                order = {m: i for i, m in enumerate(chatter.acked)}
                raise AssertionError(
                    f"{socket.name} misses {sorted(order[m] for m in missing)} of "
                    f"{len(acked_messages)}; connects {socket.process.found('connect')}"
                    f" disconnects {socket.process.found('disconnect')}"
                ) from None
            assert resumed_every_time(socket), socket.process.found("connect")

        # no acked edit lost: in the database (state + update log) and in a fresh peer's sync
        acked_edits = sorted(part for e in editors for part in e.acked)
        durable = sorted_parts(text_of(await durable_doc(note_id)))
        assert set(acked_edits) <= set(durable)
        fresh = ypeers(front, note_id, await access(carol), name="fresh")
        await fresh.start()
        assert set(acked_edits) <= set(sorted_parts(text_of(fresh.doc)))
        await fresh.leave()

        # presence: exactly the three users online, as seen from both instances
        expected = {str(alice.id), str(bob.id), str(carol.id)}
        token = await access(alice)
        for server in instances:
            await eventually(lambda sv=server: _online(sv, channel.id, token, expected), 10)
    finally:
        for socket in sockets:
            await socket.stop()
        for editor in editors:
            if editor.peer is not None:
                await editor.peer.abandon()


def resumed_every_time(socket: StockSocket) -> bool:
    """Every reconnect of ``socket`` resumed its session (same id as its first connect)."""
    ids = {line["id"] for line in socket.process.found("connect")}
    return len(ids) == 1


async def _online(server: DaphneServer, channel_id: object, token: str, expected: set[str]) -> bool:
    return await server.online_ids(channel_id, token) == expected


async def test_each_instance_restarted_in_turn_loses_nothing(
    servers, clean_redis, node, ypeers, alice, bob, carol, group_channel
):
    channel = await group_channel(alice, bob, carol)
    note = await database_sync_to_async(create_note)(alice, writers=(bob,), readers=(carol,))
    a, b = servers.many(["instance-A", "instance-B"], clean_redis)
    proxy = await TcpProxy(a.port, b.port).start()
    front = Front(proxy.port)
    try:
        await roll_under_load(front, (a, b), node, (alice, bob, carol), channel, note.id, ypeers)
    finally:
        await proxy.close()

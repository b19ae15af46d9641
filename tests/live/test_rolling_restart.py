"""A rolling restart under load (docs/operations.md, "Rolling restart"): two daphne instances on
PostgreSQL + Redis behind a round-robin TCP balancer without affinity (tests/live/tcpproxy.py;
through nginx: tests/live/test_nginx_live.py), while each instance in turn gets SIGTERM, exits,
and is started again on its port, under the load of ``tests.live.rolling.roll_under_load``
(stock socket.io-clients on WebSocket and on polling alone, a chatter, two y-websocket
editors). What must hold afterwards: its docstring."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from tests.live.doc_peers import create_note
from tests.live.rolling import Front, roll_under_load
from tests.live.tcpproxy import TcpProxy

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


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

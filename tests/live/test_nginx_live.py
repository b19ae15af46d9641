"""The deployment of deploy/: nginx (Debian's package) running deploy/nginx/chorus.conf, rendered
by deploy/render.py for loopback ports of this test (tests/live/nginxproc.py), in front of two
daphne instances on PostgreSQL + Redis with ``TRUSTED_PROXIES=127.0.0.1``. Through nginx:
health, a browser-like WebSocket whose Origin is nginx's own (so ``Host`` is passed on), then
stock socket.io-clients (WebSocket, and polling alone through nginx's unbuffered
long-polls), a chatter and two y-websocket editors while each instance is restarted in turn
(``tests.live.rolling.roll_under_load``: nothing acked is lost, everybody resumes).

Without nginx (and no way to install it) the test is skipped — under ``CI=true`` it fails."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect as ws_connect

from tests.live.conftest import unavailable
from tests.live.doc_peers import create_note
from tests.live.harness import SOCKETIO_PATH
from tests.live.nginxproc import Nginx, nginx_binary
from tests.live.rolling import Front, roll_under_load

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        unavailable("nginx is needed (Debian's package; `apt-get install nginx` needs root)")
    return binary


async def test_two_instances_behind_the_deployed_nginx_site(
    servers, clean_redis, nginx, node, ypeers, alice, bob, carol, group_channel, tmp_path
):
    channel = await group_channel(alice, bob, carol)
    note = await database_sync_to_async(create_note)(alice, writers=(bob,), readers=(carol,))
    a, b = servers.many(["instance-A", "instance-B"], clean_redis, TRUSTED_PROXIES="127.0.0.1")
    proxy = Nginx(nginx, tmp_path / "nginx", [a.port, b.port]).start()
    front = Front(proxy.port, "nginx")
    try:
        status, body = await front.arequest("GET", "/readyz")
        assert status == 200 and body["status"] == "ready", body
        # A page served through nginx opens its WebSocket: its Origin matches the Host nginx
        # passes on (the Origin check would refuse it with 4403 otherwise).
        url = f"ws://127.0.0.1:{proxy.port}{SOCKETIO_PATH}/?EIO=4&transport=websocket"
        async with ws_connect(url, origin=front.url, ping_interval=None) as ws:  # type: ignore[arg-type]
            opened = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(opened, str) and opened.startswith("0{"), opened

        await roll_under_load(front, (a, b), node, (alice, bob, carol), channel, note.id, ypeers)
    finally:
        proxy.stop()
        if proxy.process is not None and proxy.process.returncode not in (0, None):
            raise AssertionError(proxy.log_tail())

"""``/healthz`` and ``/readyz`` (config/health.py) and the drain's first phase on a real daphne:
what a load balancer sees, and what a new or open socket gets, between SIGTERM and exit.

The rolling restart under load is tests/live/test_rolling_restart.py."""

from __future__ import annotations

import asyncio
import signal

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.live.harness import access, eventually, free_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


async def test_healthz_and_readyz_answer_json(server):
    assert await server.arequest("GET", "/healthz") == (200, {"status": "ok"})
    status, body = await server.arequest("GET", "/readyz")
    assert status == 200, body
    assert body == {"status": "ready", "checks": {"database": "ok", "channel_layer": "ok"}}
    status, body = await server.arequest("POST", "/readyz", body={})
    assert (status, body) == (405, {"error": {"code": "method_not_allowed"}})


@pytest.mark.services
async def test_readyz_checks_redis_and_names_what_fails(servers, clean_redis):
    up = servers("with-redis", clean_redis)
    status, body = await up.arequest("GET", "/readyz")
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "redis": "ok", "channel_layer": "ok"}

    nowhere = f"redis://127.0.0.1:{free_port()}/13"  # nothing listens there
    down = servers("redis-down", nowhere)
    status, body = await down.arequest("GET", "/readyz")
    assert status == 503, body
    assert body["code"] == "not_ready" and body["status"] == "unready"
    assert body["checks"]["database"] == "ok"
    assert set(body["failing"]) == {"redis", "channel_layer"}
    assert "127.0.0.1" not in str(body)  # parts and states only, no addresses or errors
    assert (await down.arequest("GET", "/readyz"))[0] == 503
    # logged once, when readiness changed; not again for every probe
    assert down.log_tail(200).count("Not ready: redis failed, channel_layer") == 1
    assert await down.arequest("GET", "/healthz") == (200, {"status": "ok"})


async def test_sigterm_turns_not_ready_refuses_new_sockets_then_closes_open_ones(
    servers, raw_sockets, alice
):
    """With DRAIN_WINDOW: not ready and refusing new sockets, open ones served, for the
    window; then the open socket is closed 1001 (a stock client reconnects and resumes) and
    the process exits 0."""
    server = servers(DRAIN_WINDOW=2)
    token = await access(alice)
    open_socket = await raw_sockets(server).handshake(token)

    server.process.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        return await server.arequest("GET", "/readyz") == (
            503,
            {"status": "draining", "code": "draining"},
        )

    await eventually(draining, timeout=2)
    async with ws_connect(server.ws_url, ping_interval=None) as refused:
        with pytest.raises(Exception) as closed:
            await asyncio.wait_for(refused.recv(), 5)
    assert closed.value.rcvd.code == 1013, closed.value
    status, body = await server.arequest("GET", "/ws/socket.io/?EIO=4&transport=polling")
    assert status == 503, body
    # The open socket is still served in the window (a ping answered by its ack).
    await open_socket.ws.send('421["heartbeat",{}]')
    ack = await open_socket.next_frame(lambda frame: frame == "431[{}]")
    assert ack == "431[{}]"

    code, reason = await open_socket.closed_by_server(timeout=10)
    assert (code, reason) == (1001, "server restarting")
    assert await asyncio.to_thread(server.process.wait, 15) == 0

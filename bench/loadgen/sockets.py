"""Socket commands: open and authenticate many Socket.IO sockets (``connect``: over
WebSocket, or HTTP long-polling) or the broadcast sender (``connect_sender``), have every
socket emit one event with an ack (``emit_all``), close everything (``close_all``), count the
polling requests (``polling_report``)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from bench.loadgen.clients import Client, SioClient, YwsClient
from bench.loadgen.polling import PollingClient
from bench.loadgen.wire import now_ns
from bench.loadgen.worker import Worker


@dataclass
class Tally:
    """Successes, failures and the first few failure texts of one command."""

    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def hello(worker: Worker, msg: dict) -> dict:
    return {"pid": os.getpid()}


async def connect(worker: Worker, msg: dict) -> dict:
    """Open and authenticate one Socket.IO socket per entry, ``concurrency`` at a time:
    WebSockets to ``url``, or with ``transport: "polling"`` polling sessions (``client_for``)."""
    gate = asyncio.Semaphore(msg.get("concurrency", 50))
    deadline = time.monotonic() + msg.get("timeout", 120)
    tally = Tally()
    t0 = now_ns()
    await asyncio.gather(
        *(open_socket(worker, msg, entry, gate, deadline, tally) for entry in msg["entries"])
    )
    return {
        "ok": tally.ok,
        "failed": tally.failed,
        "errors": tally.errors,
        "t0": t0,
        "t1": now_ns(),
    }


def client_for(worker: Worker, msg: dict, entry: dict) -> tuple[SioClient, str]:
    """A new client for ``entry`` and the URL it opens: a WebSocket to ``msg["url"]``; or a
    polling session whose handshake goes to the instances of ``msg["urls"]`` in turn, and
    every later request to the same instance — or with ``msg["cross"]`` to the next one, so
    that each request reaches an instance the session does not live on."""
    if msg.get("transport") != "polling":
        return SioClient(worker, entry["token"], entry), msg["url"]
    urls = msg["urls"]
    k = worker.polling_opened
    worker.polling_opened += 1
    home = urls[k % len(urls)]
    via = urls[(k + 1) % len(urls)] if msg.get("cross") else home
    return PollingClient(worker, entry["token"], entry, via), home


async def open_socket(
    worker: Worker, msg: dict, entry: dict, gate: asyncio.Semaphore, deadline: float, tally: Tally
) -> None:
    """One socket for ``entry`` (token and metadata), kept by the worker if it connected."""
    async with gate:
        client, url = client_for(worker, msg, entry)
        try:
            remaining = max(1.0, deadline - time.monotonic())
            await asyncio.wait_for(client.open(url), remaining)
        except Exception as error:
            tally.failed += 1
            if len(tally.errors) < 5:
                tally.errors.append(f"{type(error).__name__}: {error}"[:300])
            await client.close()
            return
        tally.ok += 1
        worker.sockets.append(client)


async def connect_sender(worker: Worker, msg: dict) -> dict:
    client = SioClient(worker, msg["token"], {})
    await client.open(msg["url"])
    worker.sender = client
    return {"ok": 1}


async def emit_all(worker: Worker, msg: dict) -> dict:
    """Every socket (and the sender) emits ``event`` with an ack; counts ok / errors."""
    gate = asyncio.Semaphore(msg.get("concurrency", 100))
    targets = list(worker.sockets) + ([worker.sender] if worker.sender else [])
    tally = Tally()
    await asyncio.gather(*(emit_one(client, msg, gate, tally) for client in targets))
    return {"ok": tally.ok, "errors": tally.failed, "sample": tally.errors[:5]}


async def emit_one(client: SioClient, msg: dict, gate: asyncio.Semaphore, tally: Tally) -> None:
    """``client`` emits ``msg["event"]`` (with its token if ``with_token``); the ack counted."""
    data = msg["data"]
    if msg.get("with_token"):
        data = {**data, "auth": {"token": client.token}}
    async with gate:
        try:
            ack = await client.call(msg["event"], data, timeout=msg.get("timeout", 60))
        except Exception as error:
            tally.failed += 1
            tally.errors.append(f"{type(error).__name__}: {error}"[:200])
            return
    if '"error"' in ack[:20]:
        tally.failed += 1
        tally.errors.append(ack[:200])
    else:
        tally.ok += 1


async def close_all(worker: Worker, msg: dict) -> dict:
    """Close every socket, the sender and the y-websocket editors; forget them."""
    clients: list[Client] = [*worker.sockets, *([worker.sender] if worker.sender else [])]
    clients += [e.client for e in worker.editors if isinstance(e.client, YwsClient)]
    for client in clients:
        client.closing = True
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    worker.sockets.clear()
    worker.sender = None
    worker.editors.clear()
    worker.editors_by_index.clear()
    worker.groups.clear()
    return {"closed": len(clients)}


async def polling_report(worker: Worker, msg: dict) -> dict:
    """The polling requests sent since the worker started: all of them after the handshakes,
    and those sent to another instance than the session's handshake."""
    return {"requests": worker.http_requests, "elsewhere": worker.http_elsewhere}

"""Broadcast commands: the sender's typing events to the broadcast channel
(``broadcast_send``), and the receivers' records of them (``reset_recv``, ``recv_report``;
the records are kept by ``Worker.on_event``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.loadgen.clients import SioClient
from bench.loadgen.wire import msg_id, now_ns
from bench.loadgen.worker import Worker


async def reset_recv(worker: Worker, msg: dict) -> dict:
    worker.recv.clear()
    worker.recv_dups = worker.recv_total = worker.other_events = 0
    for client in worker.sockets:
        client.seen.clear()
    return {}


async def recv_report(worker: Worker, msg: dict) -> dict:
    """Totals of what the sockets received; with ``full`` the per-sequence records."""
    report: dict[str, Any] = {
        "total": worker.recv_total,
        "dups": worker.recv_dups,
        "other_events": worker.other_events,
        "unexpected_closes": worker.unexpected_closes,
        "receivers": len(worker.sockets),
    }
    if msg.get("full"):
        report["per_seq"] = worker.recv
    return report


def typing_body(channel: str, seq: int) -> str:
    """The ``events:channel`` typing event (alternating true/false) carrying ``seq``."""
    typing = "true" if seq % 2 else "false"
    return (
        '["events:channel",{"channel_id":"'
        + channel
        + '","message_id":"'
        + msg_id(seq)
        + '","data":{"type":"typing","data":{"typing":'
        + typing
        + "}}}]"
    )


class BurstSender:
    """The sender's closed loop: at most ``window`` events whose ack has not arrived."""

    def __init__(self, worker: Worker, client: SioClient, channel: str, window: int) -> None:
        self.worker = worker
        self.client = client
        self.channel = channel
        self.window = asyncio.Semaphore(window)
        self.tasks: list[asyncio.Task] = []

    async def send(self, seq: int) -> int:
        """Wait for room in the window, then send ``seq`` (its ack awaited in a task); the
        send time, ns."""
        await self.window.acquire()
        sent = now_ns()
        self.tasks.append(asyncio.create_task(self._call(seq)))
        return sent

    async def wait(self, timeout: float) -> None:
        """Wait (``timeout`` s at most) for the acks of every event sent."""
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)

    async def _call(self, seq: int) -> None:
        worker = self.worker
        try:
            worker.check_ack(await self.client.call_frame(typing_body(self.channel, seq)))
        except Exception as error:
            worker.ack_errors += 1
            worker.ack_error_sample.append(f"{type(error).__name__}: {error}"[:200])
        finally:
            self.window.release()


async def broadcast_send(worker: Worker, msg: dict) -> dict:
    """The sender emits ``count`` typing events (alternating true/false) to the channel.

    burst: closed loop on the sender's ack (``window`` acks outstanding);
    paced: one every 1/rate s, acks collected in the background.
    """
    client = worker.sender
    if client is None:
        raise RuntimeError("no sender: connect_sender comes first")
    channel = msg["channel_id"]
    seq0, count = msg["seq0"], msg["count"]
    sends: dict[int, int] = {}
    burst = BurstSender(worker, client, channel, msg.get("window", 1))
    errors_before = worker.ack_errors
    deadline = time.monotonic() + msg.get("timeout", 120)
    interval = 1.0 / msg["rate"] if msg.get("mode") == "paced" else 0.0
    start = time.monotonic()
    for k in range(count):
        if time.monotonic() > deadline:
            break
        seq = seq0 + k
        if interval:
            delay = start + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sends[seq] = now_ns()
            client.emit(typing_body(channel, seq), worker.ack_cb)
        else:
            sends[seq] = await burst.send(seq)
    await burst.wait(max(1.0, deadline - time.monotonic()))
    return {"sends": sends, "ack_errors": worker.ack_errors - errors_before}

"""The ``loop`` command: every socket runs a closed request/ack loop (``window`` requests in
flight) for ``duration`` s; count, latencies and refused acks.

Each in-flight slot is a ``Lane``, driven from its ack callback: the next request leaves as
soon as the ack is read, with no task switch per round trip."""

from __future__ import annotations

import asyncio
import time

from bench.loadgen.clients import SioClient
from bench.loadgen.wire import now_ns, sample
from bench.loadgen.worker import Worker


class AckLoop:
    """What the lanes of one ``loop`` command share: the end time, the counts, and a future
    set when the last lane has finished."""

    def __init__(self, worker: Worker, end_at: float, lanes: int) -> None:
        self.worker = worker
        self.end_at = end_at
        self.latencies: list[int] = []
        self.count = 0
        self.lanes_left = lanes
        self.finished: asyncio.Future = asyncio.get_running_loop().create_future()

    def lane_done(self) -> None:
        self.lanes_left -= 1
        if self.lanes_left == 0 and not self.finished.done():
            self.finished.set_result(None)


def loop_bodies(client: SioClient, event: str) -> list[str]:
    """The two alternating request bodies of ``client``'s lanes: ``heartbeat`` ``{}``, or
    typing true / false to the socket's own one-member channel (``meta["solo"]``)."""
    if event == "heartbeat":
        return ['["heartbeat",{}]'] * 2
    head = '["events:channel",{"channel_id":"' + client.meta["solo"] + '",'
    return [
        head + '"data":{"type":"typing","data":{"typing":true}}}]',
        head + '"data":{"type":"typing","data":{"typing":false}}}]',
    ]


class Lane:
    """One request in flight on one socket, re-sent from its own ack until the loop ends."""

    def __init__(self, loop: AckLoop, client: SioClient, bodies: list[str]) -> None:
        self.loop = loop
        self.client = client
        self.bodies = bodies
        self.flip = 0
        self.sent_at = 0

    def send(self) -> None:
        self.flip ^= 1
        self.sent_at = now_ns()
        self.client.emit(self.bodies[self.flip], self.on_ack)

    def on_ack(self, ack: str | None) -> None:
        loop, worker = self.loop, self.loop.worker
        if ack is None:
            worker.ack_errors += 1
            if len(worker.ack_error_sample) < 5:
                worker.ack_error_sample.append("socket closed before the ack")
            loop.lane_done()
            return
        loop.latencies.append((now_ns() - self.sent_at) // 1000)
        loop.count += 1
        if '"error"' in ack[:20]:
            worker.check_ack(ack)
        if time.monotonic() < loop.end_at:
            self.send()
        else:
            loop.lane_done()


async def run_loop(worker: Worker, msg: dict) -> dict:
    """Every socket runs a closed request/ack loop (``window`` in flight) for ``duration``.

    event ``heartbeat``: ``{}``; event ``typing``: ``events:channel`` typing (alternating
    true/false) to the socket's own one-member channel (``entry["solo"]``)."""
    duration = msg["duration"]
    window = msg.get("window", 1)
    errors_before = worker.ack_errors
    start_at = time.monotonic() + msg.get("start_delay", 0.0)
    loop = AckLoop(worker, start_at + duration, len(worker.sockets) * window)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    t0 = now_ns()
    if not worker.sockets:
        loop.finished.set_result(None)
    for client in worker.sockets:
        bodies = loop_bodies(client, msg["event"])
        for _ in range(window):
            Lane(loop, client, bodies).send()
    try:
        await asyncio.wait_for(loop.finished, duration + 30)
    except TimeoutError:
        worker.errors.append(f"loop: {loop.lanes_left} lanes never finished")
    return {
        "count": loop.count,
        "t0": t0,
        "t1": now_ns(),
        "lat_us": sample(loop.latencies),
        "errors": worker.ack_errors - errors_before,
        "error_sample": worker.ack_error_sample[:5],
        "unexpected_closes": worker.unexpected_closes,
    }

"""The receiving side of the ``server-publish`` suite: the ``events`` a publisher in another
process sent to one user's sockets (``on_published``, called by ``Worker.on_event``), and the
commands that clear and report them (``pub_reset``, ``pub_report``).

Each event carries its index ``i`` (0, 1, …), the publisher's send time ``t``
(``time.monotonic_ns``: the same clock in every process of the machine) and ``after``: the
number of events whose request the publisher had seen answered (all of 0 … after-1) before it
sent this one. An event that arrives on a socket before one of those is out of order — the
only order a publisher with several requests in flight can expect."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bench.loadgen.wire import now_ns, sample

if TYPE_CHECKING:
    from bench.loadgen.clients import SioClient
    from bench.loadgen.worker import Worker


class Received:
    """What one worker's sockets received of the published events."""

    def __init__(self) -> None:
        self.per_event: dict[int, list[int]] = {}  # i -> [sockets, first ns, last ns, sent ns]
        self.lat_us: list[int] = []  # send -> delivery, per delivery
        self.total = 0
        self.dups = 0
        self.out_of_order = 0
        self.out_of_order_sample: list[str] = []
        self.seen: dict[int, set[int]] = {}  # per socket (id of the client): indexes received
        self.prefix: dict[int, int] = {}  # per socket: every index below it has arrived


def on_published(worker: Worker, client: SioClient, frame: str) -> None:
    """One ``events`` frame on ``client``: counted, timed, checked for duplicates and order."""
    t = now_ns()
    try:
        body = json.loads(frame[2:])[1]["data"]["data"]
        i, sent, after = body["i"], body["t"], body["after"]
    except (ValueError, KeyError, IndexError, TypeError):
        worker.other_events += 1
        return
    rec = worker.published
    key = id(client)
    seen = rec.seen.setdefault(key, set())
    if i in seen:
        rec.dups += 1
        return
    prefix = rec.prefix.get(key, 0)
    if prefix < after:  # an event answered before this one was sent has not arrived yet
        rec.out_of_order += 1
        if len(rec.out_of_order_sample) < 5:
            rec.out_of_order_sample.append(f"event {i} (after {after}) before event {prefix}")
    seen.add(i)
    while prefix in seen:
        prefix += 1
    rec.prefix[key] = prefix
    rec.total += 1
    rec.lat_us.append((t - sent) // 1000)
    entry = rec.per_event.get(i)
    if entry is None:
        rec.per_event[i] = [1, t, t, sent]
    else:
        entry[0] += 1
        entry[2] = t


async def pub_reset(worker: Worker, msg: dict) -> dict:
    worker.published = Received()
    worker.other_events = 0
    return {}


async def pub_report(worker: Worker, msg: dict) -> dict:
    """Totals; with ``full`` the per-event records and a sample of the latencies."""
    rec = worker.published
    report: dict[str, Any] = {
        "total": rec.total,
        "dups": rec.dups,
        "out_of_order": rec.out_of_order,
        "out_of_order_sample": rec.out_of_order_sample,
        "other_events": worker.other_events,
        "unexpected_closes": worker.unexpected_closes,
    }
    if msg.get("full"):
        report["per_event"] = rec.per_event
        report["lat_us"] = sample(rec.lat_us)
    return report

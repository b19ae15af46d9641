"""The broadcast phases of the fanout suite: the sender's typing events to a channel every
connected socket is a member of, in bursts (closed loop on the sender's acks) and paced (a
fixed rate well under capacity), with the time until every member has each message."""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.config import log
from bench.measures import pct
from bench.suites.context import Context, measured


async def drain_broadcast(ctx: Context, expected: int, limit: float) -> list[dict]:
    """Wait (``limit`` s at most) until ``expected`` deliveries arrived; the full reports."""
    deadline = time.monotonic() + limit
    while True:
        reports = await ctx.workers.all({"cmd": "recv_report"})
        if sum(r["total"] for r in reports) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return await ctx.workers.all({"cmd": "recv_report", "full": True})


def broadcast_stats(sends: dict[int, int], reports: list[dict], receivers: int) -> dict:
    """Deliveries, losses and per-message completion times from the send times and the load
    generators' receive reports (``_completion_ms``: the raw completion times)."""
    per_seq: dict[int, list[int]] = {}
    for report in reports:
        for seq, (count, first, last) in report["per_seq"].items():
            entry = per_seq.setdefault(int(seq), [0, first, last])
            entry[0] += count
            entry[1] = min(entry[1], first)
            entry[2] = max(entry[2], last)
    total = sum(r["total"] for r in reports)
    expected = len(sends) * receivers
    completion_ms = []
    for seq, sent in sends.items():
        received = per_seq.get(seq)
        if received and received[0] >= receivers:
            completion_ms.append((received[2] - sent) / 1e6)
    t_first = min(sends.values()) if sends else 0
    t_last = max((e[2] for e in per_seq.values()), default=t_first)
    span = (t_last - t_first) / 1e9
    return {
        "messages": len(sends),
        "receivers": receivers,
        "expected": expected,
        "delivered": total,
        "missing": expected - total,
        "dups": sum(r["dups"] for r in reports),
        "seconds": span,
        "deliveries_per_s": total / span if span > 0 else None,
        "complete_p50_ms": pct(completion_ms, 50),
        "complete_p99_ms": pct(completion_ms, 99),
        "complete_max_ms": max(completion_ms, default=None),
        "unexpected_closes": sum(r["unexpected_closes"] for r in reports),
        "_completion_ms": completion_ms,
    }


async def send_and_drain(
    ctx: Context, receivers: int, spec: dict, limit: float
) -> tuple[dict, list[dict]]:
    """The sender sends as ``spec`` says; then the receivers' reports once all arrived."""
    send = await ctx.workers.one(
        0, {"cmd": "broadcast_send", "channel_id": ctx.fixture["broadcast_channel"], **spec}
    )
    expected = len(send["sends"]) * receivers
    return send, await drain_broadcast(ctx, expected, limit)


async def burst_phases(ctx: Context, n: int) -> None:
    """``cfg.bursts`` bursts to ``n`` receivers; the median rate as ``broadcast_burst``."""
    cfg = ctx.cfg
    bursts = []
    for b in range(cfg.bursts):
        await ctx.workers.all({"cmd": "reset_recv"})
        spec = {
            "seq0": (b + 1) * 1_000_000,
            "count": cfg.burst_msgs,
            "mode": "burst",
            "window": cfg.burst_window,
        }
        (send, reports), _wall, srv_cpu, gen_cpu = await measured(
            ctx,
            send_and_drain(ctx, n, spec, cfg.drain_s + cfg.burst_msgs * n / 2000),
            f"burst{b + 1}",
        )
        sends = {int(k): v for k, v in send["sends"].items()}
        stats = broadcast_stats(sends, reports, n)
        stats["ack_errors"] = send["ack_errors"]
        stats["server_cpu"], stats["loadgen_cpu"] = srv_cpu, gen_cpu
        stats.pop("_completion_ms")
        bursts.append(stats)
        log(
            f"  burst {b + 1}: {stats['delivered']}/{stats['expected']} in {stats['seconds']:.2f}s"
            f" = {stats['deliveries_per_s'] or 0:.0f} deliveries/s (server CPU "
            f"{stats['server_cpu']:.0%}, loadgen {stats['loadgen_cpu']:.0%})"
        )
        await ctx.server.wait_idle()
    rates = [b["deliveries_per_s"] or 0 for b in bursts]
    missing = sum(b["missing"] for b in bursts)
    ctx.result["broadcast_burst"] = {
        "runs": bursts,
        "deliveries_per_s": statistics.median(rates),
        "spread": [min(rates), max(rates)],
        "missing": missing,
        "dups": sum(b["dups"] for b in bursts),
        "ack_errors": sum(b["ack_errors"] for b in bursts),
        "server_cpu": statistics.median(b["server_cpu"] for b in bursts),
        "loadgen_cpu": statistics.median(b["loadgen_cpu"] for b in bursts),
    }
    if missing:
        ctx.problem("broadcast_burst", f"LOSS: {missing} deliveries missing")


async def paced_phase(ctx: Context, n: int) -> None:
    """A fixed rate well under capacity; time until every member has each message."""
    cfg = ctx.cfg
    await ctx.workers.all({"cmd": "reset_recv"})
    spec = {"seq0": 9_000_000, "count": cfg.paced_msgs, "mode": "paced", "rate": cfg.paced_rate}
    (send, reports), _wall, srv_cpu, gen_cpu = await measured(
        ctx, send_and_drain(ctx, n, spec, cfg.drain_s), "paced"
    )
    sends = {int(k): v for k, v in send["sends"].items()}
    stats = broadcast_stats(sends, reports, n)
    completion = stats.pop("_completion_ms")
    stats["late"] = sum(1 for c in completion if c > cfg.late_ms)
    stats["ack_errors"] = send["ack_errors"]
    stats["rate_msgs_per_s"] = cfg.paced_rate
    stats["server_cpu"], stats["loadgen_cpu"] = srv_cpu, gen_cpu
    ctx.result["broadcast_paced"] = stats
    log(
        f"  paced {cfg.paced_rate}/s x {n}: p50 {stats['complete_p50_ms']} ms, p99 "
        f"{stats['complete_p99_ms']} ms until all have it; missing {stats['missing']}, "
        f"late {stats['late']}"
    )
    if stats["missing"]:
        ctx.problem("broadcast_paced", f"LOSS: {stats['missing']} deliveries missing")

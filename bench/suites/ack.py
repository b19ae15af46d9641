"""The ``ack`` suite: ACK sockets, each in a closed request/ack loop of ``typing`` events to
its own one-member channel for ``ack_s``; round trips/s and latency."""

from __future__ import annotations

from bench.config import log
from bench.measures import pct
from bench.suites.context import Context, measured, warm_up
from bench.workers import split


async def suite_ack(ctx: Context) -> None:
    cfg = ctx.cfg
    await warm_up(ctx)
    parts = split(ctx.entries(cfg.ack_sockets), ctx.workers.count)
    replies = await ctx.workers.all(
        [{"cmd": "connect", "url": ctx.sio_url, "entries": p, "concurrency": 25} for p in parts]
    )
    ok = sum(r["ok"] for r in replies)
    joins = await ctx.workers.all(
        {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    if ok != cfg.ack_sockets or sum(j["ok"] for j in joins) != ok:
        ctx.problem("ack", f"only {ok} sockets connected / joined")
    await ctx.server.wait_idle()
    replies, _wall, srv_cpu, gen_cpu = await measured(
        ctx,
        ctx.workers.all(
            {
                "cmd": "loop",
                "event": "typing",
                "duration": cfg.ack_s,
                "window": 1,
                "start_delay": 0.2,
            }
        ),
        "ack",
    )
    count = sum(r["count"] for r in replies)
    span = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    lat = [v / 1000 for r in replies for v in r["lat_us"]]
    errors = sum(r["errors"] for r in replies)
    ctx.result["ack"] = {
        "sockets": ok,
        "count": count,
        "seconds": span,
        "per_s": count / span,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "errors": errors,
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
    }
    if errors:
        ctx.problem("ack", f"{errors} acks failed: {replies[0]['error_sample'][:2]}")
    log(
        f"  ack: {count} in {span:.1f}s = {count / span:.0f}/s, p50 {pct(lat, 50)} ms, p99 "
        f"{pct(lat, 99)} ms (server CPU {srv_cpu:.0%}, loadgen {gen_cpu:.0%})"
    )

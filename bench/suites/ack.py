"""The ``ack`` suite: ACK sockets, each in a closed request/ack loop of ``typing`` events to
its own one-member channel for ``ack_s``; round trips/s and latency. ``ack_loop`` is the
suite's body for either transport (``ack-polling``: bench/suites/ack_polling.py)."""

from __future__ import annotations

from bench.config import log
from bench.measures import pct
from bench.suites.context import Context, measured, polling_requests, request_stats, warm_up
from bench.workers import split


async def suite_ack(ctx: Context) -> None:
    await ack_loop(ctx, "ack")


async def ack_loop(
    ctx: Context, metric: str, transport: str = "websocket", label: str = ""
) -> None:
    """Connect ACK sockets over ``transport``, join each to its channel, run the loop; the
    result as ``metric`` (the phase's label: ``label``, else ``metric``), over polling with
    the HTTP requests the loop took."""
    cfg = ctx.cfg
    await warm_up(ctx, transport)
    parts = split(ctx.entries(cfg.ack_sockets), ctx.workers.count)
    replies = await ctx.workers.all([ctx.connect_command(p, 25, transport) for p in parts])
    ok = sum(r["ok"] for r in replies)
    joins = await ctx.workers.all(
        {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    if ok != cfg.ack_sockets or sum(j["ok"] for j in joins) != ok:
        ctx.problem(metric, f"only {ok} sockets connected / joined")
    await ctx.server.wait_idle()
    polling = transport == "polling"
    before = await polling_requests(ctx) if polling else (0, 0)
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
        label or metric,
    )
    count = sum(r["count"] for r in replies)
    span = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    lat = [v / 1000 for r in replies for v in r["lat_us"]]
    errors = sum(r["errors"] for r in replies)
    closes = sum(r["unexpected_closes"] for r in replies)
    ctx.result[metric] = {
        "sockets": ok,
        "count": count,
        "seconds": span,
        "per_s": count / span,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "errors": errors,
        "unexpected_closes": closes,
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
    }
    if polling:
        after = await polling_requests(ctx)
        ctx.result[metric].update(request_stats(before, after, count, "round_trip"))
    if errors:
        ctx.problem(metric, f"{errors} acks failed: {replies[0]['error_sample'][:2]}")
    if closes:
        ctx.problem(metric, f"{closes} sockets closed by the server")
    log(
        f"  {metric}: {count} in {span:.1f}s = {count / span:.0f}/s, p50 {pct(lat, 50)} ms, "
        f"p99 {pct(lat, 99)} ms (server CPU {srv_cpu:.0%}, loadgen {gen_cpu:.0%})"
    )

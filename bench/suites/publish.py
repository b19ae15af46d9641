"""The ``server-publish`` suite (issue 18): a publisher in a process of its own sends
``events`` to every socket of one user, through the server's Redis — Chorus's HTTP server API
(``POST /api/server/users/<id>/events/``) or python-socketio's write-only
``AsyncRedisManager`` emitter (Open WebUI's workers) — while the load generator's sockets of
that user count what arrives. Bursts (as fast as the publisher's window allows: events/s and
the time until every socket had each event), then a paced phase well under capacity (latency
from the publisher's send to each delivery). bench/loadgen/publisher.py publishes,
bench/loadgen/published.py receives."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time

from bench.config import PYTHON, log
from bench.measures import pct
from bench.servers import sio_channel
from bench.suites.context import Context, measured, warm_up
from bench.workers import Workers, split

METRIC = "server_publish"


def api_key(ctx: Context) -> str:
    """A new publish-scoped API key from Chorus's own command, in the server's environment
    (printed once on stdout; never logged here)."""
    done = subprocess.run(
        [PYTHON, "manage.py", "create_api_key", "--name", "bench-publish", "--scope", "publish"],
        cwd=ctx.server.chorus_root,
        env=ctx.server.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def publisher_job(ctx: Context, user_id: str) -> dict:
    """The publisher's ``setup``: Chorus's HTTP API, or python-socketio's Redis emitter on
    the server's channel."""
    window = ctx.cfg.publish_window
    if ctx.spec.kind == "chorus":
        return {
            "cmd": "setup",
            "kind": "chorus",
            "url": f"http://127.0.0.1:{ctx.server.port}",
            "key": api_key(ctx),
            "user": user_id,
            "window": window,
        }
    return {
        "cmd": "setup",
        "kind": "sio",
        "redis_url": ctx.server.env["BENCH_REDIS_URL"],
        "channel": sio_channel(ctx.server.port),
        "user": user_id,
        "window": window,
    }


async def suite_server_publish(ctx: Context) -> None:
    cfg = ctx.cfg
    await warm_up(ctx)
    user = ctx.fixture["users"][0]
    entry = {"token": user["token"], "id": user["id"], "name": user["name"]}
    parts = split([entry] * cfg.publish_sockets, ctx.workers.count)
    replies = await ctx.workers.all([ctx.connect_command(p, 10) for p in parts])
    joins = await ctx.workers.all(
        {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    ok = sum(r["ok"] for r in replies)
    if ok != cfg.publish_sockets or sum(j["ok"] for j in joins) != ok:
        ctx.problem(METRIC, f"only {ok} of {cfg.publish_sockets} sockets connected / joined")
    publisher = Workers(1, module="bench.loadgen.publisher")
    await publisher.start()
    try:
        await publisher.one(0, publisher_job(ctx, user["id"]))
        ctx.publisher = publisher
        if not cfg.quick:  # the server's publish path loaded before anything is measured
            warm = {"cmd": "run", "mode": "burst", "count": 50, "rate": 0, "timeout": 30}
            await publisher.one(0, warm)
        await ctx.server.wait_idle()
        bursts = []
        for b in range(cfg.publish_bursts):
            run = {
                "mode": "burst",
                "count": cfg.publish_burst,
                "duration": cfg.publish_burst_s,
                "rate": 0,
            }
            bursts.append(await publish_phase(ctx, publisher, run, f"publish-burst{b + 1}", ok))
            await ctx.server.wait_idle()
        run = {"mode": "paced", "count": cfg.publish_paced, "rate": cfg.publish_rate}
        paced = await publish_phase(ctx, publisher, run, "publish-paced", ok)
    finally:
        ctx.publisher = None
        await publisher.stop()
    rates = [b["events_per_s"] or 0 for b in bursts]
    middle = bursts[rates.index(statistics.median_low(rates))]
    ctx.result[METRIC] = {
        "sockets": ok,
        "window": cfg.publish_window,
        "burst": {**middle, "spread": [min(rates), max(rates)], "runs": bursts},
        "paced": paced,
    }


async def publish_phase(
    ctx: Context, publisher: Workers, run: dict, label: str, sockets: int
) -> dict:
    """One publisher run; what every socket received, checked and timed."""
    cfg = ctx.cfg
    await ctx.workers.all({"cmd": "pub_reset"})
    # after its last send the publisher waits (drain_s at most) for the window's answers;
    # the sending lasts the burst's duration, or count / rate (as if 20/s, if slower)
    sending = run.get("duration") or run["count"] / min(run["rate"] or 20, 20)
    timeout, limit = cfg.drain_s, sending + cfg.drain_s + 30

    async def publish_and_drain() -> tuple[dict, list[dict]]:
        sent = await publisher.one(0, {"cmd": "run", **run, "timeout": timeout}, limit)
        expected = sent["sent"] * sockets
        deadline = time.monotonic() + cfg.drain_s
        while time.monotonic() < deadline:
            reports = await ctx.workers.all({"cmd": "pub_report"})
            if sum(r["total"] for r in reports) >= expected:
                break
            await asyncio.sleep(0.1)
        return sent, await ctx.workers.all({"cmd": "pub_report", "full": True})

    (sent, reports), _wall, srv_cpu, gen_cpu = await measured(ctx, publish_and_drain(), label)
    stats = phase_stats(sent, reports, sockets, cfg.late_ms)
    expected = stats["expected"]
    stats["server_cpu"], stats["loadgen_cpu"] = srv_cpu, gen_cpu
    stats["publisher_cpu"] = ctx.result["cpu"][label].get("publisher")
    stats["rate"] = run["rate"] or None
    log(
        f"  {label}: {stats['delivered']}/{expected} deliveries, "
        f"{stats['events_per_s'] or 0:.0f} events/s ({stats['deliveries_per_s'] or 0:.0f} "
        f"deliveries/s), all-have-it p50 {stats['complete_p50_ms']} p99 "
        f"{stats['complete_p99_ms']} ms, delivery p50 {stats['p50_ms']} p99 {stats['p99_ms']} ms"
        f" (server CPU {srv_cpu:.0%}, loadgen {gen_cpu:.0%}, publisher "
        f"{stats['publisher_cpu'] or 0:.0%})"
    )
    if stats["behind"]:
        log(
            f"  {label}: {stats['behind']} of {stats['events']} events sent late (the window "
            "was full): the rate is above this server's capacity, the latencies include the queue"
        )
    if stats["missing"]:
        ctx.problem(METRIC, f"LOSS: {stats['missing']} deliveries missing ({label})")
    if stats["dups"]:
        ctx.problem(METRIC, f"{stats['dups']} deliveries duplicated ({label})")
    if stats["out_of_order"]:
        ctx.problem(
            METRIC,
            f"{stats['out_of_order']} deliveries out of order ({label}): "
            f"{stats['out_of_order_sample'][:2]}",
        )
    if stats["errors"]:
        ctx.problem(METRIC, f"{stats['errors']} publishes failed ({label}): {sent['error_sample']}")
    if stats["unexpected_closes"]:
        ctx.problem(METRIC, f"{stats['unexpected_closes']} sockets closed by the server")
    return stats


def phase_stats(sent: dict, reports: list[dict], sockets: int, late_ms: float) -> dict:
    """Deliveries, losses, order, rates and latencies of one phase from the publisher's
    reply and the load generators' full reports."""
    per_event: dict[int, list[int]] = {}
    for report in reports:
        for i, (count, first, last, sent_ns) in report["per_event"].items():
            entry = per_event.setdefault(int(i), [0, first, last, sent_ns])
            entry[0] += count
            entry[1] = min(entry[1], first)
            entry[2] = max(entry[2], last)
    events = sent["sent"]
    expected = events * sockets
    delivered = sum(r["total"] for r in reports)
    complete_ms = [(e[2] - e[3]) / 1e6 for e in per_event.values() if e[0] >= sockets]
    lat_ms = [v / 1000 for r in reports for v in r["lat_us"]]
    t_last = max((e[2] for e in per_event.values()), default=sent["t0"])
    span = (t_last - sent["t0"]) / 1e9
    return {
        "events": events,
        "sockets": sockets,
        "expected": expected,
        "delivered": delivered,
        "missing": expected - delivered,
        "dups": sum(r["dups"] for r in reports),
        "out_of_order": sum(r["out_of_order"] for r in reports),
        "out_of_order_sample": [s for r in reports for s in r["out_of_order_sample"]][:5],
        "errors": sent["errors"],
        "behind": sent["behind"],
        "seconds": span,
        # events every socket received, per second, from the first send to the last delivery
        "events_per_s": delivered / sockets / span if span > 0 else None,
        "deliveries_per_s": delivered / span if span > 0 else None,
        "complete_p50_ms": pct(complete_ms, 50),
        "complete_p99_ms": pct(complete_ms, 99),
        "p50_ms": pct(lat_ms, 50),
        "p99_ms": pct(lat_ms, 99),
        "max_ms": max(lat_ms, default=None),
        "late": sum(1 for v in lat_ms if v > late_ms),
        "unexpected_closes": sum(r["unexpected_closes"] for r in reports),
        "publisher_cpu_s": sent["cpu_s"],
    }

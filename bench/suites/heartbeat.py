"""The heartbeat storm of the fanout suite: every socket sends ``heartbeat`` in a closed loop
for ``heartbeat_s``; rate, latency, and (Chorus) the ``last_active_at`` writes it caused,
judged per user against ``LAST_ACTIVE_WRITE_INTERVAL``."""

from __future__ import annotations

import asyncio
import itertools
import time

from bench.config import log
from bench.measures import WriteLog, max_in_window, pct, writes_by_row
from bench.suites.context import Context, measured


async def heartbeat_phase(ctx: Context, n: int) -> None:
    """The storm on the ``n`` connected sockets; the result as ``heartbeat``."""
    cfg = ctx.cfg
    wall0 = time.time()
    replies, _wall, srv_cpu, gen_cpu = await measured(
        ctx,
        ctx.workers.all(
            {
                "cmd": "loop",
                "event": "heartbeat",
                "duration": cfg.heartbeat_s,
                "window": 1,
                "start_delay": 0.2,
            }
        ),
        "heartbeat",
    )
    wall1 = time.time()
    count = sum(r["count"] for r in replies)
    span = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    lat = [v / 1000 for r in replies for v in r["lat_us"]]
    hb = {
        "sockets": n,
        "count": count,
        "seconds": span,
        "per_s": count / span,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "errors": sum(r["errors"] for r in replies),
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
    }
    if hb["errors"]:
        ctx.problem(
            "heartbeat", f"{hb['errors']} heartbeat acks failed: {replies[0]['error_sample'][:2]}"
        )
    if ctx.writes is not None:
        await asyncio.sleep(ctx.cfg.settle_s)
        hb.update(last_active_writes(ctx, ctx.writes, wall0, wall1))
    ctx.result["heartbeat"] = hb
    log(
        f"  heartbeat: {count} in {span:.1f}s = {hb['per_s']:.0f}/s, p99 {hb['p99_ms']} ms; "
        f"db writes {hb.get('db_writes', 'n/a')}, max/user/interval "
        f"{hb.get('max_writes_per_user_per_interval', 'n/a')}"
    )


def last_active_writes(ctx: Context, writes: WriteLog, wall0: float, wall1: float) -> dict:
    """The user-row writes between ``wall0`` and ``wall1`` (+1 s), per user and interval
    (``writes``: the context's write log)."""
    rows = writes.rows("accounts_user", wall0, wall1 + 1.0)
    # The throttle decides on the application's clock: judge it on the stored
    # last_active_at values (the DB's own write time lags them by a few ms of jitter)
    by_user = writes_by_row(writes.rows("accounts_user", wall0, wall1 + 1.0, "val"))
    by_commit = writes_by_row(rows)
    interval = ctx.cfg.last_active_interval
    return {
        "db_writes": len(rows),
        "db_writes_per_min": len(rows) / ((wall1 - wall0) / 60),
        "users_written": len(by_user),
        "interval_s": interval,
        "max_writes_per_user_per_interval": max(
            (max_in_window(t, interval) for t in by_user.values()), default=0
        ),
        "min_gap_s": min(
            (b - a for t in by_user.values() for a, b in itertools.pairwise(t)),
            default=None,
        ),
        # the same on the database's commit times (includes the commit jitter)
        "max_writes_per_user_per_interval_db_time": max(
            (max_in_window(t, interval) for t in by_commit.values()), default=0
        ),
        "min_gap_db_time_s": min(
            (b - a for t in by_commit.values() for a, b in itertools.pairwise(t)),
            default=None,
        ),
    }

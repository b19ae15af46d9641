"""The ``collab-sio`` and ``collab-yws`` suites: DOCS documents with EDITORS editors each send
real Yjs updates over Socket.IO ``ydoc:*`` events or the y-websocket protocol, paced (the
stated load: latency) then windowed (a closed loop: the relay rate); for Chorus also the
document saves and update-log rows the edits caused."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

from bench.config import YWS_PATH, log
from bench.measures import WriteLog, pct, row_key, writes_by_row
from bench.suites.context import Context, measured, warm_up
from bench.workers import split


async def suite_collab_sio(ctx: Context) -> None:
    await suite_collab(ctx, "sio")


async def suite_collab_yws(ctx: Context) -> None:
    await suite_collab(ctx, "yws")


def documents(ctx: Context) -> list[dict]:
    """The first DOCS notes of the fixture, each with its first EDITORS editors."""
    users = ctx.fixture["users"]
    return [
        {
            "note_id": note["id"],
            "editors": [
                {
                    "index": i,
                    "token": users[i]["token"],
                    "id": users[i]["id"],
                    "name": users[i]["name"],
                }
                for i in note["editors"][: ctx.cfg.editors]
            ],
        }
        for note in ctx.fixture["notes"][: ctx.cfg.docs]
    ]


async def suite_collab(ctx: Context, proto: str) -> None:
    cfg = ctx.cfg
    metric = f"collab_{proto}"
    docs = documents(ctx)
    parts = split(docs, ctx.workers.count)
    if proto == "yws":
        url = f"ws://127.0.0.1:{ctx.server.port}{YWS_PATH}"
    else:
        await warm_up(ctx)
        url = ctx.sio_url
    replies = await ctx.workers.all(
        [{"cmd": "collab_connect", "proto": proto, "url": url, "docs": p} for p in parts]
    )
    editors = sum(r["ok"] for r in replies)
    if editors != len(docs) * cfg.editors:
        ctx.problem(
            metric,
            f"{editors} of {len(docs) * cfg.editors} editors connected: "
            f"{[e for r in replies for e in r['errors']][:3]}",
        )
    await asyncio.sleep(ctx.cfg.settle_s / 2)
    await ctx.server.wait_idle()
    out: dict[str, Any] = {"docs": len(docs), "editors": editors}
    wall0 = time.time()
    for mode, duration in (("paced", cfg.collab_paced_s), ("window", cfg.collab_window_s)):
        out[mode] = await edit_phase(ctx, metric, mode, duration)
    wall1 = time.time()
    if ctx.writes is not None:
        await asyncio.sleep(ctx.cfg.settle_s)
        out.update(document_writes(ctx, ctx.writes, metric, docs, wall0, wall1))
    ctx.result[metric] = out


async def edit_phase(ctx: Context, metric: str, mode: str, duration: float) -> dict:
    """One phase (``paced`` or ``window``) of ``duration`` s on every connected editor."""
    cfg = ctx.cfg
    replies, _wall, srv_cpu, gen_cpu = await measured(
        ctx,
        ctx.workers.all(
            {
                "cmd": "collab_run",
                "mode": mode,
                "duration": duration,
                "rate": cfg.collab_rate,
                "window": cfg.collab_window,
                "drain": cfg.drain_s,
                "start_delay": 0.2,
            }
        ),
        f"{metric}-{mode}",
    )
    sent = sum(r["sent"] for r in replies)
    deliveries = sum(r["deliveries"] for r in replies)
    span = (max(r["t_sent"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    lat = [v / 1000 for r in replies for v in r["lat_us"]]
    phase = {
        "sent": sent,
        "deliveries": deliveries,
        "missing": sum(r["missing"] for r in replies),
        "dups": sum(r["dups"] for r in replies),
        "ack_errors": sum(r["ack_errors"] for r in replies),
        "seconds": span,
        "updates_per_s": deliveries / (cfg.editors - 1) / span if span else None,
        "deliveries_per_s": deliveries / span if span else None,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat, default=None),
        "late": sum(1 for v in lat if v > cfg.late_ms),
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
        "unexpected_closes": sum(r["unexpected_closes"] for r in replies),
    }
    log(
        f"  {metric} {mode}: sent {sent}, {phase['updates_per_s'] or 0:.0f} updates/s "
        f"relayed, p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, missing "
        f"{phase['missing']} (server CPU {srv_cpu:.0%}, loadgen {gen_cpu:.0%})"
    )
    if phase["missing"]:
        ctx.problem(metric, f"LOSS: {phase['missing']} deliveries missing ({mode})")
    if phase["ack_errors"]:
        ctx.problem(
            metric,
            f"{phase['ack_errors']} update acks failed ({mode}): "
            f"{replies[0]['ack_error_sample'][:2]}",
        )
    if phase["unexpected_closes"]:
        ctx.problem(metric, f"{phase['unexpected_closes']} sockets closed by the server")
    return phase


def document_writes(
    ctx: Context, writes: WriteLog, metric: str, docs: list[dict], wall0: float, wall1: float
) -> dict:
    """Note saves and update-log rows of the edited documents between ``wall0`` and ``wall1``
    (``writes``: the context's write log)."""
    note_ids = {row_key(d["note_id"]) for d in docs}
    rows = [r for r in writes.rows("notes_note", wall0, wall1) if row_key(r[0]) in note_ids]
    by_doc = writes_by_row(rows)
    minutes = (wall1 - wall0) / 60
    gaps = [b - a for t in by_doc.values() for a, b in itertools.pairwise(t)]
    out: dict[str, Any] = {
        "db_writes": len(rows),
        "db_window_s": wall1 - wall0,
        "db_writes_per_doc_per_min": len(rows) / len(docs) / minutes,
        "db_writes_per_doc_per_min_max": max(
            (len(t) / minutes for t in by_doc.values()), default=0
        ),
        # spacing of one document's consecutive saves (DB write times, so they include
        # the jitter of the save queue, not only the timer)
        "db_save_gap_min_s": min(gaps, default=None),
        "db_save_gap_median_s": statistics.median(gaps) if gaps else None,
        "docs_written": len(by_doc),
        "save_max_wait_s": ctx.cfg.doc_save_max_wait,
    }
    log_rows = [
        r for r in writes.rows("notes_noteupdate", wall0, wall1, "val") if row_key(r[0]) in note_ids
    ]
    out["db_log_rows_per_doc_per_min"] = len(log_rows) / len(docs) / minutes
    commits = {val for _, val in log_rows if val is not None}  # PostgreSQL only
    if commits:
        out["db_log_commits_per_min"] = len(commits) / minutes
        out["db_log_rows_per_commit"] = len(log_rows) / len(commits)
    log(
        f"  {metric}: update log {len(log_rows)} rows"
        + (f" in {len(commits)} commits" if commits else "")
        + f" = {out['db_log_rows_per_doc_per_min']:.1f}/doc/min"
    )
    log(
        f"  {metric}: {len(rows)} note writes in {wall1 - wall0:.0f}s = "
        f"{out['db_writes_per_doc_per_min']:.2f}/doc/min (worst doc "
        f"{out['db_writes_per_doc_per_min_max']:.2f}; save gaps median "
        f"{out['db_save_gap_median_s']}, min {out['db_save_gap_min_s']} s)"
    )
    return out

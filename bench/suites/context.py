"""What every suite works with (``Context``: the run's sizes, the server, the load generators,
the fixture, the write log and the result being filled) and the steps several suites share:
a measured phase, a connect phase, the warm-up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.config import POLLING_PATH, SIO_PATH, Config, log
from bench.measures import WriteLog, machine_busy_s, services_cpu_s
from bench.profile import Recorder, render, summarize
from bench.servers import Server, ServerSpec
from bench.workers import Workers, split

T = TypeVar("T")


@dataclass
class Context:
    cfg: Config
    spec: ServerSpec
    server: Server
    workers: Workers
    fixture: dict
    writes: WriteLog | None
    result: dict = field(default_factory=dict)
    profile_dir: Path | None = None
    publisher: Workers | None = None  # server-publish: the publisher process, while it runs

    @property
    def sio_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}{SIO_PATH}"

    def connect_command(
        self, entries: list[dict], concurrency: int, transport: str = "websocket"
    ) -> dict:
        """The load generator's ``connect`` of ``entries``: WebSockets, or (``polling``)
        polling sessions whose handshakes alternate between the server's instances and — on
        a server of several instances — whose later requests all go to an instance the
        session does not live on (a balancer without affinity; Chorus forwards them)."""
        if transport == "websocket":
            return {
                "cmd": "connect",
                "url": self.sio_url,
                "entries": entries,
                "concurrency": concurrency,
            }
        return {
            "cmd": "connect",
            "transport": "polling",
            "urls": [f"http://127.0.0.1:{port}{POLLING_PATH}" for port in self.server.ports],
            "cross": self.spec.instances > 1,
            "entries": entries,
            "concurrency": concurrency,
        }

    def problem(self, metric: str, text: str) -> None:
        """Record (and log) a problem under ``metric``: the row is marked, the run invalid."""
        self.result.setdefault("problems", {}).setdefault(metric, []).append(text)
        log(f"  !! {self.spec.name} {metric}: {text}")

    def entries(self, count: int, first: int = 0) -> list[dict]:
        """``count`` sockets to open: the users in turn, each with its solo channel if any."""
        users = self.fixture["users"][: self.cfg.users]
        solo = self.fixture["solo_channels"]
        out = []
        for k in range(count):
            i = first + k
            user = users[i % len(users)]
            entry = {"token": user["token"], "id": user["id"], "name": user["name"]}
            if i < len(solo):
                entry["solo"] = solo[i]
            out.append(entry)
        return out


async def measured(
    ctx: Context, coro: Awaitable[T], label: str = ""
) -> tuple[T, float, float, float]:
    """Run ``coro``; returns (result, wall s, server CPU share, load-generator CPU share).
    With ``--profile`` (and a label) the server is sampled by py-spy meanwhile; a running
    ``ctx.publisher``'s share is recorded beside the others (``cpu`` in the result)."""
    recorder = None
    if ctx.profile_dir is not None and label and ctx.spec.kind != "node":
        raw = ctx.profile_dir / f"{ctx.spec.name}-{label}.raw"
        recorder = Recorder(ctx.server.pid, raw, rate=ctx.cfg.profile_rate, gil=ctx.cfg.profile_gil)
        await recorder.__aenter__()
    publisher = ctx.publisher
    s0, w0, t0 = ctx.server.cpu_s(), ctx.workers.cpu_s(), time.monotonic()
    p0 = publisher.cpu_s() if publisher is not None else 0.0
    m0, v0 = machine_busy_s(), services_cpu_s()
    try:
        value = await coro
    finally:
        wall = time.monotonic() - t0
        server_s, loadgen_s = ctx.server.cpu_s() - s0, ctx.workers.cpu_s() - w0
        publisher_s = publisher.cpu_s() - p0 if publisher is not None else 0.0
        services = (services_cpu_s() - v0) / wall
        # CPU used by anything else on the machine (other sessions' tests, kernel): noise
        ours = server_s + loadgen_s + publisher_s
        other = max(0.0, machine_busy_s() - m0 - ours) / wall - services
        cpu = {
            "server": round(server_s / wall, 3),
            "loadgen": round(loadgen_s / wall, 3),
            "redis+postgres": round(services, 3),
            "other": round(max(0.0, other), 3),
        }
        if publisher is not None:
            cpu["publisher"] = round(publisher_s / wall, 3)
        ctx.result.setdefault("cpu", {})[label or "phase"] = cpu
        if other > 0.25:
            log(f"  (noise: other processes used {other:.0%} of a core during {label})")
        if recorder is not None:
            await recorder.__aexit__()
            with contextlib.suppress(Exception):
                summary = summarize(raw, top=25)
                ctx.result.setdefault("profiles", {})[label] = {"file": str(raw), **summary}
                log(render(summary, f"profile {ctx.spec.name} {label}"))
    return value, wall, server_s / wall, loadgen_s / wall


async def connect_phase(
    ctx: Context, count: int, metric: str, transport: str = "websocket", label: str = ""
) -> None:
    """Connect + authenticate ``count`` sockets (WebSockets, or polling sessions);
    connections/s and RSS per connection, as ``metric`` (the phase's label: ``label``, else
    ``metric``)."""
    cfg = ctx.cfg
    await ctx.server.wait_idle()
    rss0 = ctx.server.rss_kib()
    parts = split(ctx.entries(count), ctx.workers.count)
    per_worker = max(1, cfg.concurrency // ctx.workers.count)
    replies, _wall, srv_cpu, gen_cpu = await measured(
        ctx,
        ctx.workers.all(
            [{**ctx.connect_command(p, per_worker, transport), "timeout": 300} for p in parts],
            timeout=400,
        ),
        label or metric,
    )
    ok = sum(r["ok"] for r in replies)
    failed = sum(r["failed"] for r in replies)
    span = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    for r in replies:
        for e in r["errors"]:
            ctx.problem(metric, e)
    await asyncio.sleep(ctx.cfg.settle_s)
    await ctx.server.wait_idle()
    rss1 = ctx.server.rss_kib()
    ctx.result[metric] = {
        "connected": ok,
        "failed": failed,
        "seconds": span,
        "rate": ok / span if span else None,
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "rss_per_conn_kib": (rss1 - rss0) / ok if ok else None,
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
    }
    log(
        f"  {metric}: {ok}/{count} in {span:.2f}s = {ok / span:.0f}/s; "
        f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB = "
        f"{(rss1 - rss0) / max(ok, 1):.1f} KiB/conn "
        f"(server CPU {srv_cpu:.0%}, loadgen {gen_cpu:.0%})"
    )
    if failed:
        ctx.problem(metric, f"{failed} connects failed")


async def warm_up(ctx: Context, transport: str = "websocket") -> None:
    """A few sockets (over ``transport``) connect, join, heartbeat and leave: lazy imports
    and caches are loaded before anything is measured (skipped by --quick, which measures
    nothing)."""
    if ctx.cfg.quick:
        return
    entries = ctx.entries(min(20, ctx.cfg.users))
    await ctx.workers.one(0, ctx.connect_command(entries, 10, transport))
    await ctx.workers.one(
        0, {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    await ctx.workers.one(0, {"cmd": "emit_all", "event": "heartbeat", "data": {}})
    await ctx.workers.one(0, {"cmd": "close_all"})
    await ctx.server.wait_idle()


async def polling_requests(ctx: Context) -> tuple[int, int]:
    """The polling requests the load generators have sent so far (those after a session's
    handshake): (all, those sent to an instance other than the session's handshake)."""
    reports = await ctx.workers.all({"cmd": "polling_report"})
    return sum(r["requests"] for r in reports), sum(r["elsewhere"] for r in reports)


def request_stats(
    before: tuple[int, int], after: tuple[int, int], units: int, unit: str
) -> dict[str, float]:
    """The polling requests between two ``polling_requests`` readings: how many, per
    ``unit`` (of ``units``), and the share sent to an instance other than the session's
    (1.0 on a server of several instances: every one forwarded by Chorus; else 0)."""
    requests, elsewhere = after[0] - before[0], after[1] - before[1]
    return {
        "http_requests": requests,
        f"http_requests_per_{unit}": requests / units if units else 0.0,
        "http_requests_elsewhere_share": elsewhere / requests if requests else 0.0,
    }

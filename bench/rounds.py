"""The order of a run: rounds of suites, each suite on every selected server in turn, each
on a freshly started server with fresh load generators, after waiting for a quiet machine.
A failing suite is recorded as a problem of its row, never raised."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import Config, Paths, log
from bench.fixtures import clean_redis, reset_documents
from bench.measures import WriteLog, machine_busy_s
from bench.servers import Server, ServerSpec, chorus_env
from bench.suites import SUITES
from bench.suites.context import Context
from bench.workers import Workers


@dataclass(frozen=True)
class Run:
    """What every suite of one ``bench/run`` shares."""

    cfg: Config
    paths: Paths
    urls: dict[str, str]  # sqlite, postgres, redis
    fixtures: dict[str, Path]  # vendor -> fixture JSON
    out_dir: Path
    profile_dir: Path | None
    quiet_wait: float  # --quiet-wait
    suite_timeout: float  # --suite-timeout


async def wait_quiet(limit: float, threshold: float = 0.3) -> float:
    """Wait until the machine (nothing of ours runs now) is below ``threshold`` cores busy
    for a second, at most ``limit`` s; returns how long it waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        b0 = machine_busy_s()
        await asyncio.sleep(1.0)
        if machine_busy_s() - b0 < threshold:
            break
        if time.monotonic() - started < 1.5:
            log("  waiting for the machine to be quiet (other processes are busy)")
    waited = time.monotonic() - started - 1.0
    return waited if waited > 0.5 else 0.0


async def run_suite(run: Run, spec: ServerSpec, suite: str, result: dict) -> None:
    """One suite on a freshly started server; failures are recorded as problems."""
    waited = await wait_quiet(run.quiet_wait)
    if waited:
        result.setdefault("quiet_wait_s", {})[suite] = round(waited, 1)
    vendor = spec.db or "sqlite"
    fixture_path = run.fixtures[vendor]
    fixture = json.loads(fixture_path.read_text())
    writes = WriteLog(vendor, run.urls[vendor]) if spec.kind == "chorus" else None
    if spec.redis and spec.kind == "chorus":
        clean_redis(run.urls["redis"])
    if spec.kind == "chorus" and suite.startswith("collab"):
        # every server starts every round's collab suite from empty documents: the peers
        # keep theirs in memory (gone with the process); Chorus's are in the bench database
        reset_documents(run.cfg, vendor, run.urls, run.paths)
    server = Server(
        spec,
        chorus_env(run.cfg, spec, run.urls, run.paths),
        fixture_path,
        run.out_dir / "logs" / f"{spec.name}.log",
        run.paths.chorus_root,
    )
    workers = Workers(run.cfg.workers)
    ctx = Context(run.cfg, spec, server, workers, fixture, writes, result, run.profile_dir)
    try:
        await server.start()
        await workers.start()
        await asyncio.wait_for(SUITES[suite](ctx), run.suite_timeout)
    except Exception as error:
        ctx.problem(suite.replace("-", "_"), f"suite failed: {type(error).__name__}: {error}")
    finally:
        await server.stop()
        await workers.stop()


async def run_rounds(
    run: Run, selected: list[ServerSpec], suites: list[str], repeat: int
) -> list[dict[str, dict]]:
    """``repeat`` rounds; each round's results by server name."""
    rounds: list[dict[str, dict]] = []
    for round_no in range(repeat):
        current: dict[str, dict] = {spec.name: {"note": spec.note} for spec in selected}
        rounds.append(current)
        # suite-major order (every server's fanout, then every server's connect, …) keeps the
        # runs that are compared close in time; odd rounds reverse the server order
        order = selected if round_no % 2 == 0 else list(reversed(selected))
        for suite in suites:
            for spec in order:
                if suite not in spec.suites:
                    continue
                tag = f" (round {round_no + 1}/{repeat})" if repeat > 1 else ""
                log(f"{spec.name}: {suite}{tag}")
                await run_suite(run, spec, suite, current[spec.name])
    return rounds

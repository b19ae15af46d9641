"""``bench/run``: start each server in turn on loopback, drive it with the load generator,
print one table with the ratios to each peer, write the results as JSON under bench/results/.

Servers (``--only`` picks some; names below):

========================  ===============================================================
chorus-daphne             Chorus, daphne, SQLite + in-memory channel layer (embedded default)
chorus-uvicorn            Chorus, uvicorn, SQLite + in-memory layer
chorus-daphne-redis       Chorus, daphne, PostgreSQL + Redis (layer, cache, sessions)
chorus-uvicorn-redis      Chorus, uvicorn, PostgreSQL + Redis
chorus-daphne-redis-pair  two Chorus daphnes on one PostgreSQL + Redis (polling suites only):
                          every polling request after the handshake reaches the other one
sio                       python-socketio AsyncServer under uvicorn (Open WebUI's stack)
sio-redis                 the same with AsyncRedisManager
ws-ceiling                a plain ``websockets`` server: the ceiling for Python on this machine
pycrdt-websocket          pycrdt-websocket's ASGI server under uvicorn (documents only)
y-websocket-node          the Node ``y-websocket`` server from npm (documents only)
========================  ===============================================================

Suites, each on a freshly started server (see docs/benchmarks.md for the exact procedure):
``fanout`` (connect + auth N1 sockets, RSS, broadcast burst and paced, heartbeat storm),
``connect`` (connect + auth N2 sockets, RSS), ``ack`` (request/ack loop on 100 sockets),
``collab-sio`` (Socket.IO ``ydoc:*``) and ``collab-yws`` (y-websocket protocol); over HTTP
long-polling ``connect-polling`` (connect + auth NP sessions, RSS) and ``ack-polling`` (the
``ack`` loop); ``server-publish`` (a publisher process sends events to one user's sockets
through the server's Redis: Chorus's HTTP server API, python-socketio's Redis emitter).

Everything is bounded: counts are fixed, every wait has a deadline, every phase a duration.
Any lost message, failed connect, refused ack or unexpected close marks the row (LOSS / ERR)
and the run invalid (exit status 3).

This module runs one ``bench/run`` from start to report; the module map is in
docs/benchmarks.md ("The harness's code").
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.cli import config_from, parse_args, paths_from
from bench.config import BENCH, Config, log
from bench.fixtures import ensure_postgres, make_fixture
from bench.profile import available
from bench.provenance import code_identity, machine, service_versions, snapshot, versions
from bench.report import NOISE, merge_rounds, paired_ratios, relative_table, table
from bench.rounds import Run, run_rounds
from bench.servers import BY_NAME, SERVERS, ServerSpec
from bench.suites import SUITES
from bench.targets import targets, targets_text


def selected_servers(only: list[str] | None) -> list[ServerSpec]:
    """The ``--only`` servers in table order (all without ``--only``); exits on an unknown one."""
    selected = [s for s in SERVERS if not only or s.name in only]
    unknown = set(only or ()) - set(BY_NAME)
    if unknown:
        raise SystemExit(
            f"unknown server(s): {', '.join(sorted(unknown))}; choose from {', '.join(BY_NAME)}"
        )
    return selected


async def run(args: argparse.Namespace) -> int:
    """One ``bench/run``: set up, run every round, print and write the report; the exit
    status (3 for an invalid run)."""
    paths = paths_from(args)
    if args.at:
        paths = dataclasses.replace(paths, chorus_root=snapshot(args.at, paths.var))
        log(f"Chorus runs from a snapshot of {args.at}: {paths.chorus_root}")
    cfg = config_from(args)
    selected = selected_servers(args.only)
    suites = args.suites or list(SUITES)
    if any(s.kind == "node" for s in selected) and not (BENCH / "node_modules").exists():
        log("installing the Node peer (npm ci in bench/)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--omit=optional"], cwd=BENCH, check=True
        )

    paths.var.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = paths.results / stamp
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    urls = {
        "sqlite": f"sqlite:///{paths.var / 'bench.sqlite3'}",
        "postgres": args.pg_url,
        "redis": args.redis_url,
    }
    needs_pg = any(s.db == "postgres" for s in selected)
    needs_redis = any(s.redis for s in selected)
    fixtures: dict[str, Path] = {}
    log(f"setting up the bench database(s){' (quick)' if cfg.quick else ''}")
    fixtures["sqlite"] = make_fixture(cfg, "sqlite", urls, paths)
    if needs_pg:
        ensure_postgres(args.pg_url)
        fixtures["postgres"] = make_fixture(cfg, "postgres", urls, paths)

    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/run", *sys.argv[1:]]),
        "machine": machine(),
        "chorus": code_identity(args.at),
        "versions": {**versions(), **service_versions(urls, needs_pg, needs_redis)},
        "config": cfg.__dict__,
    }
    profile_dir = None
    if args.profile:
        if not available():
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        profile_dir = out_dir / "profiles"
        profile_dir.mkdir()
    started = time.monotonic()
    bench_run = Run(
        cfg, paths, urls, fixtures, out_dir, profile_dir, args.quiet_wait, args.suite_timeout
    )
    rounds = await run_rounds(bench_run, selected, suites, args.repeat)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return report(meta, rounds, cfg, out_dir, args.repeat)


def report(meta: dict, rounds: list[dict], cfg: Config, out_dir: Path, repeat: int) -> int:
    """Print the table and the targets, write results.json and table.md; the exit status."""
    results = merge_rounds(rounds)
    text = table(results, cfg)
    relative = relative_table(results, cfg)
    if relative:
        text += "\n\n" + relative
    paired = paired_ratios(rounds, cfg)
    if paired:
        text += "\n\n" + paired
    goals = targets(results, cfg)
    invalid = {name: r["problems"] for name, r in results.items() if r.get("problems")}
    document = {
        **meta,
        "results": results,
        "rounds": rounds if repeat > 1 else None,
        "targets": goals,
        "invalid": invalid,
        "table": text,
    }
    path = out_dir / "results.json"
    path.write_text(json.dumps(document, indent=1, default=str))
    footnote = f"* other processes used more than {NOISE:.0%} of a core during the phase (noise)"
    (out_dir / "table.md").write_text(
        text + "\n\n" + footnote + "\n\n" + targets_text(goals) + "\n"
    )
    print(text)
    print(footnote)
    print()
    print(targets_text(goals))
    print()
    if invalid:
        print("INVALID RUN — losses or errors (a loss is a bug, not a number):")
        for name, problems in invalid.items():
            for metric, texts in problems.items():
                for t in texts[:3]:
                    print(f"  {name} {metric}: {t}")
    print(f"results: {path}  ({meta['elapsed_s']} s)")
    return 3 if invalid else 0


def main() -> None:
    args = parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

"""``bench/run``'s command line: the options, their defaults, and the ``Config`` and ``Paths``
a run builds from them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.config import DEFAULT_PG, DEFAULT_REDIS, Config, Paths
from bench.servers import BY_NAME
from bench.suites import SUITES

DESCRIPTION = """\
``bench/run``: start each server in turn on loopback, drive it with the load generator,
print one table with the ratios to each peer, write the results as JSON under bench/results/."""

#: Options that override the same-named ``Config`` field when given.
SIZE_OPTIONS = (
    "n_fanout",
    "n_connect",
    "n_polling",
    "heartbeat_s",
    "collab_rate",
    "burst_window",
    "publish_sockets",
    "publish_window",
    "publish_rate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny N, seconds (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SERVER",
        help=f"run only this server (repeatable): {', '.join(BY_NAME)}",
    )
    parser.add_argument(
        "--suite",
        dest="suites",
        action="append",
        choices=list(SUITES),
        help="run only this suite (repeatable)",
    )
    parser.add_argument("--workers", type=int, help="load-generator processes (default 2)")
    parser.add_argument(
        "--n-fanout", type=int, dest="n_fanout", help="sockets in the fanout suite (default 1000)"
    )
    parser.add_argument(
        "--n-connect",
        type=int,
        dest="n_connect",
        help="sockets in the connect suite (default 5000)",
    )
    parser.add_argument(
        "--n-polling",
        type=int,
        dest="n_polling",
        help="sessions in the connect-polling suite (default 500)",
    )
    parser.add_argument(
        "--heartbeat-s",
        type=float,
        dest="heartbeat_s",
        help="heartbeat storm duration, s (default 15)",
    )
    parser.add_argument(
        "--collab-rate",
        type=float,
        dest="collab_rate",
        help="updates/s per editor in the paced collab phase (default 2)",
    )
    parser.add_argument(
        "--burst-window",
        type=int,
        dest="burst_window",
        help="broadcast sender's events in flight (default 16)",
    )
    parser.add_argument(
        "--publish-sockets",
        type=int,
        dest="publish_sockets",
        help="server-publish: sockets of the receiving user (default 4)",
    )
    parser.add_argument(
        "--publish-window",
        type=int,
        dest="publish_window",
        help="server-publish: the publisher's requests in flight (default 16)",
    )
    parser.add_argument(
        "--publish-rate",
        type=float,
        dest="publish_rate",
        help="server-publish: events/s in the paced (latency) phase (default 50)",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only the thread holding the GIL (py-spy --gil), so time "
        "a thread spends waiting for the GIL is not counted as work",
    )
    parser.add_argument(
        "--profile-rate",
        type=int,
        default=100,
        help="with --profile: py-spy samples per second (default 100; more for short phases)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample each server with py-spy during every measured phase",
    )
    parser.add_argument(
        "--var-dir", help="bench database, fixtures and secret key (default bench/var)"
    )
    parser.add_argument("--results-dir", help="where results go (default bench/results)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds; the table shows medians (default 1)"
    )
    parser.add_argument(
        "--at",
        metavar="REV",
        help="run Chorus from a snapshot of this commit (git archive) instead of the "
        "working tree, so concurrent edits cannot change the code mid-run",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each suite wait (at most this many s) until other processes use < 30%% "
        "of a core; phases measured while others used more are marked * (default 120)",
    )
    parser.add_argument(
        "--suite-timeout",
        type=float,
        default=600,
        help="a suite taking longer fails (default 600 s)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG),
        help=f"PostgreSQL for the -redis variants, created if absent (default {DEFAULT_PG})",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
        help=f"a spare Redis database, never db 0 (default {DEFAULT_REDIS})",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; exits on a Redis URL that is db 0 or names no database."""
    args = build_parser().parse_args(argv)
    if args.redis_url.rstrip("/").endswith("/0") or args.redis_url.count("/") < 3:
        raise SystemExit(
            "bench/run: use a spare Redis database (e.g. redis://127.0.0.1:6379/9), never db 0"
        )
    return args


def config_from(args: argparse.Namespace) -> Config:
    """The run's sizes: full or ``--quick``, with the size options given applied."""
    cfg = Config.make(args.quick)
    if args.workers:
        cfg.workers = args.workers
    cfg.profile_gil = args.profile_gil
    cfg.profile_rate = args.profile_rate
    for key in SIZE_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    cfg.users = max(cfg.users, min(cfg.n_fanout, 1000))
    return cfg


def paths_from(args: argparse.Namespace) -> Paths:
    """``--var-dir`` and ``--results-dir`` over the defaults; Chorus from this working tree
    (``--at`` swaps in a snapshot: bench/main.py)."""
    default = Paths()
    return Paths(
        var=Path(args.var_dir).resolve() if args.var_dir else default.var,
        results=Path(args.results_dir).resolve() if args.results_dir else default.results,
    )

"""Smoke runs of the benchmark harness: ``bench/run --quick``.

Not benchmarks (numbers at this size mean nothing): they prove the harness still drives real
servers with real clients through every suite, that every expected row is in the table, and
that no message was lost, no connect failed and no ack was refused. Each run has its own bench
database and results directory (a temporary directory), so it never disturbs a real bench run.

- ``chorus-daphne`` through every suite (SQLite, in-memory layer);
- the polling suites on Chorus with Redis, on the two-instance ``chorus-daphne-redis-pair``
  (every polling request forwarded between instances) and on python-socketio with Redis, and
  ``server-publish`` (a publisher process: Chorus's HTTP server API, python-socketio's
  write-only Redis emitter) on the two servers with Redis that have it (``services``: needs
  PostgreSQL and Redis).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.live

EXPECTED_ROWS = [
    "connect+auth 40 (conn/s)",
    "RSS/idle conn 40 (KiB)",
    "connect+auth 80 (conn/s)",
    "RSS/idle conn 80 (KiB)",
    "broadcast deliveries/s",
    "broadcast all-have-it p50 (ms)",
    "broadcast all-have-it p99 (ms)",
    "heartbeats/s",
    "heartbeat DB writes/min",
    "heartbeat max writes/user/interval",
    "ack round trips/s (10 sockets)",
    "collab sio updates/s (window)",
    "collab sio p99",
    "collab sio DB writes/doc/min",
    "collab yws updates/s (window)",
    "collab yws p99",
    "collab yws DB writes/doc/min",
]

POLLING_ROWS = [
    "connect+auth polling 20 (conn/s)",
    "RSS/idle polling session 20 (KiB)",
    "ack round trips/s polling (10 sockets)",
    "ack polling p50 (ms)",
    "ack polling p99 (ms)",
]


PUBLISH_ROWS = [
    "server-publish events/s (4 sockets, window 16)",
    "server-publish burst all-have-it p99 (ms)",
    "server-publish p50 (ms, 50/s)",
    "server-publish p99 (ms, 50/s)",
]
PUBLISH_SERVERS = ["chorus-daphne-redis", "sio-redis"]


def run_bench(tmp_path: Path, *args: str, timeout: float) -> tuple[str, str, dict]:
    """``bench/run --quick`` with ``args`` in its own directories; (stdout, the whole output,
    results.json). Fails the test on a timeout or a non-zero exit."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SIGNING_KEY")
    }
    # Own process group: on a timeout the whole run (servers, load generators) is killed, and
    # the harness's children also die with it (PR_SET_PDEATHSIG).
    proc = subprocess.Popen(
        [
            str(ROOT / "bench" / "run"),
            "--quick",
            *args,
            "--var-dir",
            str(tmp_path / "var"),
            "--results-dir",
            str(tmp_path / "results"),
            "--quiet-wait",
            "0",  # never wait for the machine to be idle: a smoke run measures nothing
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"bench/run --quick took over {timeout} s:\n{stdout}\n{stderr}")
    output = stdout + "\n--- stderr ---\n" + stderr
    assert proc.returncode == 0, output
    assert "LOSS" not in stdout and "INVALID" not in stdout, output
    (results_file,) = (tmp_path / "results").glob("*/results.json")
    return stdout, output, json.loads(results_file.read_text())


def assert_rows(stdout: str, output: str, expected: list[str], servers: list[str]) -> None:
    """Every ``expected`` row of the results table is there for each of ``servers``, ok."""
    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    for label in expected:
        matching = [row for row in rows if row.startswith(f"| {label}")]
        for server in servers:
            mine = [row for row in matching if f"| {server} " in row]
            assert mine, f"row {label!r} of {server} missing:\n{output}"
            # "ok*" is ok on a noisy machine (the * marks noise, not a failure).
            assert mine[0].rstrip(" |").rstrip("*").endswith("ok"), mine


def assert_polling_clean(result: dict) -> None:
    """The polling suites of one server: every session connected, every ack came back."""
    connect = result["connect_polling"]
    assert connect["connected"] == 20 and connect["failed"] == 0, connect
    ack = result["ack_polling"]
    assert ack["sockets"] == 10 and ack["count"] > 0, ack
    assert ack["errors"] == 0 and ack["unexpected_closes"] == 0, ack
    # a round trip is at least the event's POST and the GET that brings its ack
    assert ack["http_requests_per_round_trip"] >= 2, ack


def test_quick_run_has_every_row_and_no_loss(tmp_path: Path) -> None:
    stdout, output, report = run_bench(tmp_path, "--only", "chorus-daphne", timeout=150)
    assert_rows(stdout, output, EXPECTED_ROWS + POLLING_ROWS, ["chorus-daphne"])
    assert report["invalid"] == {}
    result = report["results"]["chorus-daphne"]
    assert result["broadcast_burst"]["missing"] == 0
    assert result["broadcast_paced"]["missing"] == 0
    assert result["connect_n1"]["failed"] == 0 and result["connect_n2"]["failed"] == 0
    for proto in ("sio", "yws"):
        for phase in ("paced", "window"):
            assert result[f"collab_{proto}"][phase]["missing"] == 0
            assert result[f"collab_{proto}"][phase]["sent"] > 0
    assert_polling_clean(result)
    # one instance: every request reaches the session's own instance
    assert result["ack_polling"]["http_requests_elsewhere_share"] == 0


def assert_publish_clean(result: dict) -> None:
    """The server-publish suite of one server: every event reached every socket, once, in
    order, and the publisher's every request or emit was accepted."""
    publish = result["server_publish"]
    assert publish["sockets"] == 4, publish
    for phase in ("burst", "paced"):
        stats = publish[phase]
        assert stats["events"] > 0 and stats["delivered"] == stats["events"] * 4, stats
        assert stats["missing"] == stats["dups"] == stats["out_of_order"] == 0, stats
        assert stats["errors"] == 0 and stats["unexpected_closes"] == 0, stats
    assert "publisher" in result["cpu"]["publish-paced"], result["cpu"]


@pytest.mark.services
def test_quick_polling_run_without_sticky_sessions(tmp_path: Path) -> None:
    """The pair's polling requests all reach the instance their session does not live on;
    its rows sit next to the one-instance server's, and python-socketio's polling runs.
    The same run publishes from a separate process to Chorus's server API and through
    python-socketio's Redis emitter."""
    database_url = require_service("DATABASE_URL")
    # bench/run never uses db 0 (CI's default): its own database 15 on the same server.
    redis_url = require_service("REDIS_URL").rsplit("/", 1)[0] + "/15"
    import psycopg

    base = database_url.rsplit("/", 1)[0]
    bench_db = os.environ.get("TEST_DATABASE_NAME", "test") + "_bench_smoke"
    servers = ["chorus-daphne-redis", "chorus-daphne-redis-pair", "sio-redis"]
    try:
        stdout, output, report = run_bench(
            tmp_path,
            *[arg for name in servers for arg in ("--only", name)],
            "--suite",
            "connect-polling",
            "--suite",
            "ack-polling",
            "--suite",
            "server-publish",
            "--pg-url",
            f"{base}/{bench_db}",
            "--redis-url",
            redis_url,
            timeout=240,
        )
    finally:
        with psycopg.connect(
            base.replace("postgres://", "postgresql://") + "/postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
    assert_rows(stdout, output, POLLING_ROWS, servers)
    assert "chorus-daphne-redis-pair against chorus-daphne-redis:" in stdout, output
    assert report["invalid"] == {}
    results = report["results"]
    for name in servers:
        assert_polling_clean(results[name])
    pair = results["chorus-daphne-redis-pair"]
    assert pair["connect_polling"]["http_requests_elsewhere_share"] == 1.0
    assert pair["ack_polling"]["http_requests_elsewhere_share"] == 1.0
    assert results["chorus-daphne-redis"]["ack_polling"]["http_requests_elsewhere_share"] == 0
    assert_rows(stdout, output, PUBLISH_ROWS, PUBLISH_SERVERS)
    for name in PUBLISH_SERVERS:
        assert_publish_clean(results[name])

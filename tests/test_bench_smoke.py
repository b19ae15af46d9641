"""Smoke run of the benchmark harness: ``bench/run --quick --only chorus-daphne``.

Not a benchmark (numbers at this size mean nothing): it proves the harness still drives a real
daphne with real clients through every suite, that every expected row is in the table, and that
no message was lost, no connect failed and no ack was refused. Its own bench database and
results directory (a temporary directory), so it never disturbs a real bench run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

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


def test_quick_run_has_every_row_and_no_loss(tmp_path: Path) -> None:
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
            "--only",
            "chorus-daphne",
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
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"bench/run --quick took over 120 s:\n{stdout}\n{stderr}")
    output = stdout + "\n--- stderr ---\n" + stderr
    assert proc.returncode == 0, output
    assert "LOSS" not in stdout and "INVALID" not in stdout, output

    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    for expected in EXPECTED_ROWS:
        matching = [row for row in rows if row.startswith(f"| {expected}")]
        assert matching, f"row {expected!r} missing:\n{output}"
        # "ok*" is ok on a noisy machine (the * marks noise, not a failure).
        assert all(
            "chorus-daphne" in row and row.rstrip(" |").rstrip("*").endswith("ok")
            for row in matching
        )

    (results_file,) = (tmp_path / "results").glob("*/results.json")
    report = json.loads(results_file.read_text())
    assert report["invalid"] == {}
    result = report["results"]["chorus-daphne"]
    assert result["broadcast_burst"]["missing"] == 0
    assert result["broadcast_paced"]["missing"] == 0
    assert result["connect_n1"]["failed"] == 0 and result["connect_n2"]["failed"] == 0
    for proto in ("sio", "yws"):
        for phase in ("paced", "window"):
            assert result[f"collab_{proto}"][phase]["missing"] == 0
            assert result[f"collab_{proto}"][phase]["sent"] > 0

"""What one ``bench/run`` is configured with: the sizes (``Config``), the directories it reads
and writes (``Paths``), the fixed locations of this checkout, and the harness's log line.

``Config`` is recorded as-is under ``"config"`` in results.json, so it holds numbers only;
``Paths`` travels beside it to whatever starts a process or writes a file. Nothing here is
rebound at run time: a run builds its own values from the command line (bench/cli.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: This checkout: the harness, the load generator and the peers always run from here.
ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")

SIO_PATH = "/ws/socket.io/?EIO=4&transport=websocket"
POLLING_PATH = "/ws/socket.io/?EIO=4&transport=polling"
YWS_PATH = "/ws/yjs/{doc}?token={token}"

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"


@dataclass(frozen=True)
class Paths:
    """Where one run keeps its files and which Chorus tree its servers run from."""

    var: Path = BENCH / "var"  # bench database, fixtures, secret key, snapshots
    results: Path = BENCH / "results"  # one directory per run
    chorus_root: Path = ROOT  # the working tree, or a snapshot (``--at REV``)


@dataclass
class Config:
    """The sizes of one run: counts, rates, durations and the Chorus knobs the bench sets."""

    quick: bool
    workers: int = 2
    n_fanout: int = 1000  # connect + auth, RSS, broadcast receivers, heartbeat storm
    n_connect: int = 5000  # connect + auth, RSS
    n_polling: int = 500  # connect + auth over HTTP long-polling, RSS
    users: int = 1000  # distinct users (sockets beyond are extra sockets of the same users)
    concurrency: int = 50  # connects in flight (daphne's listen backlog is 50)
    burst_msgs: int = 100
    burst_window: int = 16  # sender's events in flight (acks outstanding) during a burst
    bursts: int = 3
    paced_msgs: int = 50
    paced_rate: float = 5.0  # broadcasts/s in the latency phase
    heartbeat_s: float = 15.0
    ack_sockets: int = 100
    ack_s: float = 10.0
    docs: int = 50
    editors: int = 4
    collab_rate: float = 2.0  # updates/s per editor in the paced phase: the stated load
    collab_paced_s: float = 20.0
    collab_window_s: float = 15.0
    collab_window: int = 2
    publish_sockets: int = 4  # sockets of the one user the server-publish events go to
    publish_window: int = 16  # the publisher's requests (emits) in flight
    publish_burst: int = 50_000  # events per burst at most, as fast as the window allows …
    publish_burst_s: float = 5.0  # … for this long at most (rates differ 50-fold)
    publish_bursts: int = 3
    publish_rate: float = 50.0  # events/s in the paced phase: under every server's capacity
    publish_paced: int = 500
    drain_s: float = 20.0
    late_ms: float = 1000.0
    last_active_interval: float = 5.0
    doc_save_debounce: float = 2.0
    doc_save_max_wait: float = 10.0
    settle_s: float = 1.0  # pause before reading RSS or the write log after a phase
    profile_gil: bool = False  # --profile-gil: sample only the thread holding the GIL
    profile_rate: int = 100  # --profile-rate: py-spy samples per second

    @classmethod
    def make(cls, quick: bool) -> Config:
        """The full-size configuration, or with ``quick`` the tiny one (seconds per suite)."""
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            n_fanout=40,
            n_connect=80,
            n_polling=20,
            users=40,
            concurrency=20,
            burst_msgs=10,
            bursts=1,
            paced_msgs=5,
            paced_rate=10.0,
            heartbeat_s=1.0,
            ack_sockets=10,
            ack_s=1.0,
            docs=3,
            editors=4,
            collab_rate=5.0,
            collab_paced_s=1.0,
            collab_window_s=1.0,
            publish_burst=60,
            publish_burst_s=1.0,
            publish_bursts=1,
            publish_rate=50.0,
            publish_paced=20,
            drain_s=10.0,
            last_active_interval=1.0,
            doc_save_debounce=0.5,
            doc_save_max_wait=1.0,
            settle_s=0.2,
        )


def log(message: str) -> None:
    """One time-stamped progress line on stderr (stdout carries the table)."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)

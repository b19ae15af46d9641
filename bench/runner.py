"""``bench/run``: start each server in turn on loopback, drive it with the load generator,
print one table with the ratios to each peer, write the results as JSON under bench/results/.

Servers (``--only`` picks some; names below):

=====================  ==================================================================
chorus-daphne          Chorus, daphne, SQLite + in-memory channel layer (embedded default)
chorus-uvicorn         Chorus, uvicorn, SQLite + in-memory layer
chorus-daphne-redis    Chorus, daphne, PostgreSQL + Redis (layer, cache, sessions)
chorus-uvicorn-redis   Chorus, uvicorn, PostgreSQL + Redis
sio                    python-socketio AsyncServer under uvicorn (Open WebUI's stack)
sio-redis              the same with AsyncRedisManager
ws-ceiling             a plain ``websockets`` server: the ceiling for Python on this machine
pycrdt-websocket       pycrdt-websocket's ASGI server under uvicorn (documents only)
y-websocket-node       the Node ``y-websocket`` server from npm (documents only)
=====================  ==================================================================

Suites, each on a freshly started server (see docs/benchmarks.md for the exact procedure):
``fanout`` (connect + auth N1 sockets, RSS, broadcast burst and paced, heartbeat storm),
``connect`` (connect + auth N2 sockets, RSS), ``ack`` (request/ack loop on 100 sockets),
``collab-sio`` (Socket.IO ``ydoc:*``) and ``collab-yws`` (y-websocket protocol).

Everything is bounded: counts are fixed, every wait has a deadline, every phase a duration.
Any lost message, failed connect, refused ack or unexpected close marks the row (LOSS / ERR)
and the run invalid (exit status 3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.profile import Recorder, available, render, summarize

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
VAR = BENCH / "var"
RESULTS = BENCH / "results"
SIO_PATH = "/ws/socket.io/?EIO=4&transport=websocket"
YWS_PATH = "/ws/yjs/{doc}?token={token}"

#: The Chorus tree the servers run from: the working tree, or a snapshot (``--at REV``).
CHORUS_ROOT = ROOT

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"


# --- configuration ------------------------------------------------------------------------------


@dataclass
class Config:
    quick: bool
    workers: int = 2
    n_fanout: int = 1000  # connect + auth, RSS, broadcast receivers, heartbeat storm
    n_connect: int = 5000  # connect + auth, RSS
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
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            n_fanout=40,
            n_connect=80,
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
            drain_s=10.0,
            last_active_interval=1.0,
            doc_save_debounce=0.5,
            doc_save_max_wait=1.0,
            settle_s=0.2,
        )


@dataclass
class ServerSpec:
    name: str
    kind: str  # chorus | sio | ceiling | pycrdt | node
    suites: tuple[str, ...]
    asgi: str = ""  # daphne | uvicorn (chorus)
    db: str = ""  # sqlite | postgres (chorus)
    redis: bool = False
    note: str = ""


EVENT_SUITES = ("fanout", "connect", "ack", "collab-sio")
SERVERS = [
    ServerSpec(
        "chorus-daphne",
        "chorus",
        (*EVENT_SUITES, "collab-yws"),
        "daphne",
        "sqlite",
        note="daphne, SQLite, in-memory layer",
    ),
    ServerSpec(
        "chorus-uvicorn",
        "chorus",
        (*EVENT_SUITES, "collab-yws"),
        "uvicorn",
        "sqlite",
        note="uvicorn, SQLite, in-memory layer",
    ),
    ServerSpec(
        "chorus-daphne-redis",
        "chorus",
        (*EVENT_SUITES, "collab-yws"),
        "daphne",
        "postgres",
        True,
        note="daphne, PostgreSQL, Redis",
    ),
    ServerSpec(
        "chorus-uvicorn-redis",
        "chorus",
        (*EVENT_SUITES, "collab-yws"),
        "uvicorn",
        "postgres",
        True,
        note="uvicorn, PostgreSQL, Redis",
    ),
    ServerSpec("sio", "sio", EVENT_SUITES, note="python-socketio 1 process, uvicorn"),
    ServerSpec(
        "sio-redis", "sio", EVENT_SUITES, redis=True, note="python-socketio + AsyncRedisManager"
    ),
    ServerSpec("ws-ceiling", "ceiling", EVENT_SUITES, note="plain websockets"),
    ServerSpec("pycrdt-websocket", "pycrdt", ("collab-yws",), note="pycrdt-websocket ASGI"),
    ServerSpec("y-websocket-node", "node", ("collab-yws",), note="Node y-websocket 2.1.0"),
]
BY_NAME = {s.name: s for s in SERVERS}
PEERS = ["sio", "sio-redis", "ws-ceiling", "pycrdt-websocket", "y-websocket-node"]


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


# --- processes ----------------------------------------------------------------------------------


def die_with_parent() -> None:
    """``preexec_fn`` of every server and load generator: the kernel sends SIGKILL to the child
    when the runner dies (Linux ``PR_SET_PDEATHSIG``), so a killed run leaves no server behind."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its threads, seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def services_cpu_s() -> float:
    """CPU seconds of the local Redis and PostgreSQL servers (PostgreSQL: the postmaster, its
    live backends and the backends it has reaped). Used by Chorus-with-Redis and by other
    users of the machine alike, so it is reported, never subtracted from anyone."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        comm = head.split("(", 1)[1]
        fields = rest.split()
        if comm.startswith("redis-server") or comm in ("postgres", "postmaster"):
            total += int(fields[11]) + int(fields[12])
            if fields[1] == "1":  # the postmaster: add its reaped children
                total += int(fields[13]) + int(fields[14])
    return total / tick


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle / iowait) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class Server:
    """One server process on 127.0.0.1 (started, measured, stopped by pid)."""

    def __init__(self, spec: ServerSpec, env: dict[str, str], fixture: Path, log_path: Path):
        self.spec = spec
        self.env = env
        self.fixture = fixture
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        p = str(self.port)
        spec = self.spec
        if spec.kind == "chorus" and spec.asgi == "daphne":
            # -v 0: no access log (uvicorn and the peers run without one too)
            return [
                str(VENV_BIN / "daphne"),
                "-v",
                "0",
                "-b",
                "127.0.0.1",
                "-p",
                p,
                "config.asgi:application",
            ]
        if spec.kind == "chorus":
            return [
                str(VENV_BIN / "uvicorn"),
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                p,
                "--log-level",
                "warning",
                "--no-access-log",
            ]
        if spec.kind == "sio":
            cmd = [
                PYTHON,
                str(BENCH / "peers" / "sio_server.py"),
                "--fixture",
                str(self.fixture),
                "--port",
                p,
            ]
            return cmd + (["--redis", self.env["BENCH_REDIS_URL"]] if spec.redis else [])
        if spec.kind == "ceiling":
            return [
                PYTHON,
                str(BENCH / "peers" / "ws_ceiling.py"),
                "--fixture",
                str(self.fixture),
                "--port",
                p,
            ]
        if spec.kind == "pycrdt":
            return [PYTHON, str(BENCH / "peers" / "pycrdt_server.py"), "--port", p]
        if spec.kind == "node":
            return ["node", str(BENCH / "node_modules" / "y-websocket" / "bin" / "server.cjs")]
        raise ValueError(spec.kind)

    async def start(self) -> None:
        self.port = free_port()
        env = dict(self.env)
        if self.spec.kind == "node":
            env.update(HOST="127.0.0.1", PORT=str(self.port))
        with self.log_path.open("ab") as out:
            out.write(f"=== {self.spec.name} on port {self.port}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=CHORUS_ROOT if self.spec.kind == "chorus" else ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited early; see {self.log_path}")
            if self._ready():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.spec.name} not ready in 60 s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        if self.spec.kind != "chorus":
            return True
        try:  # the Django app is loaded once the API answers 401
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/users/me/", timeout=2)
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False
        return False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    async def wait_idle(self, limit: float = 30.0, threshold: float = 0.05) -> float:
        """Wait until the server uses < ``threshold`` of a core for 0.5 s (at most ``limit``)."""
        started = time.monotonic()
        quiet = 0
        while time.monotonic() - started < limit:
            c0 = self.cpu_s()
            await asyncio.sleep(0.25)
            quiet = quiet + 1 if self.cpu_s() - c0 < threshold * 0.25 else 0
            if quiet >= 2:
                break
        return time.monotonic() - started

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            await asyncio.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Workers:
    """The load-generator processes (``python -m bench.loadgen``), driven by JSON lines."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "bench.loadgen",
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                limit=1 << 27,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                preexec_fn=die_with_parent,
            )
            self.procs.append(proc)
        await self.all({"cmd": "hello"})

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(pid) for pid in self.pids)

    async def one(self, index: int, msg: dict, timeout: float = 600) -> dict:
        proc = self.procs[index]
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load generator {index} died")
        reply = json.loads(line)
        if not reply.get("ok_cmd"):
            raise RuntimeError(f"load generator {index}: {msg['cmd']}: {reply.get('error')}")
        return reply

    async def all(self, msg: dict | list[dict], timeout: float = 600) -> list[dict]:
        msgs = msg if isinstance(msg, list) else [msg] * self.count
        return await asyncio.gather(*(self.one(i, m, timeout) for i, m in enumerate(msgs)))

    async def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.stdin.write(b'{"cmd":"exit"}\n')
                await proc.stdin.drain()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts)]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# --- database write counting ------------------------------------------------------------------


class WriteLog:
    """Reads ``bench_write_log`` (filled by triggers; see bench/setup_data.py)."""

    def __init__(self, vendor: str, url: str) -> None:
        self.vendor = vendor
        self.url = url

    def rows(
        self, table: str, since: float, until: float, column: str = "at"
    ) -> list[tuple[str, float]]:
        """(row id, time) of the writes to ``table`` between ``since`` and ``until`` (DB
        time); ``column="val"`` gives the stored ``last_active_at`` instead of the DB time."""
        query = (
            f"SELECT row_id, {column} FROM bench_write_log WHERE tbl = %s AND at >= %s AND at <= %s"
        )
        if self.vendor == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
                return conn.execute(query.replace("%s", "?"), (table, since, until)).fetchall()
        import psycopg

        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(query, (table, since, until)).fetchall()


def row_key(row_id: object) -> str:
    """One spelling for a UUID primary key (SQLite stores 32 hex digits, PostgreSQL dashes)."""
    try:
        return uuid.UUID(str(row_id)).hex
    except ValueError:
        return str(row_id)


def writes_by_row(rows: list[tuple[str, float]]) -> dict[str, list[float]]:
    by: dict[str, list[float]] = {}
    for row_id, at in rows:
        by.setdefault(row_key(row_id), []).append(float(at))
    for times in by.values():
        times.sort()
    return by


def max_in_window(times: list[float], window: float) -> int:
    """Most writes inside any half-open interval of length ``window``."""
    best, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


# --- suites ---------------------------------------------------------------------------------------


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

    @property
    def sio_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}{SIO_PATH}"

    def problem(self, metric: str, text: str) -> None:
        self.result.setdefault("problems", {}).setdefault(metric, []).append(text)
        log(f"  !! {self.spec.name} {metric}: {text}")

    def entries(self, count: int, first: int = 0) -> list[dict]:
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


async def measured(ctx: Context, coro, label: str = ""):
    """Run ``coro``; returns (result, wall s, server CPU share, load-generator CPU share).
    With ``--profile`` (and a label) the server is sampled by py-spy meanwhile."""
    recorder = None
    if ctx.profile_dir is not None and label and ctx.spec.kind != "node":
        raw = ctx.profile_dir / f"{ctx.spec.name}-{label}.raw"
        recorder = Recorder(ctx.server.pid, raw, rate=ctx.cfg.profile_rate, gil=ctx.cfg.profile_gil)
        await recorder.__aenter__()
    s0, w0, t0 = ctx.server.cpu_s(), ctx.workers.cpu_s(), time.monotonic()
    m0, v0 = machine_busy_s(), services_cpu_s()
    try:
        value = await coro
    finally:
        wall = time.monotonic() - t0
        server_s, loadgen_s = ctx.server.cpu_s() - s0, ctx.workers.cpu_s() - w0
        services = (services_cpu_s() - v0) / wall
        # CPU used by anything else on the machine (other sessions' tests, kernel): noise
        other = max(0.0, machine_busy_s() - m0 - server_s - loadgen_s) / wall - services
        ctx.result.setdefault("cpu", {})[label or "phase"] = {
            "server": round(server_s / wall, 3),
            "loadgen": round(loadgen_s / wall, 3),
            "redis+postgres": round(services, 3),
            "other": round(max(0.0, other), 3),
        }
        if other > 0.25:
            log(f"  (noise: other processes used {other:.0%} of a core during {label})")
        if recorder is not None:
            await recorder.__aexit__()
            with contextlib.suppress(Exception):
                summary = summarize(raw, top=25)
                ctx.result.setdefault("profiles", {})[label] = {"file": str(raw), **summary}
                log(render(summary, f"profile {ctx.spec.name} {label}"))
    return value, wall, server_s / wall, loadgen_s / wall


async def connect_phase(ctx: Context, count: int, metric: str) -> None:
    """Connect + authenticate ``count`` sockets; connections/s and RSS per connection."""
    cfg = ctx.cfg
    await ctx.server.wait_idle()
    rss0 = ctx.server.rss_kib()
    parts = split(ctx.entries(count), ctx.workers.count)
    per_worker = max(1, cfg.concurrency // ctx.workers.count)
    replies, _wall, srv_cpu, gen_cpu = await measured(
        ctx,
        ctx.workers.all(
            [
                {
                    "cmd": "connect",
                    "url": ctx.sio_url,
                    "entries": p,
                    "concurrency": per_worker,
                    "timeout": 300,
                }
                for p in parts
            ],
            timeout=400,
        ),
        metric,
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


async def warm_up(ctx: Context) -> None:
    """A few sockets connect, join, heartbeat and leave: lazy imports and caches are loaded
    before anything is measured (skipped by --quick, which measures nothing)."""
    if ctx.cfg.quick:
        return
    entries = ctx.entries(min(20, ctx.cfg.users))
    await ctx.workers.one(
        0, {"cmd": "connect", "url": ctx.sio_url, "entries": entries, "concurrency": 10}
    )
    await ctx.workers.one(
        0, {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    await ctx.workers.one(0, {"cmd": "emit_all", "event": "heartbeat", "data": {}})
    await ctx.workers.one(0, {"cmd": "close_all"})
    await ctx.server.wait_idle()


async def drain_broadcast(ctx: Context, expected: int, limit: float) -> list[dict]:
    deadline = time.monotonic() + limit
    while True:
        reports = await ctx.workers.all({"cmd": "recv_report"})
        if sum(r["total"] for r in reports) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return await ctx.workers.all({"cmd": "recv_report", "full": True})


def broadcast_stats(sends: dict[int, int], reports: list[dict], receivers: int) -> dict:
    per_seq: dict[int, list[int]] = {}
    for report in reports:
        for seq, (count, first, last) in report["per_seq"].items():
            entry = per_seq.setdefault(int(seq), [0, first, last])
            entry[0] += count
            entry[1] = min(entry[1], first)
            entry[2] = max(entry[2], last)
    total = sum(r["total"] for r in reports)
    expected = len(sends) * receivers
    completion_ms = []
    for seq, sent in sends.items():
        entry = per_seq.get(seq)
        if entry and entry[0] >= receivers:
            completion_ms.append((entry[2] - sent) / 1e6)
    t_first = min(sends.values()) if sends else 0
    t_last = max((e[2] for e in per_seq.values()), default=t_first)
    span = (t_last - t_first) / 1e9
    return {
        "messages": len(sends),
        "receivers": receivers,
        "expected": expected,
        "delivered": total,
        "missing": expected - total,
        "dups": sum(r["dups"] for r in reports),
        "seconds": span,
        "deliveries_per_s": total / span if span > 0 else None,
        "complete_p50_ms": pct(completion_ms, 50),
        "complete_p99_ms": pct(completion_ms, 99),
        "complete_max_ms": max(completion_ms, default=None),
        "unexpected_closes": sum(r["unexpected_closes"] for r in reports),
        "_completion_ms": completion_ms,
    }


async def suite_fanout(ctx: Context) -> None:
    cfg, fx = ctx.cfg, ctx.fixture
    await warm_up(ctx)
    await ctx.workers.one(
        0, {"cmd": "connect_sender", "url": ctx.sio_url, "token": fx["sender"]["token"]}
    )
    await connect_phase(ctx, cfg.n_fanout, "connect_n1")
    n = ctx.result["connect_n1"]["connected"]

    joins = await ctx.workers.all(
        {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    joined = sum(j["ok"] for j in joins)
    if joined != n + 1:
        ctx.problem(
            "broadcast",
            f"user-join: {joined} of {n + 1} ok: {[s for j in joins for s in j['sample']][:3]}",
        )
    await ctx.server.wait_idle()

    # burst: the sender's events back to back (closed loop on its ack)
    async def send_and_drain(spec: dict, limit: float) -> tuple[dict, list[dict]]:
        send = await ctx.workers.one(
            0, {"cmd": "broadcast_send", "channel_id": fx["broadcast_channel"], **spec}
        )
        expected = len(send["sends"]) * n
        return send, await drain_broadcast(ctx, expected, limit)

    bursts = []
    for b in range(cfg.bursts):
        await ctx.workers.all({"cmd": "reset_recv"})
        spec = {
            "seq0": (b + 1) * 1_000_000,
            "count": cfg.burst_msgs,
            "mode": "burst",
            "window": cfg.burst_window,
        }
        (send, reports), _wall, srv_cpu, gen_cpu = await measured(
            ctx, send_and_drain(spec, cfg.drain_s + cfg.burst_msgs * n / 2000), f"burst{b + 1}"
        )
        sends = {int(k): v for k, v in send["sends"].items()}
        stats = broadcast_stats(sends, reports, n)
        stats["ack_errors"] = send["ack_errors"]
        stats["server_cpu"], stats["loadgen_cpu"] = srv_cpu, gen_cpu
        stats.pop("_completion_ms")
        bursts.append(stats)
        log(
            f"  burst {b + 1}: {stats['delivered']}/{stats['expected']} in {stats['seconds']:.2f}s"
            f" = {stats['deliveries_per_s'] or 0:.0f} deliveries/s (server CPU "
            f"{stats['server_cpu']:.0%}, loadgen {stats['loadgen_cpu']:.0%})"
        )
        await ctx.server.wait_idle()
    rates = [b["deliveries_per_s"] or 0 for b in bursts]
    missing = sum(b["missing"] for b in bursts)
    ctx.result["broadcast_burst"] = {
        "runs": bursts,
        "deliveries_per_s": statistics.median(rates),
        "spread": [min(rates), max(rates)],
        "missing": missing,
        "dups": sum(b["dups"] for b in bursts),
        "ack_errors": sum(b["ack_errors"] for b in bursts),
        "server_cpu": statistics.median(b["server_cpu"] for b in bursts),
        "loadgen_cpu": statistics.median(b["loadgen_cpu"] for b in bursts),
    }
    if missing:
        ctx.problem("broadcast_burst", f"LOSS: {missing} deliveries missing")

    # paced: a fixed rate well under capacity; time until every member has each message
    await ctx.workers.all({"cmd": "reset_recv"})
    spec = {"seq0": 9_000_000, "count": cfg.paced_msgs, "mode": "paced", "rate": cfg.paced_rate}
    (send, reports), _wall, srv_cpu, gen_cpu = await measured(
        ctx, send_and_drain(spec, cfg.drain_s), "paced"
    )
    sends = {int(k): v for k, v in send["sends"].items()}
    stats = broadcast_stats(sends, reports, n)
    completion = stats.pop("_completion_ms")
    stats["late"] = sum(1 for c in completion if c > cfg.late_ms)
    stats["ack_errors"] = send["ack_errors"]
    stats["rate_msgs_per_s"] = cfg.paced_rate
    stats["server_cpu"], stats["loadgen_cpu"] = srv_cpu, gen_cpu
    ctx.result["broadcast_paced"] = stats
    log(
        f"  paced {cfg.paced_rate}/s x {n}: p50 {stats['complete_p50_ms']} ms, p99 "
        f"{stats['complete_p99_ms']} ms until all have it; missing {stats['missing']}, "
        f"late {stats['late']}"
    )
    if stats["missing"]:
        ctx.problem("broadcast_paced", f"LOSS: {stats['missing']} deliveries missing")
    await ctx.server.wait_idle()

    # heartbeat storm: every socket, closed loop, for heartbeat_s
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
        rows = ctx.writes.rows("accounts_user", wall0, wall1 + 1.0)
        # The throttle decides on the application's clock: judge it on the stored
        # last_active_at values (the DB's own write time lags them by a few ms of jitter)
        by_user = writes_by_row(ctx.writes.rows("accounts_user", wall0, wall1 + 1.0, "val"))
        by_commit = writes_by_row(rows)
        interval = cfg.last_active_interval
        hb.update(
            {
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
        )
    ctx.result["heartbeat"] = hb
    log(
        f"  heartbeat: {count} in {span:.1f}s = {hb['per_s']:.0f}/s, p99 {hb['p99_ms']} ms; "
        f"db writes {hb.get('db_writes', 'n/a')}, max/user/interval "
        f"{hb.get('max_writes_per_user_per_interval', 'n/a')}"
    )


async def suite_connect(ctx: Context) -> None:
    await warm_up(ctx)
    await connect_phase(ctx, ctx.cfg.n_connect, "connect_n2")


async def suite_ack(ctx: Context) -> None:
    cfg = ctx.cfg
    await warm_up(ctx)
    parts = split(ctx.entries(cfg.ack_sockets), ctx.workers.count)
    replies = await ctx.workers.all(
        [{"cmd": "connect", "url": ctx.sio_url, "entries": p, "concurrency": 25} for p in parts]
    )
    ok = sum(r["ok"] for r in replies)
    joins = await ctx.workers.all(
        {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    if ok != cfg.ack_sockets or sum(j["ok"] for j in joins) != ok:
        ctx.problem("ack", f"only {ok} sockets connected / joined")
    await ctx.server.wait_idle()
    replies, _wall, srv_cpu, gen_cpu = await measured(
        ctx,
        ctx.workers.all(
            {
                "cmd": "loop",
                "event": "typing",
                "duration": cfg.ack_s,
                "window": 1,
                "start_delay": 0.2,
            }
        ),
        "ack",
    )
    count = sum(r["count"] for r in replies)
    span = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    lat = [v / 1000 for r in replies for v in r["lat_us"]]
    errors = sum(r["errors"] for r in replies)
    ctx.result["ack"] = {
        "sockets": ok,
        "count": count,
        "seconds": span,
        "per_s": count / span,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "errors": errors,
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
    }
    if errors:
        ctx.problem("ack", f"{errors} acks failed: {replies[0]['error_sample'][:2]}")
    log(
        f"  ack: {count} in {span:.1f}s = {count / span:.0f}/s, p50 {pct(lat, 50)} ms, p99 "
        f"{pct(lat, 99)} ms (server CPU {srv_cpu:.0%}, loadgen {gen_cpu:.0%})"
    )


async def suite_collab(ctx: Context, proto: str) -> None:
    cfg, fx = ctx.cfg, ctx.fixture
    metric = f"collab_{proto}"
    users = fx["users"]
    docs = []
    for note in fx["notes"][: cfg.docs]:
        docs.append(
            {
                "note_id": note["id"],
                "editors": [
                    {
                        "index": i,
                        "token": users[i]["token"],
                        "id": users[i]["id"],
                        "name": users[i]["name"],
                    }
                    for i in note["editors"][: cfg.editors]
                ],
            }
        )
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
        out[mode] = phase
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
    wall1 = time.time()
    if ctx.writes is not None:
        await asyncio.sleep(ctx.cfg.settle_s)
        note_ids = {row_key(d["note_id"]) for d in docs}
        rows = [r for r in ctx.writes.rows("notes_note", wall0, wall1) if row_key(r[0]) in note_ids]
        by_doc = writes_by_row(rows)
        minutes = (wall1 - wall0) / 60
        gaps = [b - a for t in by_doc.values() for a, b in itertools.pairwise(t)]
        out.update(
            {
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
                "save_max_wait_s": cfg.doc_save_max_wait,
            }
        )
        log_rows = [
            r
            for r in ctx.writes.rows("notes_noteupdate", wall0, wall1, "val")
            if row_key(r[0]) in note_ids
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
    ctx.result[metric] = out


SUITES = {
    "fanout": suite_fanout,
    "connect": suite_connect,
    "ack": suite_ack,
    "collab-sio": lambda ctx: suite_collab(ctx, "sio"),
    "collab-yws": lambda ctx: suite_collab(ctx, "yws"),
}


# --- environment ----------------------------------------------------------------------------------


def chorus_env(cfg: Config, spec: ServerSpec, urls: dict) -> dict[str, str]:
    from_env_drop = ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "JWT_SIGNING_KEY")
    env = {k: v for k, v in os.environ.items() if k not in from_env_drop}
    env.update(
        {
            "PYTHONPATH": str(CHORUS_ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CHORUS_VAR_DIR": str(VAR),
            "DATABASE_URL": urls[spec.db or "sqlite"],
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "LOGIN_THROTTLE_RATE": "",
            "JWT_ACCESS_TTL": str(7 * 24 * 3600),
            # raised for benchmarks (docs/configuration.md): the load generator is one client
            # per user sending far above a human rate
            "EVENT_RATE": "1000000",
            "EVENT_BURST": "1000000",
            "YJS_MESSAGE_RATE": "1000000",
            "YJS_MESSAGE_BURST": "1000000",
            "MAX_SOCKETS_PER_USER": "10000",
            "LAST_ACTIVE_WRITE_INTERVAL": str(cfg.last_active_interval),
            "DOC_SAVE_DEBOUNCE": str(cfg.doc_save_debounce),
            "DOC_SAVE_MAX_WAIT": str(cfg.doc_save_max_wait),
        }
    )
    if spec.redis:
        env["REDIS_URL"] = urls["redis"]
    env["BENCH_REDIS_URL"] = urls["redis"]
    return env


def ensure_postgres(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(
        base.replace("postgres://", "postgresql://") + "/postgres", autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def clean_redis(url: str) -> None:
    """Delete the keys Chorus uses (``chorus*``) in the bench's Redis database only."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter("chorus*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()


def make_fixture(cfg: Config, vendor: str, urls: dict) -> Path:
    out = VAR / f"fixture-{vendor}.json"
    env = chorus_env(cfg, ServerSpec("setup", "chorus", (), db=vendor), urls)
    users = max(cfg.users, cfg.docs * cfg.editors, cfg.ack_sockets)
    subprocess.run(
        [
            PYTHON,
            str(BENCH / "setup_data.py"),
            "--users",
            str(users),
            "--solo",
            str(cfg.ack_sockets),
            "--docs",
            str(cfg.docs),
            "--editors",
            str(cfg.editors),
            "--out",
            str(out),
        ],
        cwd=CHORUS_ROOT,
        env={**env, "BENCH_CHORUS_ROOT": str(CHORUS_ROOT)},
        check=True,
    )
    return out


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def snapshot(rev: str) -> Path:
    """The committed tree at ``rev`` (``git archive``, read-only on the repository), unpacked
    once under the bench var dir: the servers run that code however the working tree moves."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    target = VAR / f"tree-{sha[:12]}"
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def code_identity(at: str | None) -> dict:
    """Which Chorus code was measured: the commit, and whether the working tree differed."""
    with contextlib.suppress(Exception):
        if at:
            return {"commit": git("rev-parse", f"{at}^{{commit}}"), "source": f"snapshot of {at}"}
        dirty = git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "accounts",
            "channels_app",
            "config",
            "notes",
            "realtime",
            "requirements.txt",
        )
        return {
            "commit": git("rev-parse", "HEAD"),
            "source": "working tree",
            "uncommitted_changes": dirty.splitlines(),
        }
    return {}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in (
        "Django",
        "channels",
        "channels-redis",
        "daphne",
        "uvicorn",
        "twisted",
        "autobahn",
        "python-socketio",
        "python-engineio",
        "websockets",
        "pycrdt",
        "pycrdt-websocket",
        "redis",
        "psycopg",
        "PyJWT",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    with contextlib.suppress(Exception):
        out["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    lock = BENCH / "package-lock.json"
    if lock.exists():
        packages = json.loads(lock.read_text()).get("packages", {})
        for name in ("y-websocket", "yjs", "ws"):
            out[f"npm:{name}"] = packages.get(f"node_modules/{name}", {}).get("version")
    out["sqlite"] = sqlite3.sqlite_version
    return out


def machine() -> dict:
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    with contextlib.suppress(Exception):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["ram_gib"] = round(int(mem) / 1024 / 1024, 1)
    with contextlib.suppress(Exception):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        info["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


def service_versions(urls: dict, needs_pg: bool, needs_redis: bool) -> dict:
    out = {}
    if needs_redis:
        with contextlib.suppress(Exception):
            import redis

            out["redis-server"] = redis.Redis.from_url(urls["redis"]).info()["redis_version"]
    if needs_pg:
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(urls["postgres"].replace("postgres://", "postgresql://")) as c:
                out["postgresql"] = c.execute("SHOW server_version").fetchone()[0]
    return out


# --- the table ------------------------------------------------------------------------------------


def get(d: dict, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


#: (row label, higher is better, path into a server's results, problem keys, CPU shown)
METRICS = [
    ("connect+auth N1 (conn/s)", True, ("connect_n1", "rate"), ("connect_n1",), True),
    ("RSS/idle conn N1 (KiB)", False, ("connect_n1", "rss_per_conn_kib"), ("connect_n1",), 0),
    ("connect+auth N2 (conn/s)", True, ("connect_n2", "rate"), ("connect_n2",), True),
    ("RSS/idle conn N2 (KiB)", False, ("connect_n2", "rss_per_conn_kib"), ("connect_n2",), 0),
    (
        "broadcast deliveries/s",
        True,
        ("broadcast_burst", "deliveries_per_s"),
        ("broadcast", "broadcast_burst"),
        True,
    ),
    (
        "broadcast all-have-it p50 (ms)",
        False,
        ("broadcast_paced", "complete_p50_ms"),
        ("broadcast_paced",),
        True,
    ),
    (
        "broadcast all-have-it p99 (ms)",
        False,
        ("broadcast_paced", "complete_p99_ms"),
        ("broadcast_paced",),
        True,
    ),
    ("heartbeats/s", True, ("heartbeat", "per_s"), ("heartbeat",), True),
    ("heartbeat DB writes/min", False, ("heartbeat", "db_writes_per_min"), (), False),
    (
        "heartbeat max writes/user/interval",
        False,
        ("heartbeat", "max_writes_per_user_per_interval"),
        (),
        False,
    ),
    ("ack round trips/s (ACK sockets)", True, ("ack", "per_s"), ("ack",), True),
    (
        "collab sio updates/s (window)",
        True,
        ("collab_sio", "window", "updates_per_s"),
        ("collab_sio",),
        True,
    ),
    ("collab sio p99 (ms, RATE)", False, ("collab_sio", "paced", "p99_ms"), ("collab_sio",), True),
    ("collab sio DB writes/doc/min", False, ("collab_sio", "db_writes_per_doc_per_min"), (), 0),
    (
        "collab sio update-log rows/doc/min",
        False,
        ("collab_sio", "db_log_rows_per_doc_per_min"),
        (),
        0,
    ),
    (
        "collab yws updates/s (window)",
        True,
        ("collab_yws", "window", "updates_per_s"),
        ("collab_yws",),
        True,
    ),
    ("collab yws p99 (ms, RATE)", False, ("collab_yws", "paced", "p99_ms"), ("collab_yws",), True),
    ("collab yws DB writes/doc/min", False, ("collab_yws", "db_writes_per_doc_per_min"), (), 0),
    (
        "collab yws update-log rows/doc/min",
        False,
        ("collab_yws", "db_log_rows_per_doc_per_min"),
        (),
        0,
    ),
]


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


#: problem key -> the labels (prefixes) of the measured phases behind it
PHASES = {
    "connect_n1": ("connect_n1",),
    "connect_n2": ("connect_n2",),
    "broadcast": ("burst",),
    "broadcast_burst": ("burst",),
    "broadcast_paced": ("paced",),
    "heartbeat": ("heartbeat",),
    "ack": ("ack",),
    "collab_sio": ("collab_sio",),
    "collab_yws": ("collab_yws",),
}
NOISE = 0.3  # cores used by other processes during a phase above which it is marked "*"


def noisy(result: dict, keys: tuple[str, ...]) -> bool:
    prefixes = tuple(p for k in keys for p in PHASES.get(k, ()))
    return (
        any(
            label.startswith(prefixes) and (cpu or {}).get("other", 0) > NOISE
            for label, cpu in result.get("cpu", {}).items()
        )
        if prefixes
        else False
    )


def status_of(result: dict, keys: tuple[str, ...]) -> str:
    problems = [p for k in keys for p in result.get("problems", {}).get(k, [])]
    if any(p.startswith("LOSS") for p in problems):
        return "LOSS"
    if problems:
        return "ERR"
    return "ok*" if noisy(result, keys) else "ok"


def metric_label(label: str, higher: bool, cfg: Config) -> str:
    """A ``METRICS`` label with the run's sizes filled in and its direction marked."""
    rate = f"{cfg.docs}x{cfg.editors} at {cfg.collab_rate:g}/s"
    label = label.replace("N1", str(cfg.n_fanout)).replace("N2", str(cfg.n_connect))
    label = label.replace("ACK", str(cfg.ack_sockets)).replace("RATE", rate)
    return label + (" ↑" if higher else " ↓")


def markdown(head: list[str], rows: list[list]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
    return "\n".join(lines)


#: Metrics whose phase lasts about a second: their ratio of medians moves with the machine's
#: noise, so repeated runs also report per-round (paired) ratios.
PAIRED_METRICS = ("connect_n1", "connect_n2")
PAIRED_PEERS = ("sio", "sio-redis")


def paired_ratios(rounds: list[dict], cfg: Config) -> str:
    """With three rounds or more: each Chorus server's value in the connect rows (rate, RSS)
    divided by the peer's measured in the same round (seconds apart: suites run server after
    server), as the median of those per-round ratios and their interquartile range. Empty
    with fewer rounds."""
    if len(rounds) < 3:
        return ""
    peers = [p for p in PAIRED_PEERS if all(p in r for r in rounds)]
    rows = []
    for label, higher, path, _keys, _cpu in METRICS:
        if path[0] not in PAIRED_METRICS:
            continue
        for name in [s.name for s in SERVERS if s.name.startswith("chorus")]:
            cells = []
            for peer in peers:
                ratios = sorted(
                    get(r[name], *path) / get(r[peer], *path)
                    for r in rounds
                    if name in r and get(r[name], *path) and get(r[peer], *path)
                )
                if len(ratios) < 3:
                    cells.append("")
                    continue
                low, middle, high = statistics.quantiles(ratios, n=4, method="inclusive")
                cells.append(f"{middle:.2f}x ({low:.2f}-{high:.2f})")
            if any(cells):
                rows.append([metric_label(label, higher, cfg), name, *cells])
    if not rows:
        return ""
    head = ["metric", "server", *[f"÷{p} per round: median (IQR)" for p in peers]]
    return f"Paired ratios over {len(rounds)} rounds:\n\n" + markdown(head, rows)


def table(results: dict, cfg: Config) -> str:
    present_peers = [p for p in PEERS if p in results]
    head = ["metric", "server", "value", *[f"÷{p}" for p in present_peers], "srv CPU", "check"]
    rows = []
    for label, higher, path, keys, show_cpu in METRICS:
        label = metric_label(label, higher, cfg)
        for name in [s.name for s in SERVERS if s.name in results]:
            value = get(results[name], *path)
            if value is None:
                continue
            ratios = []
            for peer in present_peers:
                other = get(results[peer], *path)
                if name == peer or other in (None, 0) or not name.startswith("chorus"):
                    ratios.append("")
                else:
                    ratios.append(f"{value / other:.2f}x")
            cpu = get(results[name], *path[:-1], "server_cpu") if show_cpu else None
            cpu_text = f"{cpu:.0%}" if cpu is not None else ""
            rows.append(
                [label, name, fmt(value), *ratios, cpu_text, status_of(results[name], keys)]
            )
    return markdown(head, rows)


def ratio(results: dict, a: str, b: str, *path) -> float | None:
    x, y = get(results.get(a, {}), *path), get(results.get(b, {}), *path)
    if x is None or y in (None, 0):
        return None
    return x / y


def targets(results: dict, cfg: Config) -> list[dict]:
    """The issue's targets, each judged on the shipped server (chorus-daphne; with Redis:
    chorus-daphne-redis) and, for information, the uvicorn variant."""
    out = []

    def add(name: str, server: str, peer: str | None, value, bound, ok, detail: str) -> None:
        out.append(
            {
                "target": name,
                "server": server,
                "peer": peer,
                "value": value,
                "bound": bound,
                "met": ok,
                "detail": detail,
            }
        )

    for server in ("chorus-daphne", "chorus-uvicorn"):
        r = ratio(results, server, "sio", "broadcast_burst", "deliveries_per_s")
        if r is not None:
            add("broadcast deliveries/s ≥ 2x sio", server, "sio", r, 2.0, r >= 2.0, f"{r:.2f}x")
        for metric, n in (("connect_n1", cfg.n_fanout), ("connect_n2", cfg.n_connect)):
            r = ratio(results, server, "sio", metric, "rss_per_conn_kib")
            if r is not None:
                a = get(results[server], metric, "rss_per_conn_kib")
                b = get(results["sio"], metric, "rss_per_conn_kib")
                add(
                    f"RSS per idle conn ≤ sio (N={n})",
                    server,
                    "sio",
                    r,
                    1.0,
                    r <= 1.0,
                    f"{a:.1f} vs {b:.1f} KiB",
                )
            r = ratio(results, server, "sio", metric, "rate")
            if r is not None:
                add(
                    f"connect+auth rate ≥ sio (N={n})", server, "sio", r, 1.0, r >= 1.0, f"{r:.2f}x"
                )
    for server in ("chorus-daphne-redis", "chorus-uvicorn-redis"):
        r = ratio(results, server, "sio-redis", "ack", "per_s")
        if r is not None:
            add(
                "ack throughput (Redis) ≥ 3x sio-redis",
                server,
                "sio-redis",
                r,
                3.0,
                r >= 3.0,
                f"{r:.2f}x",
            )
    for s in SERVERS:
        if s.kind != "chorus" or s.name not in results:
            continue
        hb = results[s.name].get("heartbeat") or {}
        if "max_writes_per_user_per_interval" in hb:
            v = hb["max_writes_per_user_per_interval"]
            add(
                "heartbeat DB writes ≤ 1/user/LAST_ACTIVE_WRITE_INTERVAL",
                s.name,
                None,
                v,
                1,
                v <= 1,
                f"max {v} per user per {hb['interval_s']}s; {hb['db_writes']} writes",
            )
        for proto in ("yws", "sio"):
            c = results[s.name].get(f"collab_{proto}")
            if not c:
                continue
            if proto == "yws":
                r = ratio(
                    results, s.name, "pycrdt-websocket", "collab_yws", "window", "updates_per_s"
                )
                if r is not None:
                    add(
                        "collab updates/s ≥ pycrdt-websocket",
                        s.name,
                        "pycrdt-websocket",
                        r,
                        1.0,
                        r >= 1.0,
                        f"{r:.2f}x",
                    )
            p99 = get(c, "paced", "p99_ms")
            if p99 is not None:
                add(
                    f"collab ({proto}) p99 ≤ 50 ms at {cfg.docs}x{cfg.editors} x "
                    f"{cfg.collab_rate:g}/s",
                    s.name,
                    None,
                    p99,
                    50,
                    p99 <= 50,
                    f"{p99:.1f} ms",
                )
            if "db_writes_per_doc_per_min" in c:
                bound = 60 / cfg.doc_save_max_wait
                worst = c["db_writes_per_doc_per_min_max"]
                gap = c.get("db_save_gap_median_s")
                add(
                    f"collab ({proto}) DB writes/busy doc/min ≤ 60/DOC_SAVE_MAX_WAIT",
                    s.name,
                    None,
                    worst,
                    bound,
                    worst <= bound,
                    f"worst doc {worst:.2f}/min over {c['db_window_s']:.0f}s (mean "
                    f"{c['db_writes_per_doc_per_min']:.2f}; median gap between saves "
                    f"{gap if gap is None else round(gap, 1)} s), bound {bound:g}",
                )
    return out


def targets_text(items: list[dict]) -> str:
    lines = []
    for t in items:
        mark = "met" if t["met"] else "NOT MET"
        lines.append(f"- [{mark}] {t['target']} — {t['server']}: {t['detail']}")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------


async def run_suite(
    args: argparse.Namespace,
    cfg: Config,
    spec: ServerSpec,
    suite: str,
    fixtures: dict[str, Path],
    urls: dict,
    out_dir: Path,
    profile_dir: Path | None,
    result: dict,
) -> None:
    """One suite on a freshly started server; failures are recorded as problems."""
    waited = await wait_quiet(args.quiet_wait)
    if waited:
        result.setdefault("quiet_wait_s", {})[suite] = round(waited, 1)
    vendor = spec.db or "sqlite"
    fixture_path = fixtures[vendor]
    fixture = json.loads(fixture_path.read_text())
    writes = WriteLog(vendor, urls[vendor]) if spec.kind == "chorus" else None
    if spec.redis and spec.kind == "chorus":
        clean_redis(urls["redis"])
    server = Server(
        spec, chorus_env(cfg, spec, urls), fixture_path, out_dir / "logs" / f"{spec.name}.log"
    )
    workers = Workers(cfg.workers)
    ctx = Context(cfg, spec, server, workers, fixture, writes, result, profile_dir=profile_dir)
    try:
        await server.start()
        await workers.start()
        await asyncio.wait_for(SUITES[suite](ctx), args.suite_timeout)
    except Exception as error:
        ctx.problem(suite.replace("-", "_"), f"suite failed: {type(error).__name__}: {error}")
    finally:
        await server.stop()
        await workers.stop()


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


def merge_rounds(rounds: list[dict]) -> dict:
    """Repeated rounds -> one result: the median of every number, the union of problems."""
    if len(rounds) == 1:
        return rounds[0]

    worst = ("missing", "dups", "failed", "errors", "late", "ack_errors", "unexpected_closes")

    def merge(values: list, key: str = ""):
        present = [v for v in values if v is not None]
        if not present:
            return None
        if all(isinstance(v, bool) for v in present):
            return present[0]
        if all(isinstance(v, int | float) for v in present):
            if key in worst or key.startswith("max") or key.endswith("_max"):
                return max(present)  # a bound is judged on the worst round
            return statistics.median(present)
        if all(isinstance(v, dict) for v in present):
            keys = {k for v in present for k in v}
            return {k: merge([v.get(k) for v in present], k) for k in keys}
        return present[0]

    merged = merge(rounds)
    for name in merged:
        problems: dict[str, list] = {}
        for r in rounds:
            for metric, texts in r.get(name, {}).get("problems", {}).items():
                problems.setdefault(metric, []).extend(texts)
        if problems:
            merged[name]["problems"] = problems
        else:
            merged[name].pop("problems", None)
    return merged


async def run(args: argparse.Namespace) -> int:
    global VAR, RESULTS, CHORUS_ROOT
    VAR = Path(args.var_dir).resolve() if args.var_dir else VAR
    RESULTS = Path(args.results_dir).resolve() if args.results_dir else RESULTS
    if args.at:
        CHORUS_ROOT = snapshot(args.at)
        log(f"Chorus runs from a snapshot of {args.at}: {CHORUS_ROOT}")
    cfg = Config.make(args.quick)
    if args.workers:
        cfg.workers = args.workers
    cfg.profile_gil = args.profile_gil
    cfg.profile_rate = args.profile_rate
    for key in ("n_fanout", "n_connect", "heartbeat_s", "collab_rate", "burst_window"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    cfg.users = max(cfg.users, min(cfg.n_fanout, 1000))
    selected = [s for s in SERVERS if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - set(BY_NAME)
    if unknown:
        raise SystemExit(
            f"unknown server(s): {', '.join(sorted(unknown))}; choose from {', '.join(BY_NAME)}"
        )
    suites = args.suites or list(SUITES)
    if any(s.kind == "node" for s in selected) and not (BENCH / "node_modules").exists():
        log("installing the Node peer (npm ci in bench/)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--omit=optional"], cwd=BENCH, check=True
        )

    VAR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS / stamp
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    urls = {
        "sqlite": f"sqlite:///{VAR / 'bench.sqlite3'}",
        "postgres": args.pg_url,
        "redis": args.redis_url,
    }
    needs_pg = any(s.db == "postgres" for s in selected)
    needs_redis = any(s.redis for s in selected)
    fixtures: dict[str, Path] = {}
    log(f"setting up the bench database(s){' (quick)' if cfg.quick else ''}")
    fixtures["sqlite"] = make_fixture(cfg, "sqlite", urls)
    if needs_pg:
        ensure_postgres(args.pg_url)
        fixtures["postgres"] = make_fixture(cfg, "postgres", urls)

    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/run", *sys.argv[1:]]),
        "machine": machine(),
        "chorus": code_identity(args.at),
        "versions": {**versions(), **service_versions(urls, needs_pg, needs_redis)},
        "config": cfg.__dict__,
    }
    results: dict[str, dict] = {}
    profile_dir = None
    if args.profile:
        if not available():
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        profile_dir = out_dir / "profiles"
        profile_dir.mkdir()
    started = time.monotonic()
    rounds: list[dict[str, dict]] = []
    for round_no in range(args.repeat):
        current: dict[str, dict] = {spec.name: {"note": spec.note} for spec in selected}
        rounds.append(current)
        # suite-major order (every server's fanout, then every server's connect, …) keeps the
        # runs that are compared close in time; odd rounds reverse the server order
        order = selected if round_no % 2 == 0 else list(reversed(selected))
        for suite in suites:
            for spec in order:
                if suite not in spec.suites:
                    continue
                tag = f" (round {round_no + 1}/{args.repeat})" if args.repeat > 1 else ""
                log(f"{spec.name}: {suite}{tag}")
                await run_suite(
                    args, cfg, spec, suite, fixtures, urls, out_dir, profile_dir, current[spec.name]
                )
    results = merge_rounds(rounds)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]

    text = table(results, cfg)
    paired = paired_ratios(rounds, cfg)
    if paired:
        text += "\n\n" + paired
    goals = targets(results, cfg)
    invalid = {name: r["problems"] for name, r in results.items() if r.get("problems")}
    report = {
        **meta,
        "results": results,
        "rounds": rounds if args.repeat > 1 else None,
        "targets": goals,
        "invalid": invalid,
        "table": text,
    }
    path = out_dir / "results.json"
    path.write_text(json.dumps(report, indent=1, default=str))
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
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description=__doc__.split("\n\n")[0],
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
    args = parser.parse_args()
    if args.redis_url.rstrip("/").endswith("/0") or args.redis_url.count("/") < 3:
        raise SystemExit(
            "bench/run: use a spare Redis database (e.g. redis://127.0.0.1:6379/9), never db 0"
        )
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

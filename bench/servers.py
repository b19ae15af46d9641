"""The servers under test: their table (``SERVERS``), how each is started, waited for, measured
and stopped (``Server``), and the environment every Chorus server runs with (``chorus_env``).

A server is one process on 127.0.0.1 on a fresh port — or ``instances`` of them on the same
database and Redis (``chorus-daphne-redis-pair``: Chorus without sticky sessions) — started
per suite and stopped by pid; it dies with the harness (bench/processes.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.config import BENCH, PYTHON, ROOT, VENV_BIN, Config, Paths
from bench.measures import proc_cpu_s, proc_rss_kib
from bench.processes import die_with_parent, free_port


@dataclass
class ServerSpec:
    name: str
    kind: str  # chorus | sio | ceiling | pycrdt | node
    suites: tuple[str, ...]
    asgi: str = ""  # daphne | uvicorn (chorus)
    db: str = ""  # sqlite | postgres (chorus)
    redis: bool = False
    note: str = ""
    instances: int = 1  # processes on the same database and Redis, each on its own port


EVENT_SUITES = ("fanout", "connect", "ack", "collab-sio")
POLLING_SUITES = ("connect-polling", "ack-polling")
PUBLISH_SUITES = ("server-publish",)  # an out-of-process publisher: servers with Redis
SERVERS = [
    ServerSpec(
        "chorus-daphne",
        "chorus",
        (*EVENT_SUITES, "collab-yws", *POLLING_SUITES),
        "daphne",
        "sqlite",
        note="daphne, SQLite, in-memory layer",
    ),
    ServerSpec(
        "chorus-uvicorn",
        "chorus",
        (*EVENT_SUITES, "collab-yws", *POLLING_SUITES),
        "uvicorn",
        "sqlite",
        note="uvicorn, SQLite, in-memory layer",
    ),
    ServerSpec(
        "chorus-daphne-redis",
        "chorus",
        (*EVENT_SUITES, "collab-yws", *POLLING_SUITES, *PUBLISH_SUITES),
        "daphne",
        "postgres",
        True,
        note="daphne, PostgreSQL, Redis",
    ),
    # Two daphnes on one Redis and database; every polling request after the handshake goes
    # to the instance the session does not live on, which forwards it (no sticky sessions)
    ServerSpec(
        "chorus-daphne-redis-pair",
        "chorus",
        POLLING_SUITES,
        "daphne",
        "postgres",
        True,
        note="2 x daphne, PostgreSQL, Redis; polling requests forwarded",
        instances=2,
    ),
    ServerSpec(
        "chorus-uvicorn-redis",
        "chorus",
        (*EVENT_SUITES, "collab-yws", *PUBLISH_SUITES),
        "uvicorn",
        "postgres",
        True,
        note="uvicorn, PostgreSQL, Redis",
    ),
    ServerSpec(
        "sio", "sio", (*EVENT_SUITES, *POLLING_SUITES), note="python-socketio 1 process, uvicorn"
    ),
    ServerSpec(
        "sio-redis",
        "sio",
        (*EVENT_SUITES, *POLLING_SUITES, *PUBLISH_SUITES),
        redis=True,
        note="python-socketio + AsyncRedisManager",
    ),
    ServerSpec("ws-ceiling", "ceiling", EVENT_SUITES, note="plain websockets"),
    ServerSpec("pycrdt-websocket", "pycrdt", ("collab-yws",), note="pycrdt-websocket ASGI"),
    ServerSpec("y-websocket-node", "node", ("collab-yws",), note="Node y-websocket 2.1.0"),
]
BY_NAME = {s.name: s for s in SERVERS}
PEERS = ["sio", "sio-redis", "ws-ceiling", "pycrdt-websocket", "y-websocket-node"]


def chorus_env(cfg: Config, spec: ServerSpec, urls: dict, paths: Paths) -> dict[str, str]:
    """The environment of a Chorus process (server or fixture setup) for ``spec``'s database:
    the bench var dir, the run's save / last-active intervals, rate limits raised."""
    from_env_drop = ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "JWT_SIGNING_KEY")
    env = {k: v for k, v in os.environ.items() if k not in from_env_drop}
    env.update(
        {
            "PYTHONPATH": str(paths.chorus_root),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CHORUS_VAR_DIR": str(paths.var),
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
            # the server API's per-key rate limit off: one publisher key is the whole load
            "SERVER_API_RATE_LIMIT": "0",
        }
    )
    if spec.redis:
        env["REDIS_URL"] = urls["redis"]
    env["BENCH_REDIS_URL"] = urls["redis"]
    return env


def sio_channel(port: int) -> str:
    """The Redis pub/sub channel of the ``sio-redis`` server on ``port``: an out-of-process
    emitter (``AsyncRedisManager(write_only=True)``) publishes on it."""
    return f"bench-sio-{port}"


class Server:
    """One server on 127.0.0.1: ``spec.instances`` processes (usually one), started, measured
    and stopped by pid. ``port`` / ``pid`` are the first instance's, ``ports`` every one's;
    CPU and RSS are the sum over the instances. Chorus runs from ``chorus_root`` (the working
    tree or a snapshot); the peers from this checkout."""

    def __init__(
        self,
        spec: ServerSpec,
        env: dict[str, str],
        fixture: Path,
        log_path: Path,
        chorus_root: Path,
    ) -> None:
        self.spec = spec
        self.env = env
        self.fixture = fixture
        self.log_path = log_path
        self.chorus_root = chorus_root
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen] = []

    @property
    def port(self) -> int:
        return self.ports[0] if self.ports else 0

    def command(self, port: int) -> list[str]:
        p = str(port)
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
            if spec.redis:
                cmd += ["--redis", self.env["BENCH_REDIS_URL"], "--channel", sio_channel(port)]
            return cmd
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
        """Start the process(es), one after the other, each waited for (60 s at most) until
        it serves."""
        for _ in range(self.spec.instances):
            port = free_port()
            env = dict(self.env)
            if self.spec.kind == "node":
                env.update(HOST="127.0.0.1", PORT=str(port))
            with self.log_path.open("ab") as out:
                out.write(f"=== {self.spec.name} on port {port}\n".encode())
                out.flush()
                proc = subprocess.Popen(
                    self.command(port),
                    cwd=self.chorus_root if self.spec.kind == "chorus" else ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            self.ports.append(port)
            self.procs.append(proc)
            await self._wait_ready(proc, port)

    async def _wait_ready(self, proc: subprocess.Popen, port: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited early; see {self.log_path}")
            if self._ready(port):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.spec.name} not ready in 60 s; see {self.log_path}")

    def _ready(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return False
        if self.spec.kind != "chorus":
            return True
        try:  # the Django app is loaded once the API answers 401
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/users/me/", timeout=2)
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False
        return False

    @property
    def pid(self) -> int:
        """The first instance's pid (the one ``--profile`` samples)."""
        return self.procs[0].pid

    def rss_kib(self) -> int:
        return sum(proc_rss_kib(p.pid) for p in self.procs)

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p.pid) for p in self.procs)

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
        """SIGTERM to every instance, then SIGKILL to those still alive after 15 s."""
        running = [p for p in self.procs if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(p.poll() is None for p in running):
            await asyncio.sleep(0.1)
        for proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

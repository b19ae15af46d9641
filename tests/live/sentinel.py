"""A throwaway Redis Sentinel deployment for the live tests: a primary, a replica and three
sentinels, each a ``redis-server`` process on a loopback port of its own, in a temp dir.

- ``redis_server_binary()``: Debian's ``redis-server`` (a sentinel is the same program run with
  ``--sentinel``, which is what Debian's ``redis-sentinel`` links to); when none is found and
  we are root with apt, ``apt-get install -y redis-server`` first (no service is started in a
  container without an init system; ours never use the default ports). ``None`` when impossible.
- ``SentinelCluster(tmp, binary).start()``: replica in sync, three sentinels agreeing on the
  primary; ``kill_primary()`` sends SIGKILL; ``wait_failover()`` waits until every sentinel
  names the replica as the master. Failover knobs are small (``DOWN_AFTER_MS``,
  ``FAILOVER_TIMEOUT_MS``) so a test sees one in a few seconds. ``stop()`` kills them all.

Nothing here sleeps a fixed time: every wait polls with a deadline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.live.harness import free_port

MASTER = "chorus"
#: A primary that has not answered for this long is "subjectively down" for a sentinel.
DOWN_AFTER_MS = 6000
#: Sentinel's failover timeout (also the pause before a failed failover is retried).
FAILOVER_TIMEOUT_MS = 3000


def redis_server_binary() -> str | None:
    """``redis-server``, installed with apt-get on first use where possible (root, apt)."""
    found = shutil.which("redis-server")
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "redis-server"]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False, capture_output=True)
        subprocess.run(install, env=env, check=False, capture_output=True)
    return shutil.which("redis-server")


def _wait(what: str, check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not within {timeout}s")


class SentinelCluster:
    """Primary + replica + three sentinels on loopback (module docstring)."""

    def __init__(self, tmp: Path, binary: str) -> None:
        self.tmp = tmp
        self.binary = binary
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.ports[f"sentinel{i}"]) for i in range(3)]

    @property
    def sentinels_setting(self) -> str:
        """The value of ``REDIS_SENTINELS`` for a daphne."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def _spawn(self, name: str, config: str, *extra: str) -> None:
        directory = self.tmp / name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "redis.conf"
        path.write_text(config)
        log = (directory / "log").open("ab")
        self.processes[name] = subprocess.Popen(
            [self.binary, str(path), *extra],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def _server(self, name: str, replica_of: int | None = None) -> None:
        port = self.ports[name] = free_port()
        config = (
            f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndaemonize no\n'
            f"dir {self.tmp / name}\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n"
        )
        if replica_of is not None:
            config += f"replicaof 127.0.0.1 {replica_of}\n"
        self._spawn(name, config)

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> SentinelCluster:
        self._server("primary")
        _wait("primary", lambda: self.client("primary").ping())
        self._server("replica", replica_of=self.ports["primary"])
        _wait(
            "replica in sync",
            lambda: self.client("replica").info("replication")["master_link_status"] == "up",
        )
        for i in range(3):
            name = f"sentinel{i}"
            port = self.ports[name] = free_port()
            self._spawn(
                name,
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.tmp / name}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER} 1\n",
                "--sentinel",
            )
        for i in range(3):
            _wait(
                f"sentinel{i} sees the replica and the other sentinels",
                lambda i=i: self._sentinel_view(i),
            )
        return self

    def _sentinel_view(self, i: int) -> bool:
        state = self.client(f"sentinel{i}").sentinel_master(MASTER)
        return int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= 2

    def master_port(self, i: int = 0) -> int:
        _host, port = self.client(f"sentinel{i}").sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def kill_primary(self) -> None:
        self.processes["primary"].kill()
        self.processes["primary"].wait()

    def wait_failover(self, timeout: float = 30.0) -> None:
        """Until every sentinel names the replica as the master, and it accepts writes."""
        replica = self.ports["replica"]
        _wait(
            "failover to the replica",
            lambda: (
                all(self.master_port(i) == replica for i in range(3))
                and self.client("replica").info("replication")["role"] == "master"
            ),
            timeout,
        )

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in self.processes:
            path = self.tmp / name / "log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

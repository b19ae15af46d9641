"""What a run records about itself in results.json: which Chorus code ran (a commit, a
snapshot, uncommitted changes), the package and service versions, and the machine.

``snapshot`` also makes the ``--at REV`` tree the servers run from.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from bench.config import BENCH, ROOT


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def snapshot(rev: str, var: Path) -> Path:
    """The committed tree at ``rev`` (``git archive``, read-only on the repository), unpacked
    once under the bench var dir: the servers run that code however the working tree moves."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    target = var / f"tree-{sha[:12]}"
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
    """Python, the Python packages that matter, Node and the npm peer's, SQLite."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
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
    """CPU count and model, kernel, RAM and the load average at the start."""
    info: dict[str, Any] = {"nproc": os.cpu_count(), "kernel": platform.release()}
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
    """The Redis and PostgreSQL server versions, for the services the run uses."""
    out: dict[str, Any] = {}
    if needs_redis:
        with contextlib.suppress(Exception):
            import redis

            out["redis-server"] = redis.Redis.from_url(urls["redis"]).info()["redis_version"]
    if needs_pg:
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(urls["postgres"].replace("postgres://", "postgresql://")) as c:
                row = c.execute("SHOW server_version").fetchone()
                if row is not None:
                    out["postgresql"] = row[0]
    return out

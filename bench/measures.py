"""What the harness measures outside the load generator: CPU seconds and RSS from ``/proc``,
percentiles, and the database writes counted by the bench's write log.

``WriteLog`` reads ``bench_write_log`` (filled by triggers; see bench/setup_data.py); the
helpers below turn its rows into per-row write times and "most writes in any window".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from pathlib import Path


def proc_rss_kib(pid: int) -> int:
    """Resident set size of ``pid``, KiB."""
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


def pct(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


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
    """Write-log rows grouped by row id, each row's times sorted."""
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

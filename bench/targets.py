"""The issue's targets as data: each ``Target`` row names a value in a server's results (or
its ratio to a peer's), a bound and a direction; ``targets`` judges every row of ``TARGETS``
with one function, ``judge``. The comparisons are judged on the shipped servers (chorus-daphne;
with Redis chorus-daphne-redis) and, for information, their uvicorn variants; the bounds on
every Chorus server that ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.config import Config
from bench.report import get
from bench.servers import SERVERS


@dataclass(frozen=True)
class Reading:
    """What a target's detail text is made from."""

    value: Any  # what is judged: the server's value, or its ratio to the peer's
    mine: Any  # the server's value at the target's path
    theirs: Any  # the peer's value at the path (None without a peer)
    phase: dict  # the server's result under the path's first key (e.g. its "heartbeat")
    bound: float


def as_ratio(r: Reading) -> str:
    return f"{r.value:.2f}x"


def as_kib_pair(r: Reading) -> str:
    return f"{r.mine:.1f} vs {r.theirs:.1f} KiB"


def as_ms(r: Reading) -> str:
    return f"{r.value:.1f} ms"


def as_heartbeat_writes(r: Reading) -> str:
    return f"max {r.value} per user per {r.phase['interval_s']}s; {r.phase['db_writes']} writes"


def as_document_saves(r: Reading) -> str:
    c, gap = r.phase, r.phase.get("db_save_gap_median_s")
    return (
        f"worst doc {r.value:.2f}/min over {c['db_window_s']:.0f}s (mean "
        f"{c['db_writes_per_doc_per_min']:.2f}; median gap between saves "
        f"{gap if gap is None else round(gap, 1)} s), bound {r.bound:g}"
    )


@dataclass(frozen=True)
class Target:
    """One target: ``name`` (``str.format`` fields from the Config), the value at ``path``
    (divided by ``peer``'s if a peer is named), met when ``>= bound`` (``at_least``) or
    ``<= bound``; ``bound`` may depend on the Config."""

    name: str
    path: tuple[str, ...]
    bound: float | Callable[[Config], float]
    at_least: bool
    peer: str | None = None
    detail: Callable[[Reading], str] = as_ratio


@dataclass(frozen=True)
class TargetGroup:
    """Targets judged on these servers, server by server, in this order."""

    servers: tuple[str, ...]
    targets: tuple[Target, ...]


def collab_bounds(proto: str) -> tuple[Target, ...]:
    """The latency and document-save bounds of one collaborative protocol."""
    return (
        Target(
            f"collab ({proto}) p99 ≤ 50 ms at {{docs}}x{{editors}} x {{collab_rate:g}}/s",
            (f"collab_{proto}", "paced", "p99_ms"),
            50,
            at_least=False,
            detail=as_ms,
        ),
        Target(
            f"collab ({proto}) DB writes/busy doc/min ≤ 60/DOC_SAVE_MAX_WAIT",
            (f"collab_{proto}", "db_writes_per_doc_per_min_max"),
            lambda cfg: 60 / cfg.doc_save_max_wait,
            at_least=False,
            detail=as_document_saves,
        ),
    )


def connect_targets(metric: str, size: str) -> tuple[Target, ...]:
    """RSS per idle connection and connect rate against sio, for one connect phase."""
    return (
        Target(
            f"RSS per idle conn ≤ sio (N={{{size}}})",
            (metric, "rss_per_conn_kib"),
            1.0,
            at_least=False,
            peer="sio",
            detail=as_kib_pair,
        ),
        Target(f"connect+auth rate ≥ sio (N={{{size}}})", (metric, "rate"), 1.0, True, "sio"),
    )


TARGETS = (
    TargetGroup(
        ("chorus-daphne", "chorus-uvicorn"),
        (
            Target(
                "broadcast deliveries/s ≥ 2x sio",
                ("broadcast_burst", "deliveries_per_s"),
                2.0,
                True,
                "sio",
            ),
            *connect_targets("connect_n1", "n_fanout"),
            *connect_targets("connect_n2", "n_connect"),
        ),
    ),
    TargetGroup(
        ("chorus-daphne-redis", "chorus-uvicorn-redis"),
        (
            Target(
                "ack throughput (Redis) ≥ 3x sio-redis", ("ack", "per_s"), 3.0, True, "sio-redis"
            ),
        ),
    ),
    TargetGroup(
        tuple(s.name for s in SERVERS if s.kind == "chorus"),
        (
            Target(
                "heartbeat DB writes ≤ 1/user/LAST_ACTIVE_WRITE_INTERVAL",
                ("heartbeat", "max_writes_per_user_per_interval"),
                1,
                at_least=False,
                detail=as_heartbeat_writes,
            ),
            Target(
                "collab updates/s ≥ pycrdt-websocket",
                ("collab_yws", "window", "updates_per_s"),
                1.0,
                True,
                "pycrdt-websocket",
            ),
            *collab_bounds("yws"),
            *collab_bounds("sio"),
        ),
    ),
)


def judge(target: Target, server: str, results: dict, cfg: Config) -> dict | None:
    """``target`` judged on ``server``'s results; None if the run did not measure it."""
    mine = get(results.get(server, {}), *target.path)
    theirs = get(results.get(target.peer, {}), *target.path) if target.peer else None
    if mine is None or (target.peer and theirs in (None, 0)):
        return None
    value = mine / theirs if target.peer else mine
    bound = target.bound(cfg) if callable(target.bound) else target.bound
    reading = Reading(value, mine, theirs, results[server][target.path[0]], bound)
    return {
        "target": target.name.format(**vars(cfg)),
        "server": server,
        "peer": target.peer,
        "value": value,
        "bound": bound,
        "met": value >= bound if target.at_least else value <= bound,
        "detail": target.detail(reading),
    }


def targets(results: dict, cfg: Config) -> list[dict]:
    """Every target of ``TARGETS`` the run measured, judged (group by group, server by
    server)."""
    judged = (
        judge(target, server, results, cfg)
        for group in TARGETS
        for server in group.servers
        for target in group.targets
    )
    return [t for t in judged if t is not None]


def targets_text(items: list[dict]) -> str:
    """One ``- [met] target — server: detail`` line per judged target."""
    lines = []
    for t in items:
        mark = "met" if t["met"] else "NOT MET"
        lines.append(f"- [{mark}] {t['target']} — {t['server']}: {t['detail']}")
    return "\n".join(lines)

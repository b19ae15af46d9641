"""The results table: one row per metric and server, the value, its ratio to each peer, the
server's CPU share and a check (ok / ok* / ERR / LOSS); the comparisons of a Chorus server
with another (``RELATIVE``: what the no-sticky routing costs); with three rounds or more also
the paired ratios of the connect rows. ``METRICS`` is the table's definition, as data.
"""

from __future__ import annotations

import statistics

from bench.config import Config
from bench.servers import PEERS, SERVERS


def get(d: dict, *path):
    """The value at ``path`` in nested dicts, or None if any key is missing."""
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
    (
        "connect+auth polling NP (conn/s)",
        True,
        ("connect_polling", "rate"),
        ("connect_polling",),
        True,
    ),
    (
        "RSS/idle polling session NP (KiB)",
        False,
        ("connect_polling", "rss_per_conn_kib"),
        ("connect_polling",),
        0,
    ),
    (
        "ack round trips/s polling (ACK sockets)",
        True,
        ("ack_polling", "per_s"),
        ("ack_polling",),
        True,
    ),
    ("ack polling p50 (ms)", False, ("ack_polling", "p50_ms"), ("ack_polling",), True),
    ("ack polling p99 (ms)", False, ("ack_polling", "p99_ms"), ("ack_polling",), True),
    (
        "server-publish events/s (PUB)",
        True,
        ("server_publish", "burst", "events_per_s"),
        ("server_publish",),
        True,
    ),
    (
        "server-publish burst all-have-it p99 (ms)",
        False,
        ("server_publish", "burst", "complete_p99_ms"),
        ("server_publish",),
        True,
    ),
    (
        "server-publish p50 (ms, PRATE)",
        False,
        ("server_publish", "paced", "p50_ms"),
        ("server_publish",),
        True,
    ),
    (
        "server-publish p99 (ms, PRATE)",
        False,
        ("server_publish", "paced", "p99_ms"),
        ("server_publish",),
        True,
    ),
]

#: Chorus servers also compared with another Chorus server, not only with the peers:
#: (server, reference, the results (first path keys) compared). The pair's polling requests
#: all reach the instance their session does not live on, which forwards them over Redis to
#: the session's home; the reference is the same stack on one instance.
RELATIVE = (
    ("chorus-daphne-redis-pair", "chorus-daphne-redis", ("connect_polling", "ack_polling")),
)


def fmt(value) -> str:
    """A table cell: thousands without decimals, smaller numbers with one or two."""
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
    "connect_polling": ("polling-connect",),
    "ack_polling": ("polling-ack",),
    "server_publish": ("publish-",),
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
    label = label.replace("NP", str(cfg.n_polling))
    label = label.replace("PUB", f"{cfg.publish_sockets} sockets, window {cfg.publish_window}")
    label = label.replace("PRATE", f"{cfg.publish_rate:g}/s")
    label = label.replace("ACK", str(cfg.ack_sockets)).replace("RATE", rate)
    return label + (" ↑" if higher else " ↓")


def markdown(head: list[str], rows: list[list]) -> str:
    """A Markdown table, columns padded to their widest cell."""
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
PAIRED_METRICS = ("connect_n1", "connect_n2", "connect_polling")
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


def relative_table(results: dict, cfg: Config) -> str:
    """For each ``RELATIVE`` comparison whose two servers ran: the compared rows, both
    values and their ratio (empty if none ran)."""
    parts = []
    for name, reference, compared in RELATIVE:
        if name not in results or reference not in results:
            continue
        rows = []
        for label, higher, path, keys, _cpu in METRICS:
            if path[0] not in compared:
                continue
            mine, theirs = get(results[name], *path), get(results[reference], *path)
            if mine is None or theirs is None:
                continue
            ratio = f"{mine / theirs:.2f}x" if theirs else ""
            rows.append(
                [
                    metric_label(label, higher, cfg),
                    fmt(mine),
                    fmt(theirs),
                    ratio,
                    status_of(results[name], keys),
                ]
            )
        if rows:
            head = ["metric", name, reference, f"÷{reference}", "check"]
            parts.append(f"{name} against {reference}:\n\n" + markdown(head, rows))
    return "\n\n".join(parts)


def table(results: dict, cfg: Config) -> str:
    """The results table (Markdown): every ``METRICS`` row of every server that has it."""
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


#: Keys judged on the worst round when rounds are merged (as are ``max*`` / ``*_max``).
WORST = ("missing", "dups", "failed", "errors", "late", "ack_errors", "unexpected_closes")


def merge_values(values: list, key: str = ""):
    """One value from the rounds' values under ``key``: the median of numbers (the worst for
    losses and bounds), dicts merged key by key, anything else from the first round."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return present[0]
    if all(isinstance(v, int | float) for v in present):
        if key in WORST or key.startswith("max") or key.endswith("_max"):
            return max(present)  # a bound is judged on the worst round
        return statistics.median(present)
    if all(isinstance(v, dict) for v in present):
        keys = {k for v in present for k in v}
        return {k: merge_values([v.get(k) for v in present], k) for k in keys}
    return present[0]


def merge_rounds(rounds: list[dict]) -> dict:
    """Repeated rounds -> one result: the median of every number, the union of problems."""
    if len(rounds) == 1:
        return rounds[0]
    merged = merge_values(rounds)
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

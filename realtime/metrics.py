"""The process's Prometheus metrics: every metric object of Chorus is defined here, and the
instrumented modules only increment, observe or bind (docs/operations.md lists them all).

One endpoint per process (``/metrics``, ``config/monitoring.py``): Chorus runs as several
independent daphne processes, each scraped on its own, so the default registry of
prometheus-client is enough; its multiprocess mode is for pre-fork servers whose workers
share one port.

Cardinality is bounded by construction: labels are an endpoint, a transport, a refusal code
(the protocol's, a fixed set), an event name from the event registry or the fixed list of
server events (anything else counts as ``other``) — never a user, sid, room or note. Hot paths
pay one counter increment: labelled children are bound once (``SocketMetrics``,
``event_received``) rather than looked up per frame. Gauges of the hub's and the document
manager's sizes are read at scrape time (``watch_*``), costing nothing in between.

A leaf module: it imports nothing of Chorus, so any module may use it.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

#: The endpoints and transports of the socket metrics.
SOCKETIO, YWS = "socket.io", "y-websocket"
WEBSOCKET, POLLING = "websocket", "polling"
#: Server -> client events by name (docs/protocol.md §7); other names count as "other".
SERVER_EVENTS = frozenset(
    {
        "events",
        "events:channel",
        "note-events",
        "ydoc:document:state",
        "ydoc:document:update",
        "ydoc:user:joined",
        "ydoc:user:left",
        "ydoc:awareness:update",
        "error",
    }
)
OTHER = "other"

SOCKETS_OPEN = Gauge(
    "chorus_sockets_open",
    "Authenticated sockets open on this process.",
    ["endpoint", "transport"],
)
CONNECTS = Counter(
    "chorus_socket_connects_total",
    "Sockets that authenticated (Socket.IO CONNECT accepted, y-websocket joined).",
    ["endpoint"],
)
REFUSALS = Counter(
    "chorus_socket_refusals_total",
    "Sockets refused before they were open, by the protocol's code.",
    ["endpoint", "code"],
)
SLOW_CONSUMER_CLOSES = Counter(
    "chorus_slow_consumer_closes_total",
    "Sockets closed 4413: the client did not read (SEND_BUFFER_MAX_BYTES, SEND_STALL_TIMEOUT).",
)
EVENTS_IN = Counter(
    "chorus_events_received_total",
    "Socket.IO events received from clients, by event name (unregistered names: other).",
    ["event"],
)
EVENTS_OUT = Counter(
    "chorus_events_sent_total",
    "Socket.IO events this process broadcast to its sockets (once per event, however many"
    " sockets got it), by event name.",
    ["event"],
)
DELIVERIES = Counter(
    "chorus_broadcast_deliveries_total",
    "Broadcast frames written to local sockets (one per socket per broadcast).",
)
OUTBOX_DEPTH = Gauge("chorus_outbox_depth", "Messages waiting in the hub's outbox.")
OUTBOX_DROPS = Counter(
    "chorus_outbox_dropped_total",
    "Hub messages dropped: outbox full, or publishing failed after its retries.",
)
DOCUMENTS_OPEN = Gauge("chorus_documents_open", "Collaborative documents loaded in this process.")
DOCUMENT_SAVES = Counter(
    "chorus_document_saves_total", "Collaborative document saves that succeeded."
)
DOCUMENT_SAVE_FAILURES = Counter(
    "chorus_document_save_failures_total", "Collaborative document saves that failed (retried)."
)
DOCUMENT_SAVE_SECONDS = Histogram(
    "chorus_document_save_seconds",
    "Time to save a collaborative document (the update log compacted into its state).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPDATE_LOG_SECONDS = Histogram(
    "chorus_update_log_seconds",
    "Time from an accepted document change to its update-log row being written (its ack waits"
    " on it; group commit included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DATABASE_ERRORS = Counter(
    "chorus_database_errors_total",
    "Database errors raised in realtime's ORM calls (django.db.Error).",
)
REDIS_ERRORS = Counter(
    "chorus_redis_errors_total",
    "Redis connection and command errors of the channel layer and session registry pools.",
)
HEARTBEAT_WRITES = Counter(
    "chorus_heartbeat_writes_total",
    "User.last_active_at writes made for heartbeat events (at most one per user per"
    " LAST_ACTIVE_WRITE_INTERVAL).",
)

# --- bound children (the hot paths) --------------------------------------------------------

_events_in: dict[str, Any] = {}
_events_in_other = EVENTS_IN.labels(event=OTHER)
_events_out = {name: EVENTS_OUT.labels(event=name) for name in SERVER_EVENTS}
_events_out_other = EVENTS_OUT.labels(event=OTHER)


def register_event_names(names: Iterable[str]) -> None:
    """Bind a child of ``chorus_events_received_total`` for each client event name (the event
    registry's, ``realtime.events``); other names count as ``other``."""
    for name in names:
        if name not in _events_in:
            _events_in[name] = EVENTS_IN.labels(event=name)


def event_received(name: object) -> None:
    """Count a client event named ``name`` (any value a client sent)."""
    child = _events_in.get(name) if isinstance(name, str) else None
    (child or _events_in_other).inc()


def event_sent(name: str) -> None:
    """Count a broadcast of server event ``name``."""
    (_events_out.get(name) or _events_out_other).inc()


def event_name_of(frame: str) -> str:
    """The event name of a Socket.IO event text frame (``42["name",…]``), else ``""``."""
    if frame.startswith('42["'):
        end = frame.find('"', 4)
        if end > 0:
            return frame[4:end]
    return ""


class SocketMetrics:
    """The metrics of one socket's life, labels bound once: ``opened`` (counted as open on a
    transport) and ``closed``; ``moved`` follows Engine.IO's upgrade."""

    __slots__ = ("_open", "endpoint")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._open: Any = None

    def refused(self, code: str) -> None:
        REFUSALS.labels(endpoint=self.endpoint, code=code).inc()

    def opened(self, transport: str) -> None:
        if self._open is None:
            CONNECTS.labels(endpoint=self.endpoint).inc()
            self._open = SOCKETS_OPEN.labels(endpoint=self.endpoint, transport=transport)
            self._open.inc()

    def moved(self, transport: str) -> None:
        if self._open is not None:
            self._open.dec()
            self._open = SOCKETS_OPEN.labels(endpoint=self.endpoint, transport=transport)
            self._open.inc()

    def closed(self) -> None:
        if self._open is not None:
            self._open.dec()
            self._open = None


# --- gauges read at scrape time --------------------------------------------------------------

_sizes: dict[Gauge, weakref.WeakSet] = {
    OUTBOX_DEPTH: weakref.WeakSet(),
    DOCUMENTS_OPEN: weakref.WeakSet(),
}


def _watch(gauge: Gauge, owner: object, size: Callable[[Any], int]) -> None:
    owners = _sizes[gauge]
    owners.add(owner)
    gauge.set_function(lambda: float(sum(size(each) for each in list(owners))))


def watch_outbox(hub: object, size: Callable[[Any], int]) -> None:
    """``chorus_outbox_depth`` sums ``size(hub)`` over the live hubs (one per event loop)."""
    _watch(OUTBOX_DEPTH, hub, size)


def watch_documents(manager: object, size: Callable[[Any], int]) -> None:
    """``chorus_documents_open`` sums ``size(manager)`` over the live document managers."""
    _watch(DOCUMENTS_OPEN, manager, size)

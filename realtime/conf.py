"""The realtime knobs: one settings object with a defaults table.

Every limit and timing of the realtime layer lives here, in ``DEFAULTS``, with the unit in its
name or comment. Values come from Django's ``settings.CHORUS`` dict (filled from environment
variables of the same names by ``config/settings.py``) and fall back to ``DEFAULTS``.
``realtime_settings.NAME`` reads the current value (cached until ``setting_changed`` reports
a change to ``CHORUS``), so ``override_settings`` works in tests and nothing is copied into
class attributes at import time.

This module touches no Django setting at import time (the lazy ``settings`` object and the
``setting_changed`` signal only), so ``config/settings.py`` may import ``DEFAULTS`` to parse
the environment.
Module map: docs/realtime.md.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

#: name -> default. The documented table is docs/configuration.md; keep the two in step.
DEFAULTS: dict[str, Any] = {
    # Engine.IO heartbeat: the server sends PING every interval and drops a socket whose PONG
    # has not arrived within the timeout after it. Seconds.
    "WEBSOCKET_PING_INTERVAL": 25.0,
    "WEBSOCKET_PING_TIMEOUT": 20.0,
    # Largest frame a socket may send; a larger one closes the socket with code 1009. Bytes.
    "WEBSOCKET_MAX_MESSAGE_BYTES": 1_000_000,
    # Send high-water mark per socket: a frame is not written while more than this many bytes
    # wait for the client to take them; the socket is closed with 4413 instead. One reply
    # carrying a whole document (a state, a sync step 2) does not count while it waits. Bytes.
    "SEND_BUFFER_MAX_BYTES": 48 * 2**20,
    # A socket whose client has taken none of the bytes waiting for it for this long is
    # closed with 4413, however few they are. Seconds.
    "SEND_STALL_TIMEOUT": 60.0,
    # A socket must send its Socket.IO CONNECT within this many seconds after OPEN. Seconds.
    "CONNECT_TIMEOUT": 10.0,
    # Sockets of one client address not yet authenticated, per process; more are closed 4429.
    "MAX_UNAUTHENTICATED_PER_ADDRESS": 256,
    # How long a session record lives in the registry without a pong or heartbeat. Seconds.
    # Must exceed ping interval + ping timeout, or healthy sockets would flicker offline.
    "SESSION_TTL": 60.0,
    # Connection state recovery (docs/protocol.md §4.1): a client that reconnects within this
    # many seconds of losing its socket gets its rooms back and the broadcasts it missed.
    # 0 turns it off (no pid in the CONNECT reply, no offsets on events). Seconds.
    "RECOVERY_WINDOW": 120.0,
    # Broadcasts kept for recovery (across all rooms; Redis trims approximately). A client
    # that missed more than the log still holds gets a normal connect. Entries.
    "RECOVERY_LOG_SIZE": 10_000,
    # Sockets whose handshake User-Agent matches this (case-insensitive regex) get no pid and
    # no offsets: python-socketio cannot recover, and an offset (an extra event argument)
    # breaks its one-parameter handlers. Empty: every socket gets them.
    "RECOVERY_SKIP_USER_AGENTS": r"python|aiohttp",
    # How often each process looks for expired sessions (to announce "offline"). Seconds.
    "SESSION_SWEEP_INTERVAL": 5.0,
    # Graceful drain on SIGTERM (realtime.lifecycle, docs/operations.md): seconds the
    # instance stays listening but not ready (/readyz 503, new sockets refused with 1013) so
    # a balancer that polls /readyz stops sending it work; 0 (nginx, passive checks) stops
    # listening at once. Seconds.
    "DRAIN_WINDOW": 0.0,
    # Then: seconds its sockets (told to reconnect: close 1001) get to close and clean up
    # before documents are saved; HTTP requests still being answered then get as long again
    # before the rest is cancelled. Seconds.
    "DRAIN_CLOSE_TIMEOUT": 5.0,
    # Each process re-adds its room subscriptions this often (and before the layer's
    # group_expiry), so rooms heal within this time after a Redis restart. Seconds.
    "GROUP_REFRESH_INTERVAL": 60.0,
    # User.last_active_at is written at most once per interval per user, across all instances.
    "LAST_ACTIVE_WRITE_INTERVAL": 60.0,
    # Per-socket token bucket for client events: sustained rate (events/s) and burst size.
    "EVENT_RATE": 20.0,
    "EVENT_BURST": 40,
    # A socket refused this many times in a row for rate is disconnected.
    "RATE_LIMIT_DISCONNECT_AFTER": 100,
    # Concurrent sockets (Socket.IO and y-websocket) one user may hold across all instances.
    "MAX_SOCKETS_PER_USER": 20,
    # Server-to-client calls (``push.acall``) one socket may have waiting for its answer; one
    # more is refused with ``too_many_calls``. Calls.
    "CALL_MAX_PENDING": 100,
    # Per-connection token bucket for y-websocket messages (an editor sends an update and an
    # awareness message per keystroke): sustained rate (messages/s) and burst size. Messages
    # beyond it wait for the bucket (none is dropped; TCP holds back a client that keeps on).
    "YJS_MESSAGE_RATE": 60.0,
    "YJS_MESSAGE_BURST": 120,
    # Typing events relayed per user per channel: at most one per interval. Seconds.
    "TYPING_MIN_INTERVAL": 1.0,
    # Collaborative documents: trailing debounce and ceiling for saves. Seconds.
    "DOC_SAVE_DEBOUNCE": 2.0,
    "DOC_SAVE_MAX_WAIT": 10.0,
    # Collaborative documents: size limits. Bytes.
    "DOC_MAX_UPDATE_BYTES": 1_000_000,
    "DOC_MAX_AWARENESS_BYTES": 64_000,
    "DOC_MAX_BYTES": 10_000_000,
    # Updates a document holds that it cannot integrate yet (they build on changes the server
    # has not seen); one more is refused and the waiting ones are dropped.
    "DOC_MAX_PENDING_UPDATES": 100,
    # Largest client-rendered data.content ({md, html, json}) accepted, over Socket.IO and
    # REST alike, measured as compact UTF-8 JSON (notes/content.py). Bytes.
    "DOC_MAX_CONTENT_BYTES": 2_000_000,
    # Awareness (cursors): client ids one connection may own, bytes of one client's state, and
    # bytes of all states kept per document (what a newcomer is sent at most).
    "AWARENESS_MAX_IDS_PER_CONNECTION": 4,
    "AWARENESS_MAX_STATE_BYTES": 8_192,
    "AWARENESS_MAX_DOCUMENT_BYTES": 1_000_000,
    # Under daphne, write broadcast frames (framed once) straight to each connection's
    # transport. Off: every frame goes through the ASGI send path.
    "FAST_BROADCAST": True,
    # Under daphne, stop reading a WebSocket while its application queue holds 32 messages or
    # 4 MiB (daphne itself queues without limit): TCP backpressure on a flooding client.
    "INBOUND_BACKPRESSURE": True,
    # Under daphne, hand a clean WebSocket upgrade request on plain TCP straight to the
    # WebSocket protocol instead of through daphne's HTTP parser (realtime/transport/upgrade.py).
    "FAST_UPGRADE": True,
    # Transport patches (realtime/transport/__init__.py) not to install, by name:
    # "daphne-shutdown", "autobahn-log", "websocket-closes", "fast-upgrade", "http", "gc".
    # A patch is also skipped, with a warning, under a daphne / Twisted / autobahn version it
    # was not tested with.
    "TRANSPORT_PATCHES_OFF": (),
    # Serving processes: young-generation threshold of the garbage collector (allocations),
    # and startup objects frozen out of collection; 0 keeps Python's defaults
    # (realtime/transport/process.py).
    "GC_GEN0_THRESHOLD": 10_000,
    # A process-unique name for this server instance; "" means hostname:pid.
    "INSTANCE_ID": "",
}


#: Room for the framing of a y-websocket sync message around a document at ``DOC_MAX_BYTES``.
SYNC_HEADROOM = 64 * 1024


def largest_client_message() -> int:
    """The largest message a client may send to either endpoint: a Socket.IO frame
    (``WEBSOCKET_MAX_MESSAGE_BYTES``) or a y-websocket sync of a whole document
    (``DOC_MAX_BYTES`` + ``SYNC_HEADROOM``)."""
    return max(
        realtime_settings.WEBSOCKET_MAX_MESSAGE_BYTES,
        realtime_settings.DOC_MAX_BYTES + SYNC_HEADROOM,
    )


class RealtimeSettings:
    """Attribute access to the realtime knobs; unknown names raise AttributeError.

    ``settings.CHORUS`` is read once and kept until Django reports a change to it
    (``setting_changed``, sent by ``override_settings`` and the ``settings`` fixture): the
    socket code reads a dozen knobs per CONNECT, and each read through Django's lazy settings
    cost a microsecond."""

    def __init__(self) -> None:
        self._overrides: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown realtime setting {name!r}")
        overrides = self._overrides
        if overrides is None:
            overrides = self._overrides = dict(getattr(settings, "CHORUS", {}) or {})
        return overrides.get(name, DEFAULTS[name])

    def reload(self, *, setting: str = "CHORUS", **kwargs: Any) -> None:
        """Forget the cached values (a ``setting_changed`` receiver)."""
        if setting == "CHORUS":
            self._overrides = None


realtime_settings = RealtimeSettings()
setting_changed.connect(realtime_settings.reload)

"""The transport seam: everything that knows daphne, Twisted, autobahn or the interpreter's
internals, installed from one place (``install``, called once by ``config/asgi.py`` after the
application is loaded). Nothing outside this package imports daphne, Twisted or autobahn
(an import-linter contract, ``.importlinter``).

Pieces, in the order ``install`` applies them (name: module — what it changes; off switch):

- always: ``shutdown`` — Twisted reactor triggers (public API) run Chorus's start and its
  drain (``realtime.lifecycle``);
- ``daphne-shutdown``: ``shutdown`` — daphne's shutdown waits for the drain before it
  cancels the applications, and tolerates upgraded connections (else a crash at exit);
- ``autobahn-log``: ``direct`` — autobahn's per-connection debug text rendered only when
  logged;
- ``websocket-closes``: ``direct`` — every close code reaches the client, a close-handshake
  timeout, a late protocol error no longer resets, the inbound gate's hook (the gate itself:
  ``INBOUND_BACKPRESSURE``);
- ``fast-upgrade``: ``upgrade`` — a clean WebSocket upgrade goes straight to autobahn (also
  ``FAST_UPGRADE``);
- ``http``: ``http`` — request bodies over ``MAX_REQUEST_BODY_BYTES`` refused while they
  arrive (also ``DAPHNE_BODY_LIMIT``), ``scheme`` in WebSocket scopes;
- ``access-log``: ``accesslog`` — no token or ticket in daphne's access log (query values
  and JWT-shaped text redacted);
- ``gc``: ``process`` — the garbage collector's young-generation threshold and startup
  objects frozen (also ``GC_GEN0_THRESHOLD=0``).

Every named piece is switched off by listing its name in ``TRANSPORT_PATCHES_OFF``.
Direct writes (``FAST_BROADCAST``) need no patch: ``direct.write`` is called by
``realtime.outbound`` when the connection is daphne's on plain TCP.

Version guard: the daphne / Twisted / autobahn patches were written against the versions in
``TESTED``; under any other version of a library a piece patches, that piece is not installed
and a warning says so (Chorus then runs on the server's own behaviour, which the pieces
only improve). docs/realtime.md, *The transport seam*.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from importlib import metadata

from realtime.conf import realtime_settings

logger = logging.getLogger("chorus.realtime.transport")

#: The library versions the patches were written and tested against (requirements.txt).
TESTED: dict[str, frozenset[str]] = {
    "daphne": frozenset({"4.2.3"}),
    "twisted": frozenset({"26.10.0"}),
    "autobahn": frozenset({"26.11.1"}),
}

#: Each piece: the libraries it patches (the version guard) and how to install it.
PIECES: dict[str, tuple[str, ...]] = {
    "daphne-shutdown": ("daphne", "twisted"),
    "autobahn-log": ("autobahn",),
    "websocket-closes": ("daphne", "autobahn"),
    "fast-upgrade": ("daphne", "twisted"),
    "http": ("daphne", "twisted"),
    "access-log": ("daphne",),
    "gc": (),
}


def untested(libraries: tuple[str, ...]) -> list[str]:
    """``name==version`` of each of ``libraries`` installed at a version not in ``TESTED``."""
    found = []
    for name in libraries:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # not installed: the piece is a no-op anyway
        if version not in TESTED[name]:
            found.append(f"{name}=={version}")
    return found


def enabled(piece: str) -> bool:
    """Whether ``piece`` is to be installed: not switched off, and every library it patches
    at a tested version (else a warning is logged)."""
    if piece in realtime_settings.TRANSPORT_PATCHES_OFF:
        return False
    unknown = untested(PIECES[piece])
    if unknown:
        logger.warning(
            "Transport patch %r not installed: written for %s, found %s",
            piece,
            ", ".join(f"{name} {'/'.join(sorted(TESTED[name]))}" for name in PIECES[piece]),
            ", ".join(unknown),
        )
        return False
    return True


def install(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
) -> None:
    """Install every enabled piece (the module table), in order; ``start`` runs when a Twisted
    reactor starts, ``stop(stop_listening)`` (the drain, ``realtime.lifecycle.drain``) before
    it shuts down. Idempotent; the daphne pieces are
    no-ops unless daphne serves this process. The garbage-collector piece goes last: it
    freezes what loading the application allocated."""
    from realtime.transport import accesslog, direct, http, process, shutdown, upgrade

    shutdown.install_twisted_triggers(start, stop)
    if "daphne.server" in sys.modules and enabled("daphne-shutdown"):
        shutdown.tolerate_upgraded_connections()
    if enabled("autobahn-log"):
        direct.defer_autobahn_config_log()
    if enabled("websocket-closes"):
        direct.install()
    if enabled("fast-upgrade"):
        upgrade.install()
    if enabled("http"):
        http.install()
    if enabled("access-log"):
        accesslog.install()
    if enabled("gc"):
        process.tune_garbage_collector()

"""A serving process's start, graceful drain and stop (what to do; the server-specific hooks
that call it are ``realtime.transport.shutdown`` for daphne and ``lifespan_app`` here for ASGI
servers).

- Start: the process hub starts with the server (not with the first socket), so its keeper
  sweeps expired sessions of every instance — announcing users offline after another
  instance died — on every serving process, even one no socket has reached yet.
- Drain (``drain``, SIGTERM under daphne), in order:
  1. ``draining()`` turns true: ``/readyz`` answers 503 (``config.health``), new sockets are
     refused (WebSocket accepted and closed 1013 "try again later", a polling handshake 503),
     while open sockets and other HTTP requests are still served, for ``DRAIN_WINDOW``
     seconds (a balancer that polls ``/readyz`` stops routing here);
  2. the server stops listening (``stop_accepting``, the transport's);
  3. every open socket is told to reconnect: closed 1001 (Socket.IO on a WebSocket: no
     DISCONNECT, so stock clients reconnect and resume — 1001 is resumable; on polling: the
     session ends and the next GET answers "Session ID unknown", which clients retry on;
     y-websocket providers reconnect after any close); their clean-ups run (sessions,
     presence, rooms, document leaves), for at most ``DRAIN_CLOSE_TIMEOUT`` seconds;
  4. every dirty collaborative document is saved (``flush_documents``).
- Stop without drain (uvicorn's lifespan): every dirty document is saved.

daphne (Twisted): an "after startup" trigger schedules the hub's start on the event loop; a
"before shutdown" trigger returning a Deferred makes the reactor wait for the drain (SIGTERM
and SIGINT both stop the reactor this way), and daphne cancels what is left after it.
uvicorn and other ASGI servers: the ASGI lifespan events (``lifespan_app``).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from realtime.conf import realtime_settings

logger = logging.getLogger("chorus.realtime.lifecycle")

#: The close code that tells a client the server goes away (it reconnects; resumable).
CLOSE_GOING_AWAY = 1001

_draining = False


def draining() -> bool:
    """Whether this process is draining (not ready; refusing new sockets)."""
    return _draining


async def start_hub() -> None:
    """Start this event loop's hub (its keeper sweeps sessions from now on)."""
    from realtime.hub import get_hub

    try:
        await get_hub().start()
    except Exception:  # e.g. Redis unreachable at boot: the first socket starts it again
        logger.exception("Starting the process hub failed")


async def flush_documents() -> None:
    from realtime.documents import _managers

    for manager in list(_managers.values()):
        failed = await manager.flush_all()
        if failed:
            logger.error("%d document(s) could not be saved at shutdown", failed)


async def close_sockets(timeout: float) -> int:
    """Close every socket of this process's hub with 1001 and wait (at most ``timeout``
    seconds) until their clean-ups have taken them out of the hub; returns how many were
    still there at the deadline."""
    from realtime.hub import get_hub

    hub = get_hub()
    for conn in list(hub.connections.values()):
        try:
            await conn.close(CLOSE_GOING_AWAY, "server restarting")
        except Exception:
            logger.exception("Drain: closing socket %s failed", conn.sid)
    deadline = time.monotonic() + timeout
    while hub.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return len(hub.connections)


async def drain(stop_accepting: Callable[[], Awaitable[None]]) -> None:
    """The graceful drain (module doc); never raises."""
    global _draining
    _draining = True
    window = realtime_settings.DRAIN_WINDOW
    logger.info("Draining: not ready; stop listening in %.1f s", window)
    try:
        if window > 0:
            await asyncio.sleep(window)
        await stop_accepting()
        left = await close_sockets(realtime_settings.DRAIN_CLOSE_TIMEOUT)
        if left:
            logger.warning("Drain: %d socket(s) still open after DRAIN_CLOSE_TIMEOUT", left)
    except Exception:
        logger.exception("Drain: closing the sockets failed")
    await flush_documents()
    logger.info("Drained")


async def lifespan_app(scope, receive, send) -> None:
    """ASGI lifespan: start the hub at startup, flush documents at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start_hub()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await flush_documents()
            await send({"type": "lifespan.shutdown.complete"})
            return

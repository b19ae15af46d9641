"""A serving process's start and stop (what to do; the server-specific hooks that call it are
``realtime.transport.shutdown`` for daphne and ``lifespan_app`` here for ASGI servers).

- Start: the process hub starts with the server (not with the first socket), so its keeper
  sweeps expired sessions of every instance — announcing users offline after another
  instance died — on every serving process, even one no socket has reached yet.
- Stop: every dirty collaborative document is saved before the process exits.

daphne (Twisted): an "after startup" trigger schedules the hub's start on the event loop; a
"before shutdown" trigger returning a Deferred makes the reactor wait for the flush (SIGTERM
and SIGINT both stop the reactor this way). uvicorn and other ASGI servers: the ASGI lifespan
events (``lifespan_app``).
Module map: docs/realtime.md.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("chorus.realtime.lifecycle")


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

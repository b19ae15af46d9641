"""Graceful shutdown: every dirty collaborative document is saved before the process exits.

- daphne (Twisted): a "before shutdown" system event trigger returning a Deferred makes the
  reactor wait for the flush. SIGTERM and SIGINT both stop the reactor this way.
- uvicorn and other ASGI servers: the ASGI ``lifespan.shutdown`` event (``lifespan_app``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

logger = logging.getLogger("chorus.realtime.shutdown")


async def flush_documents() -> None:
    from .documents import _managers

    for manager in list(_managers.values()):
        failed = await manager.flush_all()
        if failed:
            logger.error("%d document(s) could not be saved at shutdown", failed)


def install_twisted_trigger() -> None:
    """Under daphne, flush documents before the reactor shuts down (no-op elsewhere)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown():
        logger.info("Shutting down: saving open documents")
        return defer.Deferred.fromFuture(asyncio.ensure_future(flush_documents()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


async def lifespan_app(scope, receive, send) -> None:
    """ASGI lifespan: nothing at startup, flush documents at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await flush_documents()
            await send({"type": "lifespan.shutdown.complete"})
            return

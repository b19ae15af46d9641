"""A serving process's start and stop.

- Start: the process hub starts with the server (not with the first socket), so its keeper
  sweeps expired sessions of every instance — announcing users offline after another
  instance died — on every serving process, even one no socket has reached yet.
- Stop: every dirty collaborative document is saved before the process exits.

daphne (Twisted): an "after startup" trigger schedules the hub's start on the event loop; a
"before shutdown" trigger returning a Deferred makes the reactor wait for the flush (SIGTERM
and SIGINT both stop the reactor this way). uvicorn and other ASGI servers: the ASGI lifespan
events (``lifespan_app``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

logger = logging.getLogger("chorus.realtime.lifecycle")


async def start_hub() -> None:
    """Start this event loop's hub (its keeper sweeps sessions from now on)."""
    from .hub import get_hub

    try:
        await get_hub().start()
    except Exception:  # e.g. Redis unreachable at boot: the first socket starts it again
        logger.exception("Starting the process hub failed")


async def flush_documents() -> None:
    from .documents import _managers

    for manager in list(_managers.values()):
        failed = await manager.flush_all()
        if failed:
            logger.error("%d document(s) could not be saved at shutdown", failed)


def _tolerate_daphne_connection_entries() -> None:
    """Work around daphne 4.2.3: ``Server.kill_all_applications`` reads
    ``details["application_instance"]`` for every connection, but the entry of an HTTP
    connection upgraded to a WebSocket has none. The KeyError aborts the shutdown step, no
    application is cancelled, and the interpreter crashes at exit (SIGSEGV) whenever a
    WebSocket is open. Same behaviour, skipping entries without an application instance."""
    from daphne.server import Server

    if getattr(Server.kill_all_applications, "chorus_tolerant", False):
        return
    from twisted.internet import defer

    def kill_all_applications(self):
        instances = [
            details["application_instance"]
            for details in list(self.connections.values())
            if "application_instance" in details and not details["application_instance"].done()
        ]
        for instance in instances:
            instance.cancel()
        logger.info("Killed %i pending application instances", len(instances))
        waiting = defer.Deferred.fromFuture(asyncio.gather(*instances))
        waiting.addErrback(lambda failure: None)
        return waiting

    kill_all_applications.chorus_tolerant = True
    Server.kill_all_applications = kill_all_applications


def install_twisted_triggers() -> None:
    """Under daphne, start the hub once the reactor runs and flush documents before it shuts
    down (no-op elsewhere)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    if "daphne.server" in sys.modules:
        _tolerate_daphne_connection_entries()
    from twisted.internet import defer, reactor

    def before_shutdown():
        logger.info("Shutting down: saving open documents")
        return defer.Deferred.fromFuture(asyncio.ensure_future(flush_documents()))

    def after_startup():
        # Startup triggers fire before the asyncio loop runs: start the hub from inside it.
        asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(start_hub()))

    reactor.addSystemEventTrigger("after", "startup", after_startup)
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


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

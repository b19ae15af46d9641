"""daphne's and Twisted's start and stop hooks: the reactor triggers that run Chorus's start
and stop (``realtime.lifecycle``), and a workaround for daphne's shutdown of upgraded
connections. Installed by ``realtime.transport.install``. Module map: docs/realtime.md."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import cast

logger = logging.getLogger("chorus.realtime.transport")


def tolerate_upgraded_connections() -> None:
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

    kill_all_applications.chorus_tolerant = True  # type: ignore[attr-defined]  # the patch's mark
    Server.kill_all_applications = kill_all_applications


def install_twisted_triggers(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    """Under Twisted, run ``start`` once the reactor runs and make the reactor wait for
    ``stop`` before it shuts down (no-op elsewhere)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor
    from twisted.internet.base import ReactorBase

    def before_shutdown():
        logger.info("Shutting down: running the stop hook")
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop()))

    def after_startup():
        # Startup triggers fire before the asyncio loop runs: start the hub from inside it.
        asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(start()))

    # Twisted types ``reactor`` as its interfaces, whose methods mypy reads without ``self``
    # (it has no zope plugin here); every installed reactor is a ``ReactorBase``.
    core = cast(ReactorBase, reactor)
    core.addSystemEventTrigger("after", "startup", after_startup)
    core.addSystemEventTrigger("before", "shutdown", before_shutdown)

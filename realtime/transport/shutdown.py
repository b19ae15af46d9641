"""daphne's and Twisted's start and stop hooks: the reactor triggers that run Chorus's start
and its graceful drain (``realtime.lifecycle``), the drain's way to stop listening
(``stop_listening``), and daphne's shutdown step made to wait for the drain and to tolerate
upgraded connections. Installed by ``realtime.transport.install``. Module map:
docs/realtime.md.

The order on SIGTERM: Twisted fires its "before shutdown" triggers in the order they were
added — Chorus's (added when the application loads) before daphne's
``kill_all_applications`` (added when its server runs). The first starts the drain; the
second, as patched here, cancels the applications still running only once the drain is over
(unpatched, it cancels every socket at once: they close 1001 all the same, but while the
server still listens). Then the reactor stops listening and closes what is left, and the
process exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import cast

from realtime.conf import realtime_settings

logger = logging.getLogger("chorus.realtime.transport")


#: The drain under way (started by the "before shutdown" trigger), which daphne's shutdown
#: step waits for before it cancels the applications still running.
_drain: asyncio.Future | None = None


async def stop_listening() -> None:
    """Stop every listening port of the reactor (daphne's endpoints): new connections are
    refused from now on; open ones go on."""
    from twisted.internet import defer, reactor, tcp
    from twisted.internet.base import ReactorBase

    core = cast(ReactorBase, reactor)  # see ``install_twisted_triggers``
    ports = [reader for reader in core.getReaders() if isinstance(reader, tcp.Port)]
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(defer.maybeDeferred(port.stopListening).asFuture(loop) for port in ports)
    )
    logger.info("Stopped listening (%d port(s))", len(ports))


def tolerate_upgraded_connections() -> None:
    """Work around daphne 4.2.3: ``Server.kill_all_applications`` reads
    ``details["application_instance"]`` for every connection, but the entry of an HTTP
    connection upgraded to a WebSocket has none. The KeyError aborts the shutdown step, no
    application is cancelled, and the interpreter crashes at exit (SIGSEGV) whenever a
    WebSocket is open. Same behaviour, skipping entries without an application instance, and
    run only once the drain (if one is under way) is over and the HTTP requests still being
    answered have finished (``_requests_finish``)."""
    from daphne.server import Server

    if getattr(Server.kill_all_applications, "chorus_tolerant", False):
        return
    from twisted.internet import defer

    def kill_all_applications(self):
        if _drain is not None and not self.chorus_drained:  # the drain first (module doc)
            self.chorus_drained = True
            after = defer.Deferred.fromFuture(asyncio.ensure_future(_requests_finish(self)))
            after.addBoth(lambda _: kill_all_applications(self))
            return after
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
    Server.chorus_drained = False  # the patch's own state


async def _requests_finish(server) -> None:
    """After the drain: give the HTTP requests still being answered (a REST write that
    arrived before the server stopped listening) up to ``DRAIN_CLOSE_TIMEOUT`` seconds to
    finish before they are cancelled; never raises."""
    from daphne.http_protocol import WebRequest

    assert _drain is not None
    with contextlib.suppress(Exception):
        await asyncio.shield(_drain)
    answering = [
        details["application_instance"]
        for protocol, details in list(server.connections.items())
        if isinstance(protocol, WebRequest)
        and "application_instance" in details
        and not details["application_instance"].done()
    ]
    if answering:
        await asyncio.wait(answering, timeout=realtime_settings.DRAIN_CLOSE_TIMEOUT)


def install_twisted_triggers(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
) -> None:
    """Under Twisted, run ``start`` once the reactor runs and make the reactor wait for
    ``stop(stop_listening)`` (the drain) before it shuts down (no-op elsewhere)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor
    from twisted.internet.base import ReactorBase

    def before_shutdown():
        global _drain
        logger.info("Shutting down: draining")
        _drain = asyncio.ensure_future(stop(stop_listening))
        return defer.Deferred.fromFuture(_drain)

    def after_startup():
        # Startup triggers fire before the asyncio loop runs: start the hub from inside it.
        asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(start()))

    # Twisted types ``reactor`` as its interfaces, whose methods mypy reads without ``self``
    # (it has no zope plugin here); every installed reactor is a ``ReactorBase``.
    core = cast(ReactorBase, reactor)
    core.addSystemEventTrigger("after", "startup", after_startup)
    core.addSystemEventTrigger("before", "shutdown", before_shutdown)

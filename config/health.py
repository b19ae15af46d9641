"""Health checks for load balancers and orchestrators: ``/healthz`` and ``/readyz``.

A plain ASGI layer in front of Django (``health_app``, installed by ``config/asgi.py``): a probe
runs no Django middleware and takes no thread but the database check's. Chorus logs readiness
changes only (WARNING naming the failing parts when they change, INFO when ready again), never
a passing probe (daphne's access log, when on, has a line per request). Unauthenticated; the
answers name parts and states only (no host, no error text).

- ``GET /healthz``: 200 ``{"status": "ok"}`` while the process serves (nothing else checked:
  a liveness probe must not fail because the database does).
- ``GET /readyz``: 200 ``{"status": "ready", "checks": {...}}`` when, each within
  ``READY_TIMEOUT`` seconds and all at once: the database answers ``SELECT 1``; Redis (when
  ``REDIS_URL`` is set) answers PING; a message sent on the channel layer to a fresh channel
  comes back from it. Otherwise 503 ``{"status": "unready", "code": "not_ready", "failing":
  [parts], "checks": {part: "ok" | "failed" | "timeout"}}``. While the process drains
  (``realtime.lifecycle``): 503 ``{"status": "draining", "code": "draining"}`` without
  running the checks.
- Another method on either path: 405 ``{"error": {"code": "method_not_allowed"}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

from realtime import lifecycle
from realtime.hub import CHANNEL_PREFIX

logger = logging.getLogger("chorus.health")

#: Seconds each readiness check may take (they run at the same time).
READY_TIMEOUT = 2.0
PATHS = frozenset({"/healthz", "/readyz"})


def _database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # a worker thread of its own: give the connection back


async def check_database() -> None:
    await asyncio.to_thread(_database)


async def check_redis() -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=READY_TIMEOUT, socket_timeout=READY_TIMEOUT
    )
    try:
        if not await client.ping():
            raise RuntimeError("no PONG")
    finally:
        await client.aclose()


async def check_channel_layer() -> None:
    # Typed loosely: the stubs' ``BaseChannelLayer`` lacks the prefix ``new_channel`` takes.
    layer: Any = get_channel_layer()
    # The hub's prefix: channels-redis receives every channel of one prefix through one
    # blocking read per process, which the hub holds; a fresh channel of another prefix
    # would wait for it for good. So the round trip also proves the hub's reads flow.
    channel = await layer.new_channel(CHANNEL_PREFIX)
    nonce = uuid.uuid4().hex
    await layer.send(channel, {"type": "chorus.ready", "nonce": nonce})
    message = await layer.receive(channel)
    if message.get("nonce") != nonce:
        raise RuntimeError("another message came back")


def checks() -> dict[str, Callable[[], Awaitable[None]]]:
    """The readiness checks of this configuration, by part name."""
    found: dict[str, Callable[[], Awaitable[None]]] = {"database": check_database}
    if settings.REDIS_URL:
        found["redis"] = check_redis
    found["channel_layer"] = check_channel_layer
    return found


async def _outcome(check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT)
    except TimeoutError:
        return "timeout"
    except Exception:
        logger.debug("readiness check failed", exc_info=True)
        return "failed"
    return "ok"


async def readiness() -> tuple[int, dict]:
    """(status, body) of ``/readyz`` (module doc)."""
    if lifecycle.draining():
        return 503, {"status": "draining", "code": "draining"}
    parts = checks()
    outcomes = await asyncio.gather(*(_outcome(check) for check in parts.values()))
    results = dict(zip(parts, outcomes, strict=True))
    failing = [part for part, outcome in results.items() if outcome != "ok"]
    _log_change(failing, results)
    if failing:
        return 503, {
            "status": "unready",
            "code": "not_ready",
            "failing": failing,
            "checks": results,
        }
    return 200, {"status": "ready", "checks": results}


_last_failing: list[str] = []


def _log_change(failing: list[str], results: dict[str, str]) -> None:
    """Log when the set of failing parts changes (a probe every few seconds during an
    outage would otherwise repeat the same line)."""
    global _last_failing
    if failing == _last_failing:
        return
    if failing:
        logger.warning("Not ready: %s", ", ".join(f"{p} {results[p]}" for p in failing))
    else:
        logger.info("Ready again")
    _last_failing = failing


async def _respond(send, status: int, body: dict) -> None:
    raw = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(raw)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def health_app(inner):
    """ASGI HTTP: ``/healthz`` and ``/readyz`` answered here, everything else by ``inner``."""

    async def application(scope, receive, send):
        path = scope["path"]
        if path not in PATHS:
            return await inner(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, {"error": {"code": "method_not_allowed"}})
        elif path == "/healthz":
            await _respond(send, 200, {"status": "ok"})
        else:
            await _respond(send, *await readiness())

    return application

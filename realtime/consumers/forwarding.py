"""No sticky sessions for long-polling: a request for a polling session of another instance is
forwarded to that instance through the channel layer, and its answer comes back the same way.

A polling session lives in one process, its *home*. With a multi-process layer (Redis) its
Engine.IO sid names that home: ``<random>.<home>``, the home being the base64url of the home
hub's layer channel (``home_sid`` / ``home_of``). A request that reaches another instance
(a load balancer without affinity) is read there, sent to the home's hub channel as
``chorus.eio.request`` {rid, reply_to, sid, method, body}, handled by the home exactly as a
direct request (``realtime.consumers.polling.answer``), and answered with
``chorus.eio.response`` {rid, status, content_type, body} to the asking hub, which writes it
to its client. A client that leaves while its forwarded long-poll waits sends
``chorus.eio.cancel`` {rid}: the home stops waiting, and what waited stays for the next GET.

The cost (docs/operations.md): two layer messages per forwarded request, and a request held
at the home also holds a coroutine on the forwarding instance. A home that is gone answers
nothing: the forwarding instance answers "Session ID unknown" after the ping timeout (beyond a
long-poll's hold: what a client itself waits before it gives a silent server up), and the
client starts a new session.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable

from realtime.conf import realtime_settings
from realtime.hub import CHANNEL_PREFIX, get_hub

logger = logging.getLogger("chorus.realtime.socket")

#: (method, sid, body) -> (status, content type, body): how the home answers a request.
Answer = Callable[[str, str, bytes], Awaitable[tuple[int, bytes, bytes]]]

#: What a layer channel name may be (channels' own rule).
_CHANNEL_NAME = re.compile(r"[a-zA-Z0-9_.\-!]{1,99}")

_waiting: dict[str, asyncio.Future] = {}
_serving: dict[str, asyncio.Task] = {}


def home_sid() -> str:
    """A new Engine.IO sid; on a multi-process layer it names this process's hub."""
    token = secrets.token_urlsafe(15)
    hub = get_hub()
    if hub.single_process or hub.channel_name is None:
        return token
    home = base64.urlsafe_b64encode(hub.channel_name.encode()).rstrip(b"=").decode()
    return f"{token}.{home}"


def home_of(sid: str) -> str | None:
    """The hub channel a sid names as its home (None: no home in it, or not a valid one)."""
    _, dot, home = sid.partition(".")
    if not dot or not home or len(home) > 256:
        return None
    try:
        channel = base64.urlsafe_b64decode(home + "=" * (-len(home) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    # Only ever a hub's channel: a client-made sid must not send to any other layer channel.
    if not channel.startswith(CHANNEL_PREFIX) or not _CHANNEL_NAME.fullmatch(channel):
        return None
    return channel


async def start(answer: Answer) -> None:
    """Let this process's hub answer forwarded requests with ``answer`` (and take answers)."""
    hub = get_hub()
    await hub.start()

    async def serve(message: dict) -> None:
        rid = str(message.get("rid", ""))
        task = asyncio.get_running_loop().create_task(_serve(hub, answer, message))
        _serving[rid] = task
        task.add_done_callback(lambda _: _serving.pop(rid, None))

    async def cancel(message: dict) -> None:
        task = _serving.get(str(message.get("rid", "")))
        if task is not None:
            task.cancel()

    hub.on_message("chorus.eio.request", serve)
    hub.on_message("chorus.eio.cancel", cancel)


async def _answered(message: dict) -> None:
    future = _waiting.get(str(message.get("rid", "")))
    if future is not None and not future.done():
        future.set_result(message)


async def _serve(hub, answer: Answer, message: dict) -> None:
    try:
        status, content_type, body = await answer(
            str(message["method"]), str(message["sid"]), bytes(message.get("body") or b"")
        )
    except asyncio.CancelledError:
        return  # the client left: nothing to answer
    except Exception:
        logger.exception("Answering a forwarded polling request failed")
        return
    await hub.reply(
        message["reply_to"],
        {
            "type": "chorus.eio.response",
            "rid": message["rid"],
            "status": status,
            "content_type": content_type,
            "body": body,
        },
    )


async def forward(
    home: str, method: str, sid: str, body: bytes, hold: float, gone: asyncio.Future
) -> tuple[int, bytes, bytes] | None:
    """Send a request to its session's ``home`` and return the answer (status, content
    type, body); None if the client went first (``gone`` done) or the home did not answer
    within ``hold`` + ``WEBSOCKET_PING_TIMEOUT`` seconds."""
    hub = get_hub()
    await hub.start()
    hub.on_message("chorus.eio.response", _answered)
    rid = uuid.uuid4().hex
    future = asyncio.get_running_loop().create_future()
    _waiting[rid] = future
    try:
        await hub.reply(
            home,
            {
                "type": "chorus.eio.request",
                "rid": rid,
                "reply_to": hub.channel_name,
                "sid": sid,
                "method": method,
                "body": body,
            },
        )
        done, _ = await asyncio.wait(
            (future, gone),
            timeout=hold + realtime_settings.WEBSOCKET_PING_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if future in done:
            message = future.result()
            return int(message["status"]), bytes(message["content_type"]), bytes(message["body"])
        if gone in done:
            await hub.reply(home, {"type": "chorus.eio.cancel", "rid": rid})
        return None
    finally:
        _waiting.pop(rid, None)

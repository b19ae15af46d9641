"""The ``ack-polling`` suite: the ``ack`` suite over HTTP long-polling — ACK sessions, each
in a closed request/ack loop (the event by POST, its ack by the long-poll GET) for
``ack_s``; round trips/s, latency, and the HTTP requests a round trip took."""

from __future__ import annotations

from bench.suites.ack import ack_loop
from bench.suites.context import Context


async def suite_ack_polling(ctx: Context) -> None:
    await ack_loop(ctx, "ack_polling", "polling", "polling-ack")
    # sessions end by Engine.IO CLOSE: no long-poll is left holding up the server's shutdown
    await ctx.workers.all({"cmd": "close_all"})

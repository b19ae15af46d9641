"""The ``connect-polling`` suite: NP Socket.IO sessions over HTTP long-polling connect and
authenticate (handshake GET, the CONNECT by POST, GETs until its reply); sessions/s and RSS
per idle session (each holding its long-poll GET, as a client does)."""

from __future__ import annotations

from bench.suites.context import (
    Context,
    connect_phase,
    polling_requests,
    request_stats,
    warm_up,
)


async def suite_connect_polling(ctx: Context) -> None:
    await warm_up(ctx, "polling")
    before = await polling_requests(ctx)
    await connect_phase(ctx, ctx.cfg.n_polling, "connect_polling", "polling", "polling-connect")
    result = ctx.result["connect_polling"]
    after = await polling_requests(ctx)
    result.update(request_stats(before, after, result["connected"], "session"))
    # sessions end by Engine.IO CLOSE: no long-poll is left holding up the server's shutdown
    await ctx.workers.all({"cmd": "close_all"})

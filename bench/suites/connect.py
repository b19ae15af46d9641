"""The ``connect`` suite: N2 sockets connect and authenticate; rate and RSS per connection."""

from __future__ import annotations

from bench.suites.context import Context, connect_phase, warm_up


async def suite_connect(ctx: Context) -> None:
    await warm_up(ctx)
    await connect_phase(ctx, ctx.cfg.n_connect, "connect_n2")

"""The ``fanout`` suite: N1 sockets connect and authenticate (rate, RSS), join, receive the
sender's broadcasts (bursts, then paced) and finally run the heartbeat storm."""

from __future__ import annotations

from bench.suites.broadcast import burst_phases, paced_phase
from bench.suites.context import Context, connect_phase, warm_up
from bench.suites.heartbeat import heartbeat_phase


async def suite_fanout(ctx: Context) -> None:
    cfg, fx = ctx.cfg, ctx.fixture
    await warm_up(ctx)
    await ctx.workers.one(
        0, {"cmd": "connect_sender", "url": ctx.sio_url, "token": fx["sender"]["token"]}
    )
    await connect_phase(ctx, cfg.n_fanout, "connect_n1")
    n = ctx.result["connect_n1"]["connected"]
    await join_all(ctx, n)
    await ctx.server.wait_idle()
    await burst_phases(ctx, n)
    await paced_phase(ctx, n)
    await ctx.server.wait_idle()
    await heartbeat_phase(ctx, n)


async def join_all(ctx: Context, n: int) -> None:
    """Every socket and the sender emit ``user-join``: they become members of their channels."""
    joins = await ctx.workers.all(
        {"cmd": "emit_all", "event": "user-join", "data": {}, "with_token": True}
    )
    joined = sum(j["ok"] for j in joins)
    if joined != n + 1:
        ctx.problem(
            "broadcast",
            f"user-join: {joined} of {n + 1} ok: {[s for j in joins for s in j['sample']][:3]}",
        )

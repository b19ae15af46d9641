"""``python -m bench.loadgen``: one load-generator process. Reads one JSON command per line
on stdin, answers each with one JSON line on stdout (``ok_cmd`` and the command's reply, or
the error), until ``exit`` or end of input. ``COMMANDS`` is the whole vocabulary."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from bench.loadgen import ackloop, broadcast, collab, published, sockets
from bench.loadgen.worker import Worker

COMMANDS: dict[str, Callable[[Worker, dict], Awaitable[dict]]] = {
    "hello": sockets.hello,
    "connect": sockets.connect,
    "connect_sender": sockets.connect_sender,
    "emit_all": sockets.emit_all,
    "close_all": sockets.close_all,
    "polling_report": sockets.polling_report,
    "reset_recv": broadcast.reset_recv,
    "broadcast_send": broadcast.broadcast_send,
    "recv_report": broadcast.recv_report,
    "loop": ackloop.run_loop,
    "collab_connect": collab.collab_connect,
    "collab_run": collab.collab_run,
    "pub_reset": published.pub_reset,
    "pub_report": published.pub_report,
}


async def answer(worker: Worker, msg: dict) -> dict:
    """Run one command; its reply, or the error (reported, never raised)."""
    try:
        command = COMMANDS.get(msg["cmd"])
        if command is None:
            raise ValueError(f"unknown command {msg['cmd']!r}")
        result = {"ok_cmd": True, **(await command(worker, msg))}
    except Exception as error:  # report, never die silently
        result = {"ok_cmd": False, "error": f"{type(error).__name__}: {error}"}
    result["errors_seen"] = worker.errors[:5]
    return result


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while True:
        line = await reader.readline()
        if not line:
            return
        msg = json.loads(line)
        if msg["cmd"] == "exit":
            await sockets.close_all(worker, {})
            return
        result = await answer(worker, msg)
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())

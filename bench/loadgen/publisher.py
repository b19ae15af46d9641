"""``python -m bench.loadgen.publisher``: the ``server-publish`` suite's publisher, a process of
its own (a backend worker is not the process holding the sockets), driven like the load
generator: one JSON command per line on stdin, one JSON reply per line on stdout.

Two ways to publish the same ``events`` event to every socket of one user:

- ``chorus``: ``POST /api/server/users/<id>/events/`` with the API key, over ``window``
  keep-alive HTTP/1.1 connections (``bench/loadgen/http.py``), one request at a time on each —
  what a pooled HTTP client does; a request is in flight until its answer arrived.
- ``sio``: python-socketio's ``AsyncRedisManager(url, channel=…, write_only=True).emit(
  "events", data, room="user.<id>")`` — Open WebUI's workers' way; ``window`` emits awaited
  at once (redis-py gives each its own pooled connection), an emit is in flight until Redis
  answered its PUBLISH (it has handed the message to the server's subscription).

``run`` sends ``count`` events — ``burst``: each as soon as the window has room, and none
after ``duration`` s (if given); ``paced``: event k at start + k / rate, or later if the
window is full. Each event carries ``i``, its send time ``t`` (``time.monotonic_ns``, taken
just before the request or emit) and ``after`` (events 0 … after-1 had been answered when it
was sent): bench/loadgen/published.py."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.loadgen.http import HttpConnection
from bench.loadgen.wire import now_ns


class Publisher:
    """One way to publish (``chorus`` or ``sio``) with ``window`` requests in flight."""

    def __init__(self, job: dict) -> None:
        self.kind = job["kind"]
        self.window = job["window"]
        self.idle: list[HttpConnection] = []
        self.manager: Any = None
        if self.kind == "chorus":
            base = job["url"].rstrip("/")
            self.target = f"/api/server/users/{job['user']}/events/"
            self.headers = f"Authorization: Bearer {job['key']}\r\n".encode()
            self.idle = [HttpConnection.to(base) for _ in range(self.window)]
        elif self.kind == "sio":
            import socketio

            self.room = f"user.{job['user']}"
            self.manager = socketio.AsyncRedisManager(
                job["redis_url"], channel=job["channel"], write_only=True
            )
        else:
            raise ValueError(f"unknown publisher kind {self.kind!r}")

    async def send(self, data: dict) -> str:
        """Publish one ``events`` event; "" once accepted, else what went wrong."""
        if self.kind == "sio":
            await self.manager.emit("events", data, room=self.room)
            return ""
        body = json.dumps({"event": "events", "data": data}, separators=(",", ":")).encode()
        conn = self.idle.pop()
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        conn.request(
            "POST",
            self.target,
            body,
            lambda status, answer: future.set_result((status, answer)),
            content_type=b"application/json",
            headers=self.headers,
        )
        try:
            status, answer = await future
        finally:
            self.idle.append(conn)
        return "" if status == 200 else f"HTTP {status}: {answer[:200]!r}"

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


class Run:
    """One phase: the events sent, which were answered, and the errors."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.window = asyncio.Semaphore(publisher.window)
        self.done: set[int] = set()
        self.prefix = 0  # every event below it has been answered
        self.errors = 0
        self.error_sample: list[str] = []
        self.behind = 0  # paced: events sent later than their time (the window was full)

    async def one(self, i: int) -> None:
        data = {
            "chat_id": "bench-chat",
            "message_id": "bench-message",
            "data": {
                "type": "chat:completion",
                "data": {"content": "token ", "i": i, "after": self.prefix, "t": now_ns()},
            },
        }
        try:
            error = await self.publisher.send(data)
        except Exception as exc:  # counted and reported, never raised
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.window.release()
        if error:
            self.errors += 1
            if len(self.error_sample) < 5:
                self.error_sample.append(error[:300])
        self.done.add(i)
        while self.prefix in self.done:
            self.prefix += 1


async def run(publisher: Publisher, msg: dict) -> dict:
    """Send ``count`` events (``mode``: burst, for ``duration`` s at most, or paced at
    ``rate``/s); wait for the answers."""
    interval = 1.0 / msg["rate"] if msg["mode"] == "paced" else 0.0
    phase = Run(publisher)
    tasks = []
    cpu0, t0 = time.process_time(), now_ns()
    start = time.monotonic()
    end = start + msg["duration"] if msg.get("duration") else float("inf")
    count = 0
    for i in range(msg["count"]):
        if time.monotonic() >= end:
            break
        count += 1
        if interval:
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if phase.window.locked() and interval:
            phase.behind += 1
        await phase.window.acquire()
        tasks.append(asyncio.create_task(phase.one(i)))
    t_sent = now_ns()
    await asyncio.wait(tasks, timeout=msg.get("timeout", 60))
    t1 = now_ns()
    return {
        "sent": count,
        "answered": len(phase.done),
        "errors": phase.errors + count - len(phase.done),
        "error_sample": phase.error_sample,
        "behind": phase.behind,
        "t0": t0,
        "t_sent": t_sent,
        "t1": t1,
        "cpu_s": time.process_time() - cpu0,
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    publisher: Publisher | None = None
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg["cmd"] == "exit":
            break
        try:
            if msg["cmd"] == "hello":
                reply: dict = {}
            elif msg["cmd"] == "setup":
                publisher = Publisher(msg)
                reply = {}
            elif msg["cmd"] == "run":
                if publisher is None:
                    raise RuntimeError("setup comes first")
                reply = await run(publisher, msg)
            else:
                raise ValueError(f"unknown command {msg['cmd']!r}")
            result = {"ok_cmd": True, **reply}
        except Exception as error:  # report, never die silently
            result = {"ok_cmd": False, "error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    if publisher is not None:
        publisher.close()


if __name__ == "__main__":
    asyncio.run(main())

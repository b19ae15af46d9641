"""The load-generator processes (``python -m bench.loadgen``): started, driven by one JSON
command per line on stdin (one JSON reply per line on stdout), measured and stopped.

The command vocabulary is the load generator's (bench/loadgen/__main__.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess

from bench.config import PYTHON, ROOT
from bench.measures import proc_cpu_s
from bench.processes import die_with_parent


def _pipes(proc: asyncio.subprocess.Process) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    """A load generator's stdin and stdout (``Workers.start`` opens both as pipes)."""
    assert proc.stdin is not None and proc.stdout is not None, "started without pipes"
    return proc.stdin, proc.stdout


def split(items: list, parts: int) -> list[list]:
    """``items`` dealt round-robin into ``parts`` lists (one per load generator)."""
    return [items[i::parts] for i in range(parts)]


class Workers:
    """The load-generator processes (``python -m bench.loadgen``, or another ``module`` that
    speaks the same JSON lines: ``bench.loadgen.publisher``), driven by JSON lines."""

    def __init__(self, count: int, module: str = "bench.loadgen") -> None:
        self.count = count
        self.module = module
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                self.module,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                limit=1 << 27,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                preexec_fn=die_with_parent,
            )
            self.procs.append(proc)
        await self.all({"cmd": "hello"})

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(pid) for pid in self.pids)

    async def one(self, index: int, msg: dict, timeout: float = 600) -> dict:
        """Send ``msg`` to worker ``index``; its reply, or RuntimeError if it failed or died."""
        stdin, stdout = _pipes(self.procs[index])
        stdin.write((json.dumps(msg) + "\n").encode())
        await stdin.drain()
        line = await asyncio.wait_for(stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load generator {index} died")
        reply = json.loads(line)
        if not reply.get("ok_cmd"):
            raise RuntimeError(f"load generator {index}: {msg['cmd']}: {reply.get('error')}")
        return reply

    async def all(self, msg: dict | list[dict], timeout: float = 600) -> list[dict]:
        """One message to every worker (or one each from a list), replies in worker order."""
        msgs = msg if isinstance(msg, list) else [msg] * self.count
        return await asyncio.gather(*(self.one(i, m, timeout) for i, m in enumerate(msgs)))

    async def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                stdin, _ = _pipes(proc)
                stdin.write(b'{"cmd":"exit"}\n')
                await stdin.drain()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()

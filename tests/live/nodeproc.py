"""Stock Node Socket.IO clients for the live tests (tests/live/node/*.cjs, installed with
``npm ci`` on first use): ``node_binary()`` and ``NodeProcess``, a script in a subprocess whose
printed JSON lines are collected in ``lines`` and which takes JSON commands on stdin."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"


def node_binary(directory: Path = NODE_DIR, package: str = "socket.io-client") -> str | None:
    """The node binary, with ``directory``'s pinned packages installed (``npm ci`` there when
    ``node_modules/<package>`` is missing); None without node/npm."""
    binary = shutil.which("node")
    if binary is None or shutil.which("npm") is None:
        return None
    if not (directory / "node_modules" / package).exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--omit=optional"], cwd=directory, check=True
        )
    return binary


class NodeProcess:
    """``node <script> <args…>``: every JSON line it prints, parsed, in ``lines``."""

    def __init__(self, node: str, script: str, *args: str) -> None:
        self.args = [node, str(NODE_DIR / script), *args]
        self.lines: list[dict] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> NodeProcess:
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "DEBUG": ""},
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(json.loads(line))

    def found(self, kind: str, **match: Any) -> list[dict]:
        return [
            line
            for line in self.lines
            if line["type"] == kind and all(line.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, kind: str, count: int = 1, timeout: float = 15.0, **match: Any
    ) -> list[dict]:
        """Poll until ``count`` lines of ``kind`` (with the ``match`` fields) were printed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = self.found(kind, **match)
            if len(found) >= count:
                return found
            assert asyncio.get_running_loop().time() < deadline, (
                f"{count} x {kind} {match} not printed in {timeout}s: {self.lines[-5:]}"
            )
            await asyncio.sleep(0.05)

    def send(self, command: dict) -> None:
        """One JSON command on the script's stdin."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader

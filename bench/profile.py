"""py-spy around a measured phase, and a summary of where the samples went.

``bench/run --profile`` records the server during every measured phase (``py-spy record
--nonblocking -f raw``, 100 Hz, GIL-holding and idle samples excluded) into
``bench/results/<date>/profiles/<server>-<phase>.raw`` and prints the top functions:
*inclusive* (% of samples with the function anywhere on the stack) and *self* (% with it on
top). py-spy is not a project dependency: ``.venv/bin/pip install py-spy`` first.

``python -m bench.profile FILE.raw [--top N] [--match TEXT]`` summarises a recorded file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


def available() -> bool:
    return PY_SPY.exists() or shutil.which("py-spy") is not None


class Recorder:
    def __init__(self, pid: int, out: Path, rate: int = 100, gil: bool = False) -> None:
        self.pid, self.out, self.rate, self.gil = pid, out, rate, gil
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Recorder:
        exe = str(PY_SPY) if PY_SPY.exists() else "py-spy"
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "-p",
            str(self.pid),
            "-r",
            str(self.rate),
            "-f",
            "raw",
            "-t",
            "--nonblocking",
            *(["--gil"] if self.gil else []),
            "-o",
            str(self.out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(0.3)  # attach before the phase starts
        return self

    async def __aexit__(self, *exc) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``file.py:func`` (path shortened to the package)."""
    func, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{func}"


def summarize(path: Path, top: int = 25, match: str = "") -> dict:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    threads: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        total += n
        threads["main" if "MainThread" in thread else "worker threads"] += n
        names = [frame_name(f) for f in frames if not f.startswith("process ")]
        if not names:
            continue
        own[names[-1]] += n
        for name in set(names):
            inclusive[name] += n

    def table(counter: Counter) -> list[tuple[str, float]]:
        rows = [(k, 100 * v / total) for k, v in counter.most_common() if match in k]
        return rows[:top]

    return {
        "samples": total,
        "threads": {k: 100 * v / total for k, v in threads.items()} if total else {},
        "inclusive": table(inclusive) if total else [],
        "self": table(own) if total else [],
    }


def render(summary: dict, title: str = "") -> str:
    lines = [
        f"{title} — {summary['samples']} samples; "
        + ", ".join(f"{k} {v:.0f}%" for k, v in summary["threads"].items())
    ]
    lines.append("  inclusive:")
    lines += [f"    {pct:5.1f}%  {name}" for name, pct in summary["inclusive"]]
    lines.append("  self:")
    lines += [f"    {pct:5.1f}%  {name}" for name, pct in summary["self"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="")
    args = parser.parse_args()
    print(render(summarize(args.raw, args.top, args.match), str(args.raw)))


if __name__ == "__main__":
    main()

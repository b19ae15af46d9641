"""Headless Chromium for the live tests: Debian's ``chromium`` driven by playwright-core.

- ``chromium_binary()``: the system chromium; when none is found and we are root with apt,
  ``apt-get install -y chromium`` first (after ``apt-get update`` if the install fails). No
  browser is ever downloaded by Playwright: playwright-core launches this binary.
- ``Browser``: one ``node tests/live/browser/drive.cjs <chromium>`` (playwright-core and the
  stock socket.io-client, pinned in tests/live/browser/package.json, ``npm ci`` there on first
  use) — one headless browser for many pages. It is a plain subprocess read by a thread, so one
  ``Browser`` serves the tests of a whole module, each on its own event loop.
- ``BrowserPage``: one page in its own browser context (cookies, storage). The requests whose
  URLs are in ``files`` are answered from disk, so a page may be served at any origin, e.g. the
  daphne under test (same-origin) or another one (cross-origin). The page reports what happens
  by calling ``window.report(object)``; ``call(fn, *args)`` awaits ``window[fn](...args)``;
  ``act(action, ...)`` clicks, fills, types, reads text or takes a screenshot as a user would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from tests.live.nodeproc import node_binary

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
#: socket.io-client's browser build, as published (the same 4.8.1 as tests/live/node).
SOCKETIO_BUNDLE = BROWSER_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
#: A page that loads SOCKETIO_BUNDLE and reports what its socket does (see the file).
STOCK_PAGE = BROWSER_DIR / "stock_page.html"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def chromium_binary() -> str | None:
    """The system chromium, installed with apt-get on first use where that is possible (root,
    Debian); None when there is none and it cannot be installed."""
    found = _find_chromium()
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # stale or missing package lists: refresh them once and try again
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(install, env=env, check=False)
    return _find_chromium()


def browser_tools() -> tuple[str, str] | str:
    """(node, chromium) ready to drive, or why not (a skip message)."""
    node = node_binary(BROWSER_DIR, "playwright-core")
    if node is None:
        return "node and npm are needed to drive the browser (tests/live/browser/)"
    chromium = chromium_binary()
    if chromium is None:
        return (
            "no chromium binary, and `apt-get install chromium` was not possible here (it needs "
            "root and Debian's packages): install Debian's chromium to run the browser tests"
        )
    return node, chromium


def stock_page_files(origin: str) -> dict[str, Path]:
    """``STOCK_PAGE`` at ``<origin>/__page__/``, with the socket.io-client bundle beside it."""
    return {
        f"{origin}/__page__/": STOCK_PAGE,
        f"{origin}/__page__/socket.io.min.js": SOCKETIO_BUNDLE,
    }


class Browser:
    """One headless chromium (``drive.cjs``); every JSON line it prints is in ``lines``."""

    START_TIMEOUT = 60.0

    def __init__(self, node: str, chromium: str) -> None:
        self.args = [node, str(BROWSER_DIR / "drive.cjs"), chromium]
        self.lines: list[dict] = []
        self.process: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self._reader: threading.Thread | None = None

    def start(self) -> Browser:
        """Launch and wait (blocking) until the browser is up."""
        self.process = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "DEBUG": ""},  # (Django's DEBUG is not the debug module's)
        )
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()
        deadline = time.monotonic() + self.START_TIMEOUT
        while not self.found("ready"):
            self._check_alive()
            assert time.monotonic() < deadline, f"browser not up in {self.START_TIMEOUT}s"
            time.sleep(0.05)
        return self

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:  # not the driver's: keep it for the failure message
                self.lines.append({"type": "stdout", "text": line})

    def _check_alive(self, page: str | None = None) -> None:
        """Fail if the driver exited, or a command (of ``page``, else the launch) failed."""
        failed = self.found("failed", page=page)
        assert not failed, f"browser driver: {failed}"
        assert self.process is not None and self.process.poll() is None, (
            f"browser driver exited ({self.process and self.process.returncode}): {self.lines[-5:]}"
        )

    def found(self, kind: str, **match: Any) -> list[dict]:
        return [
            line
            for line in list(self.lines)
            if line["type"] == kind and all(line.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, kind: str, count: int = 1, timeout: float = 15.0, **match: Any
    ) -> list[dict]:
        """Poll until ``count`` lines of ``kind`` (with the ``match`` fields) were printed."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.found(kind, **match)
            if len(found) >= count:
                return found
            self._check_alive(match.get("page"))
            recent = self.lines[-5:]
            assert time.monotonic() < deadline, (
                f"{count} x {kind} {match} not printed in {timeout}s: {recent}"
            )
            await asyncio.sleep(0.05)

    def send(self, command: dict) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    async def open(
        self,
        url: str,
        files: dict[str, Path] | None = None,
        permissions: tuple[str, ...] = (),
    ) -> BrowserPage:
        """A new page at ``url`` in a new context with ``permissions`` granted (Playwright's
        names), with ``files`` served by URL."""
        name = f"page{next(self._names)}"
        served = {address: str(path) for address, path in (files or {}).items()}
        command = {"url": url, "files": served, "permissions": list(permissions)}
        self.send({"cmd": "open", "page": name, **command})
        await self.wait_for("opened", page=name)
        return BrowserPage(self, name)

    def stop(self, timeout: float = 15.0) -> None:
        """Close stdin (the driver closes the browser and exits); kill if it does not."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._reader is not None:
            self._reader.join()


class BrowserPage:
    """One page of a ``Browser``: its reported lines, and calls into it."""

    def __init__(self, browser: Browser, name: str) -> None:
        self.browser = browser
        self.name = name
        self._calls = itertools.count(1)

    def __repr__(self) -> str:
        return f"<BrowserPage {self.name}>"

    def found(self, kind: str, **match: Any) -> list[dict]:
        return self.browser.found(kind, page=self.name, **match)

    async def wait_for(
        self, kind: str, count: int = 1, timeout: float = 15.0, **match: Any
    ) -> list[dict]:
        return await self.browser.wait_for(kind, count, timeout, page=self.name, **match)

    async def call(self, fn: str, *args: Any, timeout: float = 15.0) -> Any:
        """``await window[fn](...args)`` in the page; its (JSON) value. A throw fails."""
        n = next(self._calls)
        self.browser.send({"cmd": "call", "page": self.name, "n": n, "fn": fn, "args": args})
        (result,) = await self.wait_for("result", timeout=timeout, n=n)
        assert "error" not in result, f"{self.name}: {fn} threw: {result['error']}"
        return result["value"]

    async def act(self, action: str, timeout: float = 15.0, **args: Any) -> Any:
        """What a user does, through Playwright's real input (``drive.cjs``, command ``act``):
        ``click(selector)``, ``fill(selector, text)``, ``type(text)`` (keyboard, into the focused
        element), ``press(text)`` (one key, e.g. ``"Enter"``), ``text(selector)`` (its
        innerText), ``evaluate(text)`` (an expression's JSON value), ``screenshot(path)``.
        A failure fails."""
        n = next(self._calls)
        self.browser.send({"cmd": "act", "page": self.name, "n": n, "action": action, **args})
        (result,) = await self.wait_for("result", timeout=timeout, n=n)
        assert "error" not in result, f"{self.name}: {action} {args} failed: {result['error']}"
        return result["value"]

    async def close(self) -> None:
        self.browser.send({"cmd": "close", "page": self.name})
        await self.wait_for("closed")

"""Steady chat and editing load for the rolling-restart tests (tests/live/test_rolling_restart.py
through a TCP balancer, tests/live/test_nginx_live.py through nginx): clients that reconnect by
themselves, and a record of what the server acknowledged.

- ``StockSocket``: the stock socket.io-client in Node (tests/live/node/stock_client.cjs) with
  quick reconnects; it sends ``user-join`` once, after its first connect, so it is in its
  channels' rooms — after a restart it keeps them only by resuming (connection state
  recovery), which is what the test proves. ``message_ids`` lists the chat messages it got.
- ``Chatter``: posts chat messages over REST through the front door; a message is acked when
  the POST answered 201 (a refused or cut request is retried as a new message).
- ``Editor``: a y-websocket peer (``doc_peers.YPeer``) that appends ``<name><n>;`` to the Text
  ``t`` and counts an edit as acked once the server has handled it (``YPeer.barrier``); when
  its connection ends it reconnects with the same ``Doc``, whose sync re-sends what the server
  lacks.

Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from pycrdt import Doc

from tests.live.doc_peers import PeerPool, YPeer, append_text
from tests.live.harness import SOCKETIO_PATH, DaphneServer, eventually
from tests.live.nodeproc import NodeProcess

#: socket.io-client reconnect options for the tests: quick, as a busy test needs.
QUICK_RECONNECT = {"reconnectionDelay": 100, "reconnectionDelayMax": 400}


class Front(DaphneServer):
    """A balancer's address (``url``, ``port``, HTTP requests through it): what the clients
    connect to; no process of its own."""

    def __init__(self, port: int, name: str = "front") -> None:
        self.port = port
        self.name = name
        self.process = None


class StockSocket:
    """A stock socket.io-client of one user through ``url`` (module doc)."""

    def __init__(self, node: str, url: str, token: str, name: str, **options: Any) -> None:
        self.name = name
        options = {"path": SOCKETIO_PATH, "auth": {"token": token}, **QUICK_RECONNECT, **options}
        self.process = NodeProcess(node, "stock_client.cjs", url, json.dumps(options))

    async def start(self) -> StockSocket:
        await self.process.start()
        await self.process.wait_for("connect")
        self.process.send({"n": 1, "emit": "user-join", "args": [{}]})
        await self.process.wait_for("ack", n=1)
        return self

    def connected(self) -> bool:
        """Connected now: its last connect came after its last disconnect."""
        kinds = [
            line["type"] for line in self.process.lines if line["type"] in ("connect", "disconnect")
        ]
        return bool(kinds) and kinds[-1] == "connect"

    def reconnects(self) -> int:
        return len(self.process.found("connect")) - 1

    def message_ids(self) -> set[str]:
        ids = set()
        for line in self.process.found("event", name="events:channel"):
            payload = line["args"][0]
            if payload.get("data", {}).get("type") == "message":
                ids.add(payload["message_id"])
        return ids

    async def stop(self) -> None:
        await self.process.stop()


class Chatter:
    """Posts messages to ``channel_id`` through ``front`` until stopped (module doc)."""

    def __init__(self, front: DaphneServer, channel_id: object, token: str) -> None:
        self.front = front
        self.path = f"/api/channels/{channel_id}/messages/"
        self.token = token
        self.acked: list[str] = []
        self.failures = 0

    async def run(self, stop: asyncio.Event, every: float = 0.05) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                status, body = await self.front.arequest(
                    "POST", self.path, token=self.token, body={"content": f"m{n}"}, timeout=5
                )
            except OSError:
                status, body = None, None
            if status == 201:
                self.acked.append(body["id"])
            else:
                self.failures += 1
            await asyncio.sleep(every)


class Editor:
    """A reconnecting y-websocket editor (module doc)."""

    def __init__(self, peers: PeerPool, front: Any, note_id: object, token: str, name: str) -> None:
        self.peers = peers
        self.front = front
        self.note_id = note_id
        self.token = token
        self.name = name
        self.doc = Doc()
        self.peer: YPeer | None = None
        self.acked: list[str] = []
        self.connects = 0
        #: Why connecting failed, each time (shown when a test fails).
        self.errors: list[str] = []

    async def _connect(self) -> None:
        """A new connection with the same ``Doc`` (the old one's provider stopped first)."""
        if self.peer is not None:
            await self.peer.abandon()
            self.peer = None
        peer = self.peers(self.front, self.note_id, self.token, doc=self.doc, name=self.name)
        try:
            await peer.start(timeout=5, barrier=False)
            # What both sides have is never exchanged again on this connection: count the
            # whole Doc as exchanged, so ``YPeer.flushed`` compares against it (what the server
            # lacks went out in the Provider's answer to its step 1, before ``synced``).
            assert peer.channel is not None
            peer.channel.shared.apply_update(self.doc.get_update())
            await peer.barrier(timeout=5)
        except BaseException:
            await peer.abandon()
            raise
        self.peer = peer
        self.connects += 1

    async def _settled(self, peer: YPeer) -> bool:
        """The server handled everything sent so far (False: the connection ended first)."""
        barrier = asyncio.ensure_future(peer.barrier(timeout=5))
        try:
            await eventually(lambda: barrier.done() or peer.channel.closed is not None, 6, 0.01)
        finally:
            if not barrier.done():
                barrier.cancel()
        with contextlib.suppress(BaseException):
            return barrier.result() is None and peer.channel.closed is None
        return False

    async def run(self, stop: asyncio.Event, every: float = 0.05) -> None:
        n = 0
        while not stop.is_set():
            if self.peer is None or self.peer.channel.closed is not None:
                try:
                    await self._connect()
                except Exception as error:  # refused, or the instance went away: retry
                    self.errors.append(repr(error))
                    await asyncio.sleep(0.1)
                    continue
            assert self.peer is not None
            n += 1
            part = f"{self.name}{n}"
            append_text(self.doc, part + ";")
            if await self._settled(self.peer):
                self.acked.append(part)
            await asyncio.sleep(every)

    def connected(self) -> bool:
        return self.peer is not None and self.peer.channel.closed is None

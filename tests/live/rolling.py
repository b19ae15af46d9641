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
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from pycrdt import Doc

from channels_app.models import Message
from tests.live.doc_peers import PeerPool, YPeer, append_text, durable_doc, sorted_parts, text_of
from tests.live.harness import SOCKETIO_PATH, DaphneServer, access, eventually
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


async def restart(server: DaphneServer) -> None:
    """SIGTERM, wait for the exit (status 0: drained within its limits), start again on the
    same port."""
    await asyncio.to_thread(server.stop, 20)
    assert server.process is not None and server.process.returncode == 0, server.log_tail()
    assert "Drained" in server.log_tail(200)
    server.spawn(port=server.port)
    await asyncio.to_thread(server.wait_ready)


@database_sync_to_async
def stored_message_ids(channel_id: object) -> set[str]:
    return {
        str(pk) for pk in Message.objects.filter(channel_id=channel_id).values_list("pk", flat=True)
    }


async def roll_under_load(front, instances, node, users, channel, note_id, ypeers) -> None:
    """Load through ``front`` (a ``Front``): three users' stock sockets (alice and bob on
    WebSocket, carol on polling alone) in ``channel``, a chatter (alice) posting to it, and
    alice's and bob's editors in the note ``note_id``; each of ``instances`` restarted in
    turn (``restart``), the next only once every client is back and has had something acked.

    Then: every client is connected and was cut over at least once; every acked message is
    in the database and reached every socket, each of whose reconnects resumed its session
    (connection state recovery: same sid); every acked edit is in the database (state and
    update log) and in what a fresh peer gets; presence lists exactly the three users on
    every instance."""
    alice, bob, carol = users
    sockets = [
        await StockSocket(
            node, front.url, await access(alice), "alice-ws", transports=["websocket"]
        ).start(),
        await StockSocket(
            node, front.url, await access(bob), "bob-ws", transports=["websocket"]
        ).start(),
        await StockSocket(
            node, front.url, await access(carol), "carol-polling", transports=["polling"]
        ).start(),
    ]
    stop = asyncio.Event()
    chatter = Chatter(front, channel.id, await access(alice))
    editors = [
        Editor(ypeers, front, note_id, await access(alice), "a"),
        Editor(ypeers, front, note_id, await access(bob), "b"),
    ]
    load = [asyncio.create_task(worker.run(stop)) for worker in (chatter, *editors)]
    try:
        await eventually(lambda: all(e.acked for e in editors) and chatter.acked, 10)
        for server in instances:
            await restart(server)
            # everybody back (and some traffic on the new process) before the next restart
            await eventually(lambda: all(s.connected() for s in sockets), 15)
            try:
                await eventually(lambda: all(e.connected() for e in editors), 15)
            except AssertionError:
                raise AssertionError([e.errors[-5:] for e in editors]) from None
            await eventually(more_acked(chatter, editors), 10)
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)

    try:
        # every client ended connected, and each was cut over at least once
        assert all(s.connected() for s in sockets), [s.process.lines[-3:] for s in sockets]
        assert all(s.reconnects() >= 1 for s in sockets)
        assert all(e.connects >= 2 for e in editors)

        # no acked message lost: in the database, and delivered to every socket
        acked_messages = set(chatter.acked)
        assert acked_messages <= await stored_message_ids(channel.id)
        for socket in sockets:
            try:
                await eventually(lambda s=socket: acked_messages <= s.message_ids(), 10)
            except AssertionError:
                missing = acked_messages - socket.message_ids()
                order = {m: i for i, m in enumerate(chatter.acked)}
                raise AssertionError(
                    f"{socket.name} misses {sorted(order[m] for m in missing)} of "
                    f"{len(acked_messages)}; connects {socket.process.found('connect')}"
                    f" disconnects {socket.process.found('disconnect')}"
                ) from None
            assert resumed_every_time(socket), socket.process.found("connect")

        # no acked edit lost: in the database (state + update log) and in a fresh peer's sync
        acked_edits = sorted(part for e in editors for part in e.acked)
        durable = sorted_parts(text_of(await durable_doc(note_id)))
        assert set(acked_edits) <= set(durable)
        fresh = ypeers(front, note_id, await access(carol), name="fresh")
        await fresh.start()
        assert set(acked_edits) <= set(sorted_parts(text_of(fresh.doc)))
        await fresh.leave()

        # presence: exactly the three users online, as seen from both instances
        expected = {str(alice.id), str(bob.id), str(carol.id)}
        token = await access(alice)
        for server in instances:
            await eventually(lambda sv=server: _online(sv, channel.id, token, expected), 10)
    finally:
        for socket in sockets:
            await socket.stop()
        for editor in editors:
            if editor.peer is not None:
                await editor.peer.abandon()


def more_acked(chatter: Chatter, editors: list[Editor]) -> Callable[[], bool]:
    """A check: the chatter and every editor have had something acked since now."""
    before = len(chatter.acked), [len(e.acked) for e in editors]
    return lambda: (
        len(chatter.acked) > before[0]
        and all(len(e.acked) > n for e, n in zip(editors, before[1], strict=True))
    )


def resumed_every_time(socket: StockSocket) -> bool:
    """Every reconnect of ``socket`` resumed its session (same id as its first connect)."""
    ids = {line["id"] for line in socket.process.found("connect")}
    return len(ids) == 1


async def _online(server: DaphneServer, channel_id: object, token: str, expected: set[str]) -> bool:
    return await server.online_ids(channel_id, token) == expected

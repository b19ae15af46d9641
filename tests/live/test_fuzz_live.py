"""A live fuzzer (issue 14, point 13): random frames from a grammar against real daphnes while
ordinary clients work; the server stays up, its memory stays bounded, nobody ordinary loses
anything.

The grammar is ``tests/live/fuzz_grammar.py`` (Engine.IO, Socket.IO and y-websocket frames,
valid and hostile). ``FUZZ_WORKERS`` connections at a time send ``FUZZ_FRAMES`` frames in
about ``FUZZ_SECONDS`` (paced over the window), reconnecting whenever the server closes them —
closing is an allowed answer. Meanwhile the ordinary clients do what users do: two Socket.IO
clients in a channel receive every message posted through the REST API and type; a
y-websocket editor and a Socket.IO ``ydoc:*`` editor type into one note.

Afterwards, every one of these must hold (all are checked, then reported together):

- the daphne processes are alive, answer HTTP (``/api/users/me/`` → 401), accept a fresh
  Socket.IO client and a fresh y-websocket peer;
- each server's RSS, sampled every 50 ms during the fuzz, stayed under ``rss_bound`` (a
  baseline measured after a warm-up, plus a margin derived from the server's size knobs);
- the ordinary clients were never disconnected; each received every message exactly once, in
  order, and every typing change of the other, in order; both editors converged and their
  documents hold every ordinary edit exactly once; so does the note's stored state once they
  leave (the save is not blocked by anything the fuzz sent);
- no ghost session: once the fuzz connections are gone, presence shows the fuzz users offline,
  the document's ``sessions`` lists only live sockets, and each fuzz user can connect again;
- every close the server initiated carried a documented close code (docs/protocol.md §3, and
  1002 / 1007 for WebSocket protocol errors) — never 1011 ("the server failed") nor a
  connection dropped without a close frame (checked on the connections that keep reading).

One daphne on the embedded stack (pass 1: SQLite, in-memory layer; pass 2: the same on
PostgreSQL), and two daphnes sharing PostgreSQL + Redis with the ordinary clients split across
them (pass 2, ``services``).

Reproducing: the seed is printed and named in every failure; ``CHORUS_FUZZ_SEED=<seed>`` runs
the same connections and frames again (the server's timing may still differ). Every
connection (worker, number, path, its frames — up to 4 KB each verbatim — and how it ended)
is written to ``fuzz-trace.json`` next to the server logs; connection ``n`` of worker ``w`` is
the ``n + 1``-th ``plan()`` of ``Grammar(random.Random(f"{seed}/{w}"), world)``, so it can be
regenerated alone against a fresh server. ``CHORUS_FUZZ_SECONDS`` / ``CHORUS_FUZZ_FRAMES``
make a longer local run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from accounts.tokens import issue_token_pair
from realtime.conf import DEFAULTS as REALTIME_DEFAULTS
from realtime.events import HANDLERS
from tests.live.doc_peers import (
    SioPeer,
    append_text,
    converged,
    create_note,
    prosemirror,
    state_vector,
    stored_doc,
    text_of,
)
from tests.live.fuzz_grammar import Frame, Grammar, Plan, World
from tests.live.harness import Client, DaphneServer, access, eventually, short_lived, typing_event
from tests.live.test_channels_live import (
    EVENT,
    People,
    Person,
    api_events,
    create_channel,
    kinds,
    of_type,
    online,
    post,
    typing,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

KiB, MiB = 2**10, 2**20

#: The fuzz budget of one test: frames sent (all workers together) and the window they are
#: paced over. Three runs of the suite (one daphne in each pass, two daphnes in pass 2) spend
#: about 3 x FUZZ_SECONDS fuzzing.
FUZZ_FRAMES = int(os.environ.get("CHORUS_FUZZ_FRAMES", "3000"))
FUZZ_SECONDS = float(os.environ.get("CHORUS_FUZZ_SECONDS", "3"))
#: Fuzz connections open at the same time (all servers together).
FUZZ_WORKERS = 6
#: Ordinary work spread over the fuzz window: messages posted, typing changes, edits.
ROUNDS = 10

#: Small limits keep the worst case small and the test fast; the grammar aims at both sides
#: of each.
KNOBS: dict[str, Any] = {
    "WEBSOCKET_MAX_MESSAGE_BYTES": 64 * KiB,
    "DOC_MAX_BYTES": 512 * KiB,
    "DOC_MAX_UPDATE_BYTES": 32 * KiB,
    "DOC_MAX_AWARENESS_BYTES": 4 * KiB,
    "DOC_SAVE_DEBOUNCE": 0.2,
    "DOC_SAVE_MAX_WAIT": 1,
}
#: The y-websocket frame limit the server applies (DOC_MAX_BYTES + SYNC_HEADROOM).
DOC_FRAME_BYTES = KNOBS["DOC_MAX_BYTES"] + 64 * KiB
#: The send high-water mark per socket (issue 14 point 1: "large enough for one initial sync
#: at DOC_MAX_BYTES"): one Socket.IO state reply of a full document, an int list of up to 4
#: bytes per byte, plus the y-websocket headroom. Given to servers that have the knob.
SEND_BUFFER_BYTES = 4 * KNOBS["DOC_MAX_BYTES"] + 64 * KiB
if "SEND_BUFFER_MAX_BYTES" in REALTIME_DEFAULTS:
    KNOBS["SEND_BUFFER_MAX_BYTES"] = SEND_BUFFER_BYTES
#: All fuzz workers together make at most this many bytes of valid Yjs updates: an eighth of
#: DOC_MAX_BYTES, so the fuzz can never fill the note up to the limit the ordinary editors'
#: updates are then legitimately refused at.
VALID_UPDATE_BYTES = KNOBS["DOC_MAX_BYTES"] // 8

#: RSS margin (see ``rss_bound``). SLACK: what a daphne may grow by with no hostile input at
#: all (allocator arenas, caches warming, log buffers): with the ordinary clients and a
#: valid-only fuzz over the window it grew 1.5-3 MiB, with the hostile fuzz (when nothing
#: went wrong) 2-5 MiB; several times that, for noise.
RSS_SLACK = 24 * MiB
#: Copies of one incoming frame a connection may hold at once: autobahn's buffer, the
#: decoded str / bytes, the parsed packet, a copy on its way to a handler.
FRAME_COPIES = 4
#: Copies of one open document: pycrdt's Doc, a full-state reply, a save's merge, the state
#: read back.
DOC_COPIES = 4

#: Close codes a server may answer a client with (docs/protocol.md §3: 1000, 1001, 1009, 4400,
#: 4401, 4403, 4408, 4413, 4429), plus the WebSocket library's answers to protocol errors (1002,
#: and 1007 for text that is not UTF-8). Not 1011: the protocol documents it as "the server
#: failed (a bug)", and no input may make the server fail.
DOCUMENTED_CLOSES = {1000, 1001, 1002, 1007, 1009, 4400, 4401, 4403, 4408, 4413, 4429}

TOKEN = re.compile(r"<[ab]\d+>")
#: The start of a server log record: a timestamped log line or an access-log line.
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d |\d+\.\d+\.\d+\.\d+:\d+ ")


def rss_bound(baseline: int, connections: int) -> int:
    """The most a server may hold after the warm-up: ``baseline`` + ``RSS_SLACK`` + for each
    connection open at once its send buffer (``SEND_BUFFER_BYTES``) and ``FRAME_COPIES``
    frames of the largest size the server accepts + ``DOC_COPIES`` documents of
    ``DOC_MAX_BYTES``. Whatever clients send, a server must not hold more: anything beyond is
    memory a client made the server spend without limit (issue 14: "no client, however broken
    or hostile, can exhaust memory")."""
    largest = max(KNOBS["WEBSOCKET_MAX_MESSAGE_BYTES"], DOC_FRAME_BYTES)
    per_connection = SEND_BUFFER_BYTES + FRAME_COPIES * largest
    return baseline + RSS_SLACK + connections * per_connection + DOC_COPIES * KNOBS["DOC_MAX_BYTES"]


def rss_of(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    raise RuntimeError(f"no VmRSS for {pid}")


# --- the fuzzer ----------------------------------------------------------------------------------


@dataclass
class Connection:
    """What one fuzz connection did (one entry of the trace)."""

    worker: int
    number: int
    server: str
    kind: str
    path: str
    headers: dict[str, str]
    reads: bool
    frames: list[dict] = field(default_factory=list)
    established: bool = False
    refused: str = ""  # the opening handshake failed (e.g. an Origin refused with 403)
    #: How the server ended it: its close code, "dropped" (no close frame), or None (we did).
    server_close: int | str | None = None
    client_error: str = ""  # the fuzzer itself failed to send (a bug of the test)


class Fuzzer:
    """``FUZZ_WORKERS`` workers (spread over the servers), each running connections planned by
    its own ``Grammar`` until the frame budget is spent or the window is over."""

    def __init__(
        self,
        seed: str,
        targets: list[tuple[DaphneServer, World]],
        frames: int,
        seconds: float,
        workers: int = FUZZ_WORKERS,
        hostile: bool = True,
    ) -> None:
        self.seed = seed
        self.targets = targets
        self.frames = frames
        self.seconds = seconds
        self.workers = workers
        self.hostile = hostile
        self.sent = 0
        self.connections: list[Connection] = []
        self.deadline = 0.0

    def exhausted(self) -> bool:
        return self.sent >= self.frames or time.monotonic() >= self.deadline

    async def run(self) -> None:
        self.deadline = time.monotonic() + self.seconds
        await asyncio.gather(*(self.worker(index) for index in range(self.workers)))

    async def worker(self, index: int) -> None:
        server, world = self.targets[index % len(self.targets)]
        grammar = Grammar(random.Random(f"{self.seed}/{index}"), world, hostile=self.hostile)
        number = 0
        while not self.exhausted():
            plan = grammar.plan()
            record = Connection(
                index, number, server.name, plan.kind, plan.path, plan.headers, plan.reads
            )
            self.connections.append(record)
            number += 1
            await self.connect_and_send(server, plan, record)

    async def connect_and_send(self, server: DaphneServer, plan: Plan, record: Connection) -> None:
        self.sent += 1  # opening a connection costs one frame of the budget
        sock = None
        try:
            if not plan.reads:  # a client that stops reading: a small receive window fills fast
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
            ws = await ws_connect(
                f"ws://127.0.0.1:{server.port}{plan.path}",
                sock=sock,
                additional_headers=plan.headers,
                compression=None,
                ping_interval=None,
                open_timeout=5,
                close_timeout=1,
                max_size=None,
                max_queue=1 if not plan.reads else 64,
                proxy=None,
            )
        except (InvalidHandshake, OSError, TimeoutError, EOFError) as error:
            record.refused = f"{type(error).__name__}: {error}"[:200]
            if sock is not None:
                sock.close()
            return
        inbox: list[str | bytes] = []
        arrived = asyncio.Event()
        reader = asyncio.create_task(self.read(ws, inbox, arrived))
        try:
            ready = await self.setup(ws, plan, record, inbox, arrived, reader)
            record.established = ready and bool(plan.setup)  # authenticated, joined
            if not plan.reads:
                reader.cancel()
            for unit in plan.units:
                if self.exhausted() or (plan.reads and reader.done()):
                    break
                self.sent += len(unit.frames)
                record.frames += [frame.as_trace() for frame in unit.frames]
                try:
                    async with asyncio.timeout(5):
                        for frame in unit.frames:
                            await send(ws, frame)
                except (ConnectionClosed, TimeoutError):
                    break
                except Exception as error:  # the fuzzer's own failure: reported, not hidden
                    record.client_error = f"{type(error).__name__}: {error}"[:200]
                    break
                await asyncio.sleep(max(unit.pause, self.ahead()))
        finally:
            closed_by_server = plan.reads and reader.done()
            if plan.abort or not plan.reads:
                ws.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2)
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            if closed_by_server:
                received = ws.protocol.close_rcvd
                record.server_close = received.code if received is not None else "dropped"

    def ahead(self) -> float:
        """Pacing: how many seconds the frames sent so far are ahead of the budget spread
        evenly over the window (the fuzz goes on while the ordinary clients work)."""
        due = self.deadline - self.seconds + self.sent / self.frames * self.seconds
        return max(0.0, due - time.monotonic())

    async def setup(
        self,
        ws: ClientConnection,
        plan: Plan,
        record: Connection,
        inbox: list,
        arrived: asyncio.Event,
        reader: asyncio.Task,
    ) -> bool:
        """Send the plan's set-up frames, each waiting for its answer; True if all came."""
        for frame, prefix in plan.setup:
            if frame is not None:
                record.frames.append(frame.as_trace())
                self.sent += 1
                try:
                    await send(ws, frame)
                except ConnectionClosed:
                    return False
            deadline = min(time.monotonic() + 5, self.deadline + 1)
            while not any(
                isinstance(m, type(prefix)) and m.startswith(prefix)  # type: ignore[arg-type]
                for m in inbox
            ):
                if reader.done() or time.monotonic() > deadline:
                    return False
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.1)
            inbox.clear()
        return True

    @staticmethod
    async def read(ws: ClientConnection, inbox: list, arrived: asyncio.Event) -> None:
        """Drain the connection; keep the last few messages for the set-up to look at."""
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                inbox.append(message)
                del inbox[:-16]
                arrived.set()

    # --- reporting --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        by_kind: dict[str, Counter] = {}
        for c in self.connections:
            counter = by_kind.setdefault(c.kind, Counter())
            counter["connections"] += 1
            counter["established"] += c.established
            counter["refused handshake"] += bool(c.refused)
            counter["frames"] += len(c.frames)
            counter["fuzzer errors"] += bool(c.client_error)
            if c.server_close is not None:
                counter[f"closed {c.server_close}"] += 1
        return {
            "frames": self.sent,
            **{k: {n: c for n, c in v.items() if c} for k, v in sorted(by_kind.items())},
        }

    def undocumented_closes(self) -> list[Connection]:
        return [
            c
            for c in self.connections
            if c.server_close is not None and c.server_close not in DOCUMENTED_CLOSES
        ]

    def write_trace(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {"seed": self.seed, "connections": [asdict(c) for c in self.connections]},
                indent=1,
            )
        )


async def send(ws: ClientConnection, frame: Frame) -> None:
    if frame.fragments > 1:
        cut = len(frame.data) // 2
        await ws.send([frame.data[:cut], frame.data[cut:]], text=frame.text)
    else:
        await ws.send(frame.data, text=frame.text)


class RssSampler:
    """Samples the RSS of each server every 50 ms until stopped; keeps the peak and a
    coarse timeline."""

    def __init__(self, servers: list[DaphneServer]) -> None:
        self.servers = servers
        self.peak = {s.name: 0 for s in servers}
        self.timeline: dict[str, list[tuple[float, int]]] = {s.name: [] for s in servers}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> RssSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set():
            for server in self.servers:
                if server.running:
                    rss = rss_of(server.process.pid)
                    self.peak[server.name] = max(self.peak[server.name], rss)
                    self.timeline[server.name].append((time.monotonic() - began, rss))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.05)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def describe(self, name: str) -> str:
        points = self.timeline[name][:: max(1, len(self.timeline[name]) // 12)]
        return ", ".join(f"{t:.1f}s {rss / MiB:.0f}" for t, rss in points)


# --- the scenario --------------------------------------------------------------------------------


@dataclass
class Ordinary:
    """The ordinary clients and what they did."""

    alice: Person
    bob: Person
    channel_id: str
    note_id: str
    chat: dict[str, Client]  # alice / bob in the channel
    yws: Any  # alice's y-websocket editor (doc_peers.YPeer)
    sio: SioPeer  # bob's Socket.IO editor
    posted: list[str] = field(default_factory=list)
    typed: dict[str, list[bool]] = field(default_factory=lambda: {"alice": [], "bob": []})
    edits: list[str] = field(default_factory=list)

    async def round(self, index: int, servers: list[DaphneServer]) -> None:
        """One message (alternately alice on the first server, bob on the last), one typing
        change of the same user, one edit from each editor."""
        who, name = (self.alice, "alice") if index % 2 == 0 else (self.bob, "bob")
        server = servers[0] if index % 2 == 0 else servers[-1]
        message = await post(server, who, self.channel_id, f"message {index}")
        self.posted.append(message["id"])
        state = len(self.typed[name]) % 2 == 0  # strictly alternating: every change is relayed
        ack = await self.chat[name].call(EVENT, typing(self.channel_id, state))
        assert ack == {}, f"{name}'s typing refused: {ack}"
        self.typed[name].append(state)
        append_text(self.yws.doc, f"<a{index}>")
        self.edits.append(f"<a{index}>")
        await self.sio.edit(lambda doc: append_text(doc, f"<b{index}>"))
        self.edits.append(f"<b{index}>")


async def make_world(servers, people: People):
    """Users, the channel, the note and the tokens the fuzzer may use."""
    alice, bob = await people("Alice"), await people("Bob")
    writer, other, reader, stranger = (
        await people("Mallory"),
        await people("Trudy"),
        await people("Reader"),
        await people("Stranger"),
    )
    fuzzers = [writer, other, reader]
    channel = await create_channel(servers[0], alice, bob, *fuzzers, name="fuzzed")
    note = await database_sync_to_async(create_note)(
        alice.user, [bob.user, writer.user, other.user], [reader.user], None, "fuzzed"
    )
    tokens = {
        "writer": writer.token,
        "other_writer": other.token,
        "reader": reader.token,
        "stranger": stranger.token,
        "expired": await short_lived(writer.user, -60),
        "refresh": (await database_sync_to_async(issue_token_pair)(writer.user))["refresh"],
    }
    world = World(
        note_id=str(note.id),
        channel_id=channel["id"],
        tokens=tokens,
        event_names=tuple(sorted(HANDLERS)),
        max_message_bytes=KNOBS["WEBSOCKET_MAX_MESSAGE_BYTES"],
        max_doc_frame_bytes=DOC_FRAME_BYTES,
        max_awareness_bytes=KNOBS["DOC_MAX_AWARENESS_BYTES"],
        valid_update_bytes=VALID_UPDATE_BYTES // FUZZ_WORKERS,
    )
    return alice, bob, fuzzers, world


class Phases:
    """Seconds spent in each phase of the test (printed, to keep the test's cost visible)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.spent: dict[str, float] = {}

    def end(self, name: str) -> None:
        now = time.monotonic()
        self.spent[name], self.last = now - self.last, now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.spent.items())


class Problems(list):
    """Failed checks, collected so that one run reports all of them."""

    async def check(self, what: str, check: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await check()
        except (AssertionError, TimeoutError) as error:
            self.append(f"{what}: {error}")
        except Exception as error:
            self.append(f"{what}: {type(error).__name__}: {error}")
        return None


async def fuzz_scenario(
    servers: list[DaphneServer], clients, ypeers, people: People, log_dir: Path
) -> None:
    seed = os.environ.get("CHORUS_FUZZ_SEED") or str(random.SystemRandom().randrange(2**32))
    print(f"CHORUS_FUZZ_SEED={seed}")
    phases = Phases()
    alice, bob, fuzzers, world = await make_world(servers, people)
    first, last = servers[0], servers[-1]
    chat = {
        "alice": await online(clients, first, alice, f"alice@{first.name}"),
        "bob": await online(clients, last, bob, f"bob@{last.name}"),
    }
    yws = await ypeers(first, world.note_id, alice.token, name=f"alice@{first.name}/yws").start()
    sio = SioPeer(await clients(last, f"bob@{last.name}/sio").connect(bob.token), world.note_id)
    await sio.join()
    ordinary = Ordinary(alice, bob, world.channel_id, world.note_id, chat, yws, sio)
    targets = [(server, world) for server in servers]
    phases.end("set-up")

    # Warm-up: the ordinary path once, and a valid-only fuzz; then the baseline.
    problems = Problems()
    await ordinary.round(0, servers)
    warm = Fuzzer(f"{seed}/warm-up", targets, frames=100, seconds=0.5, hostile=False)
    await warm.run()

    async def warm_converged() -> None:
        await yws.barrier(timeout=10)
        await editors_converged(yws, sio)

    await problems.check("editors after the valid-only warm-up", warm_converged)
    baseline = {server.name: rss_of(server.process.pid) for server in servers}
    phases.end("warm-up")
    connections = FUZZ_WORKERS // len(servers) + 5  # fuzz + ordinary (+ a fresh one)
    bound = {name: rss_bound(rss, connections) for name, rss in baseline.items()}

    fuzzer = Fuzzer(seed, targets, FUZZ_FRAMES, FUZZ_SECONDS)
    log_start = {server.name: server.log_path.stat().st_size for server in servers}
    sampler = RssSampler(servers).start()

    async def ordinary_work() -> None:
        start = time.monotonic()
        for index in range(1, ROUNDS + 1):
            await ordinary.round(index, servers)
            due = start + index * FUZZ_SECONDS / ROUNDS  # spread over the fuzz window
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    began = time.monotonic()
    await asyncio.gather(fuzzer.run(), problems.check("ordinary clients' work", ordinary_work))
    fuzz_time = time.monotonic() - began
    phases.end("fuzz")
    await sampler.stop()
    trace = log_dir / "fuzz-trace.json"
    fuzzer.write_trace(trace)
    stats = fuzzer.stats()
    print(f"fuzz: {fuzz_time:.1f}s {json.dumps(stats)}")
    for server in servers:
        print(
            f"{server.name} RSS MiB: baseline {baseline[server.name] / MiB:.1f}, peak "
            f"{sampler.peak[server.name] / MiB:.1f}, bound {bound[server.name] / MiB:.1f}"
        )

    def report() -> str:
        return (
            f"\n[fuzz seed {seed}: rerun with CHORUS_FUZZ_SEED={seed}; trace {trace}]\n"
            f"fuzz: {json.dumps(stats)}\n"
            + "\n".join(
                f"{s.name} RSS MiB: baseline {baseline[s.name] / MiB:.0f}, peak "
                f"{sampler.peak[s.name] / MiB:.0f}, bound {bound[s.name] / MiB:.0f}; "
                f"{sampler.describe(s.name)}"
                for s in servers
            )
        )

    # 1. The servers are up (nothing else can be checked otherwise).
    dead = [s.name for s in servers if not s.running]
    assert not dead, f"daphne died: {dead}{report()}"

    async def answers_http() -> None:
        for server in servers:
            status, _ = await server.arequest("GET", "/api/users/me/", timeout=10)
            assert status == 401, f"{server.name}: GET /api/users/me/ -> {status}"

    await problems.check("HTTP", answers_http)

    # 2. Memory stayed bounded.
    for server in servers:
        if sampler.peak[server.name] > bound[server.name]:
            problems.append(
                f"{server.name}: RSS peaked at {sampler.peak[server.name] / MiB:.0f} MiB, over "
                f"the bound {bound[server.name] / MiB:.0f} MiB (baseline "
                f"{baseline[server.name] / MiB:.0f} MiB)"
            )

    # 3. The ordinary clients lost nothing.
    async def chat_complete() -> None:
        for name, client in chat.items():
            other, other_id = ("bob", bob.id) if name == "alice" else ("alice", alice.id)
            with contextlib.suppress(AssertionError):  # compared below, whatever arrived
                await client.wait_for(EVENT, of_type("message", message_id=ordinary.posted[-1]), 10)
            got = [m for _, m in kinds(api_events(client, world.channel_id))]
            assert got == ordinary.posted, (
                f"{name} received messages {got}, posted (in order) {ordinary.posted}"
            )
            relayed = typing_event(world.channel_id, other_id)
            with contextlib.suppress(AssertionError):
                await eventually(
                    lambda c=client, r=relayed, o=other: (
                        len(c.received(EVENT, r)) >= len(ordinary.typed[o])
                    ),
                    timeout=5,
                )
            typed = [e["data"]["data"]["typing"] for e in client.received(EVENT, relayed)]
            assert typed == ordinary.typed[other], (
                f"{name} received {other}'s typing {typed}, sent {ordinary.typed[other]}"
            )
            assert client.connected and not client.disconnects, (
                f"{name} was disconnected: {client.disconnects}"
            )

    await problems.check("chat", chat_complete)

    async def documents_complete() -> None:
        assert yws.channel.closed is None, (
            f"the y-websocket editor was closed: {yws.channel.closed}"
        )
        assert sio.client.connected and not sio.client.disconnects, "the Socket.IO editor left"
        await yws.barrier(timeout=10)
        await editors_converged(yws, sio)
        for peer, doc in (("y-websocket", yws.doc), ("Socket.IO", sio.doc)):
            found = Counter(TOKEN.findall(text_of(doc)))
            assert found == Counter(ordinary.edits), (
                f"{peer} editor's text has {sorted(found)}, the edits were {ordinary.edits}"
            )

    await problems.check("documents", documents_complete)

    # 4. No ghost session once the fuzz connections are gone.
    everyone_online = {alice.id, bob.id}

    async def presence_true() -> None:
        for server in servers:
            try:
                await eventually(
                    lambda s=server: _equal(
                        s.online_ids(world.channel_id, alice.token), everyone_online
                    ),
                    timeout=5,
                )
            except AssertionError:
                online_now = await server.online_ids(world.channel_id, alice.token)
                raise AssertionError(
                    f"{server.name} presence lists {sorted(online_now - everyone_online)} (fuzz "
                    f"users) as online after all their sockets closed"
                ) from None

    await problems.check("presence", presence_true)

    async def sessions_true() -> None:
        sid = sio.client.sio.get_sid("/")
        state: dict = {}

        async def only_live() -> bool:
            """The Socket.IO editor and one y-websocket connection (``y:<id>``: alice's
            editor, whose id no client is told) — no fuzz connection."""
            state.update(
                await sio.client.call("ydoc:document:state", {"document_id": sio.document_id})
            )
            listed = state.get("sessions", [])
            others = [s for s in listed if s != sid]
            return sid in listed and len(others) == 1 and others[0].startswith("y:")

        try:
            await eventually(only_live, timeout=5, every=0.5)
        except AssertionError:
            raise AssertionError(
                f"the document lists sessions {state.get('sessions')}, only {[sid]} and the"
                " y-websocket editor are alive"
            ) from None

    await problems.check("document sessions", sessions_true)

    async def fuzz_users_reconnect() -> None:
        for person in fuzzers:
            for server in servers:
                client = clients(server, f"{person.user.name}@{server.name} again")
                try:
                    await client.connect(person.token)
                except Exception:
                    raise AssertionError(
                        f"{person.user.name} cannot connect to {server.name}: "
                        f"{client.connect_error}"
                    ) from None
                await client.disconnect()

    await problems.check("fuzz users connect again", fuzz_users_reconnect)

    async def fresh_clients() -> None:
        fresh = await clients(last, "fresh").connect(await access(bob.user))
        assert await fresh.join() == bob.user.public_profile()
        await fresh.disconnect()
        peer = await ypeers(last, world.note_id, bob.token, name="fresh@yws").start(timeout=10)
        found = Counter(TOKEN.findall(text_of(peer.doc)))
        await peer.leave()
        assert found == Counter(ordinary.edits), f"a fresh peer got {sorted(found)}"

    await problems.check("fresh clients", fresh_clients)

    # 5. The note is saved with every edit once the editors leave.
    async def stored() -> None:
        await yws.leave()
        await sio.leave()
        try:
            await eventually(
                lambda: _stored_has(world.note_id, ordinary.edits), timeout=10, every=0.2
            )
        except AssertionError:
            doc = await stored_doc(world.note_id)
            found = sorted(Counter(TOKEN.findall(text_of(doc))))
            raise AssertionError(
                f"the stored note holds {found}, not every edit of {ordinary.edits}"
            ) from None

    await problems.check("stored note", stored)

    # 6. Every close the server made carried a documented code.
    for c in fuzzer.undocumented_closes()[:5]:
        problems.append(
            f"{c.server} closed a {c.kind} connection ({c.path[:60]}) with "
            f"{c.server_close!r}, not a documented code; last frames: "
            f"{[json.dumps(f)[:200] for f in c.frames[-3:]]}"
        )

    # 7. No exception escaped into the server's log: whatever a client sends is refused by a
    # check, never by a crash (docs/protocol.md: 1011 and internal_error are bugs).
    for server in servers:
        for failure in logged_exceptions(server, log_start[server.name])[:3]:
            problems.append(f"{server.name} logged an exception: {failure}")

    # 8. The fuzz reached deep (else the run proved little), and the fuzzer itself worked.
    for c in [c for c in fuzzer.connections if c.client_error][:3]:
        problems.append(f"the fuzzer failed to send on a {c.kind} connection: {c.client_error}")
    for kind in ("sio-deep", "yws-deep"):
        if stats.get(kind, {}).get("established", 0) < 1:
            problems.append(f"no {kind} connection was established: {stats.get(kind)}")

    phases.end("checks")
    print(f"phases: {phases}")
    assert not problems, "\n".join(f"- {p}" for p in problems) + report()


async def editors_converged(yws, sio: SioPeer, timeout: float = 10.0) -> None:
    """``doc_peers.converged`` for the two editors, with a short account of how they differ."""
    try:
        await converged(yws, sio, timeout=timeout)
    except AssertionError:
        a, b = yws.doc, sio.pull()
        text_a, text_b = text_of(a), text_of(b)
        at = next((i for i, (x, y) in enumerate(zip(text_a, text_b, strict=False)) if x != y), None)
        at = min(len(text_a), len(text_b)) if at is None else at
        raise AssertionError(
            f"the editors did not converge within {timeout}s (state vectors "
            f"{'equal' if state_vector(a) == state_vector(b) else 'differ'}; texts "
            f"{'equal' if text_a == text_b else f'differ from char {at}'}: y-websocket "
            f"…{text_a[max(0, at - 20) : at + 40]!r} ({len(text_a)} chars), Socket.IO "
            f"…{text_b[max(0, at - 20) : at + 40]!r} ({len(text_b)} chars); paragraphs "
            f"{len(prosemirror(a)['content'])} / {len(prosemirror(b)['content'])})"
        ) from None


def logged_exceptions(server: DaphneServer, offset: int) -> list[str]:
    """Each traceback in the server's log after byte ``offset``, as "<the log line before it>
    … <the exception line>"."""
    with server.log_path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            message = lines[index - 1].strip() if index else ""
            block = []  # up to the next log record (a timestamped or an access-log line)
            for later in lines[index + 1 :]:
                if LOG_RECORD.match(later):
                    break
                block.append(later)
            raised = [b for b in block if b and not b[0].isspace()]  # the exception line(s)
            found.append(f"{message[:160]} … {(raised or [''])[-1][:200]}")
    return found


async def _equal(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _stored_has(note_id: str, edits: list[str]) -> bool:
    return Counter(TOKEN.findall(text_of(await stored_doc(note_id)))) == Counter(edits)


# --- the tests -----------------------------------------------------------------------------------


@pytest.fixture
def people(make_user) -> People:
    return People(make_user)


async def test_fuzz_one_daphne_keeps_serving_and_loses_nothing(
    servers, clients, ypeers, people, tmp_path
):
    server = servers("daphne", **KNOBS)
    await fuzz_scenario([server], clients, ypeers, people, tmp_path)


@pytest.mark.services
async def test_fuzz_two_daphnes_on_redis_keep_serving_and_lose_nothing(
    servers, clean_redis, clients, ypeers, people, tmp_path
):
    a, b = servers.many(["instance-A", "instance-B"], clean_redis, **KNOBS)
    await fuzz_scenario([a, b], clients, ypeers, people, tmp_path)

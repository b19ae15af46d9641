"""Load-generator worker: one OS process holding many raw WebSocket clients.

``bench/run`` starts one or more workers (``python -m bench.loadgen``) and drives them with
JSON commands, one per line on stdin; each command is answered by one JSON line on stdout.
Workers never talk to each other; timestamps are ``time.monotonic_ns()`` (CLOCK_MONOTONIC,
the same clock in every process of the machine), so the coordinator can merge a send time
taken in one worker with receive times taken in others.

Clients speak the frames directly — much cheaper than python-socketio clients:

- Socket.IO (``SioClient``): receive OPEN ``0{...}``, send ``40{"token":…}``, receive
  ``40{"sid":…}`` (``44{…}`` is a refusal), answer PING ``2`` with ``3``, emit
  ``42<id>["event",{…}]``, read ACK ``43<id>[…]``.
- y-websocket (``YwsClient``): binary y-protocols frames; updates are sent as sync-update
  messages ``[0, 2, varUint(len), update]`` built from a real pycrdt ``Doc`` per editor.

How messages are identified without trusting any server to keep extra fields:

- broadcast: the typing relay carries the client's ``message_id`` (a UUID); the sequence number
  is its last 12 hex digits. The send time stays with the sender.
- collaborative edits: each inserted text starts with a tag ``#<editor>:<seq>:<t_ns>#``; the
  tag survives any re-encoding of the update (Yjs keeps string content verbatim), so it is
  found by scanning the relayed bytes — on every server, whether it relays the bytes it got
  (Chorus) or re-encodes them from its own document (pycrdt-websocket, Node y-websocket).

Nothing here waits without a deadline; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import sys
import time
from random import randbytes
from typing import Any

from websockets.speedups import apply_mask

now_ns = time.monotonic_ns

MSG_ID_PREFIX = "00000000-0000-4000-8000-"
MSG_ID_NEEDLE = '"message_id":"' + MSG_ID_PREFIX
TAG_RE = re.compile(rb"#(\d+):(\d+):(\d+)#")
SAMPLE_CAP = 30_000


def msg_id(seq: int) -> str:
    return f"{MSG_ID_PREFIX}{seq:012x}"


def sample(values: list[int], cap: int = SAMPLE_CAP) -> list[int]:
    return values if len(values) <= cap else random.sample(values, cap)


def var_uint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Closed(Exception):
    pass


# --- a minimal WebSocket client (RFC 6455) on asyncio.Protocol ----------------------------------


class RawWebSocket(asyncio.Protocol):
    """Client side of RFC 6455 with callbacks instead of coroutines per frame.

    Why not the ``websockets`` client: its per-message cost (reader task, assembler, a coroutine
    wake-up per ``recv``) made the load generator, not the server, the bottleneck at ~4,500
    round trips/s per process. Here a frame costs a header parse and a callback. Client frames
    are masked (random key, C ``apply_mask`` from websockets' speedups); no extensions
    (uncompressed for every server), no subprotocols. PINGs are answered, a CLOSE is echoed.
    """

    def __init__(self, owner) -> None:
        # the owner (SioClient / YwsClient) gets ``ws`` as soon as the TCP connection exists:
        # frames that arrive with the 101 response are dispatched before ``connect`` returns
        owner.ws = self
        self.on_text = owner._on_text
        self.on_binary = owner._on_binary
        self.on_close = owner._on_close
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.closed = False
        self.fragments: list[bytes] = []
        self.fragment_opcode = 0

    @classmethod
    async def connect(cls, url: str, owner) -> RawWebSocket:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: cls(owner), host, int(port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        proto.transport.write(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await proto.handshake
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        if expected not in proto.accept_header:
            proto.abort()
            raise RuntimeError("bad Sec-WebSocket-Accept")
        return proto

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        was_closed, self.closed = self.closed, True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        if not was_closed:
            self.on_close()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self.handshake.set_exception(RuntimeError(f"upgrade refused: {status[:80]!r}"))
                self.transport.close()
                return
            self.accept_header = head
            self.upgraded = True
            self.handshake.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # a masked server frame is a protocol error; tolerate it
                head += 4
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            if b1 & 0x80:
                payload = apply_mask(payload, bytes(buf[pos + head - 4 : pos + head]))
            pos += head + length
            self._frame(b0, payload)
            if self.closed:
                break
        if pos:
            del buf[:pos]

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 0:
            self.fragments.append(payload)
            if not fin:
                return
            opcode, payload = self.fragment_opcode, b"".join(self.fragments)
            self.fragments = []
        elif opcode in (1, 2) and not fin:
            self.fragment_opcode, self.fragments = opcode, [payload]
            return
        if opcode == 1:
            self.on_text(payload.decode())
        elif opcode == 2:
            self.on_binary(payload)
        elif opcode == 9:
            self._send(0xA, payload)
        elif opcode == 8 and not self.closed:
            self._send(0x8, payload[:2])
            self.closed = True
            self.transport.close()
            self.on_close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.closed:
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        key = randbytes(4)
        self.transport.write(header + key + apply_mask(payload, key))

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def send_bytes(self, data: bytes) -> None:
        self._send(0x2, data)

    def close(self) -> None:
        if not self.closed:
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Client:
    """What both protocol clients share: the worker that counts them, the socket, and a close
    that the server did not ask for counted as ``unexpected_closes``."""

    def __init__(self, worker: Worker, meta: dict) -> None:
        self.worker = worker
        self.meta = meta
        self.ws: RawWebSocket | None = None
        self.closing = False
        self.editor = None  # Editor when used for collaborative editing

    def _on_text(self, frame: str) -> None:
        pass

    def _on_binary(self, frame: bytes) -> None:
        pass

    def _on_close(self) -> None:
        if not self.closing:
            self.worker.unexpected_closes += 1

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            self.ws.close()


# --- Socket.IO ----------------------------------------------------------------------------------


class SioClient(Client):
    """One Engine.IO v4 / Socket.IO v5 session over a WebSocket, frames by hand.

    Acks are callbacks (``pending``: ack id -> function of the raw ``[...]`` text), so a
    closed request/ack loop runs without a task switch per round trip."""

    def __init__(self, worker: Worker, token: str, meta: dict) -> None:
        super().__init__(worker, meta)
        self.token = token
        self.sid = ""
        self.next_id = 0
        self.pending: dict[int, Any] = {}
        self.seen: set[int] = set()  # broadcast sequence numbers received
        self._opening: asyncio.Future | None = None
        self._state = "open"  # open -> connect -> ready

    async def open(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        self._opening = loop.create_future()
        await RawWebSocket.connect(url, self)
        await self._opening

    def _on_close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.set_exception(ConnectionError("closed before CONNECT completed"))
        super()._on_close()
        pending, self.pending = self.pending, {}
        for callback in pending.values():
            callback(None)

    def _on_text(self, frame: str) -> None:
        kind = frame[:1]
        if kind == "4":
            sub = frame[1:2]
            if sub == "2":
                self.worker.on_event(self, frame)
            elif sub == "3":
                i = 2
                while frame[i].isdigit():
                    i += 1
                callback = self.pending.pop(int(frame[2:i]), None)
                if callback is not None:
                    callback(frame[i:])
            elif sub == "0" and self._state == "connect":
                self.sid = json.loads(frame[2:]).get("sid", "")
                self._state = "ready"
                self._opening.set_result(None)
            elif sub == "4" and self._state == "connect":
                self._opening.set_exception(RuntimeError(f"CONNECT refused: {frame[:200]}"))
                self._state = "refused"
            elif sub == "1":
                self.worker.errors.append("server sent DISCONNECT")
        elif kind == "2":
            self.ws.send_text("3" + frame[1:])
        elif kind == "0" and self._state == "open":
            self._state = "connect"
            self.ws.send_text('40{"token":' + json.dumps(self.token) + "}")

    def emit(self, body: str, callback) -> None:
        """Send ``42<id><body>``; ``callback(raw ack text or None if closed)``."""
        if self.ws.closed:
            callback(None)
            return
        self.next_id += 1
        self.pending[self.next_id] = callback
        self.ws.send_text(f"42{self.next_id}{body}")

    async def call_frame(self, body: str, timeout: float = 30.0) -> str:
        """Emit a pre-encoded ``["event",{...}]`` body and wait for its ack text."""
        future = asyncio.get_running_loop().create_future()

        def done(ack) -> None:
            if not future.done():
                if ack is None:
                    future.set_exception(Closed("socket closed"))
                else:
                    future.set_result(ack)

        self.emit(body, done)
        return await asyncio.wait_for(future, timeout)

    async def call(self, event: str, data, timeout: float = 30.0) -> str:
        return await self.call_frame(json.dumps([event, data], separators=(",", ":")), timeout)


# --- y-websocket ----------------------------------------------------------------------------------


class YwsClient(Client):
    async def open(self, url: str) -> None:
        await RawWebSocket.connect(url, self)

    def _on_binary(self, frame: bytes) -> None:
        if len(frame) > 2 and frame[0] == 0 and frame[1] in (1, 2) and self.editor is not None:
            self.editor.on_bytes(frame)

    def send(self, data: bytes) -> None:
        self.ws.send_bytes(data)


# --- collaborative editing ----------------------------------------------------------------------


class DocGroup:
    """The editors of one document (all in this worker) and the updates in flight."""

    def __init__(self, note_id: str, editor_count: int) -> None:
        self.note_id = note_id
        self.document_id = f"note:{note_id}"
        self.others = editor_count - 1
        self.pending: dict[tuple[int, int], int] = {}  # (sender, seq) -> deliveries missing


class Editor:
    """One collaborator: a pycrdt Doc making real Yjs updates, and a client to send them."""

    def __init__(self, worker: Worker, group: DocGroup, index: int, client, proto: str) -> None:
        from pycrdt import Doc, Text

        self.worker = worker
        self.group = group
        self.index = index
        self.client = client
        self.proto = proto
        self.doc = Doc()
        self.text = self.doc.get("bench", type=Text)
        self.seq = 0
        self.seen: set[tuple[int, int]] = set()
        self.outstanding = 0
        self.wake = asyncio.Event()
        client.editor = self

    def make_update(self, pad: int) -> bytes:
        self.seq += 1
        before = self.doc.get_state()
        tag = f"#{self.index}:{self.seq}:{now_ns()}#"
        self.text += tag + "x" * max(0, pad - len(tag))
        return self.doc.get_update(before)

    async def send_update(self, pad: int, await_ack: bool) -> None:
        update = self.make_update(pad)
        self.group.pending[(self.index, self.seq)] = self.group.others
        self.outstanding += 1
        self.worker.collab_sent += 1
        if self.proto == "yws":
            self.client.send(b"\x00\x02" + var_uint(len(update)) + update)
            return
        body = json.dumps(
            [
                "ydoc:document:update",
                {"document_id": self.group.document_id, "update": list(update)},
            ],
            separators=(",", ":"),
        )
        if await_ack:
            self.worker.check_ack(await self.client.call_frame(body))
        else:
            self.client.emit(body, self.worker.ack_cb)

    def on_bytes(self, data: bytes) -> None:
        t = now_ns()
        worker = self.worker
        for match in TAG_RE.finditer(data):
            sender, seq, sent = int(match[1]), int(match[2]), int(match[3])
            if sender == self.index:
                worker.collab_echoes += 1  # servers that echo to the sender (pycrdt, node)
                continue
            key = (sender, seq)
            if key in self.seen:
                worker.collab_dups += 1
                continue
            self.seen.add(key)
            worker.collab_deliveries += 1
            if worker.collab_recording:
                worker.collab_lat.append((t - sent) // 1000)
            left = self.group.pending.get(key)
            if left is not None:
                if left <= 1:
                    del self.group.pending[key]
                    owner = worker.editors_by_index.get(sender)
                    if owner is not None:
                        owner.outstanding -= 1
                        owner.wake.set()
                else:
                    self.group.pending[key] = left - 1


# --- the worker ---------------------------------------------------------------------------------


class Worker:
    def __init__(self) -> None:
        self.sockets: list[SioClient] = []
        self.sender: SioClient | None = None
        self.errors: list[str] = []
        self.unexpected_closes = 0
        # broadcast receive records: seq -> [count, first ns, last ns]
        self.recv: dict[int, list[int]] = {}
        self.recv_dups = 0
        self.recv_total = 0
        self.other_events = 0
        # collaborative editing
        self.editors: list[Editor] = []
        self.editors_by_index: dict[int, Editor] = {}
        self.groups: list[DocGroup] = []
        self.collab_sent = 0
        self.collab_deliveries = 0
        self.collab_dups = 0
        self.collab_echoes = 0
        self.collab_lat: list[int] = []
        self.collab_recording = False
        self.ack_errors = 0
        self.ack_error_sample: list[str] = []

    # --- events -----------------------------------------------------------------------------

    def on_event(self, client: SioClient, frame: str) -> None:
        if frame.startswith('42["events:channel"'):
            i = frame.find(MSG_ID_NEEDLE)
            if i < 0:
                self.other_events += 1  # presence and other channel events
                return
            i += len(MSG_ID_NEEDLE)
            seq = int(frame[i : i + 12], 16)
            t = now_ns()
            if seq in client.seen:
                self.recv_dups += 1
                return
            client.seen.add(seq)
            self.recv_total += 1
            entry = self.recv.get(seq)
            if entry is None:
                self.recv[seq] = [1, t, t]
            else:
                entry[0] += 1
                entry[2] = t
        elif frame.startswith('42["ydoc:document:update"') and client.editor is not None:
            payload = json.loads(frame[2:])[1]
            client.editor.on_bytes(bytes(payload["update"]))
        else:
            self.other_events += 1

    def check_ack(self, ack: str) -> None:
        if '"error"' in ack[:20]:
            self.ack_errors += 1
            if len(self.ack_error_sample) < 5:
                self.ack_error_sample.append(ack[:200])

    def ack_cb(self, ack: str | None) -> None:
        if ack is None:
            self.ack_errors += 1
            if len(self.ack_error_sample) < 5:
                self.ack_error_sample.append("socket closed before the ack")
        else:
            self.check_ack(ack)

    # --- commands ---------------------------------------------------------------------------

    async def cmd_hello(self, msg: dict) -> dict:
        return {"pid": os.getpid()}

    async def cmd_connect(self, msg: dict) -> dict:
        """Open and authenticate one Socket.IO socket per entry, ``concurrency`` at a time."""
        gate = asyncio.Semaphore(msg.get("concurrency", 50))
        url = msg["url"]
        ok = failed = 0
        errors: list[str] = []
        deadline = time.monotonic() + msg.get("timeout", 120)

        async def one(entry: dict) -> None:
            nonlocal ok, failed
            async with gate:
                client = SioClient(self, entry["token"], entry)
                try:
                    remaining = max(1.0, deadline - time.monotonic())
                    await asyncio.wait_for(client.open(url), remaining)
                except Exception as error:
                    failed += 1
                    if len(errors) < 5:
                        errors.append(f"{type(error).__name__}: {error}"[:300])
                    await client.close()
                    return
                ok += 1
                self.sockets.append(client)

        t0 = now_ns()
        await asyncio.gather(*(one(entry) for entry in msg["entries"]))
        return {"ok": ok, "failed": failed, "errors": errors, "t0": t0, "t1": now_ns()}

    async def cmd_connect_sender(self, msg: dict) -> dict:
        client = SioClient(self, msg["token"], {})
        await client.open(msg["url"])
        self.sender = client
        return {"ok": 1}

    async def cmd_emit_all(self, msg: dict) -> dict:
        """Every socket (and the sender) emits ``event`` with an ack; counts ok / errors."""
        gate = asyncio.Semaphore(msg.get("concurrency", 100))
        targets = list(self.sockets) + ([self.sender] if self.sender else [])
        ok = errors = 0
        sample_errors: list[str] = []

        async def one(client: SioClient) -> None:
            nonlocal ok, errors
            data = msg["data"]
            if msg.get("with_token"):
                data = {**data, "auth": {"token": client.token}}
            async with gate:
                try:
                    ack = await client.call(msg["event"], data, timeout=msg.get("timeout", 60))
                except Exception as error:
                    errors += 1
                    sample_errors.append(f"{type(error).__name__}: {error}"[:200])
                    return
            if '"error"' in ack[:20]:
                errors += 1
                sample_errors.append(ack[:200])
            else:
                ok += 1

        await asyncio.gather(*(one(c) for c in targets))
        return {"ok": ok, "errors": errors, "sample": sample_errors[:5]}

    async def cmd_reset_recv(self, msg: dict) -> dict:
        self.recv.clear()
        self.recv_dups = self.recv_total = self.other_events = 0
        for client in self.sockets:
            client.seen.clear()
        return {}

    async def cmd_broadcast_send(self, msg: dict) -> dict:
        """The sender emits ``count`` typing events (alternating true/false) to the channel.

        burst: closed loop on the sender's ack (``window`` acks outstanding);
        paced: one every 1/rate s, acks collected in the background.
        """
        client = self.sender
        channel = msg["channel_id"]
        seq0, count = msg["seq0"], msg["count"]
        sends: dict[int, int] = {}
        window = asyncio.Semaphore(msg.get("window", 1))
        errors_before = self.ack_errors
        tasks = []
        deadline = time.monotonic() + msg.get("timeout", 120)

        def body(seq: int) -> str:
            typing = "true" if seq % 2 else "false"
            return (
                '["events:channel",{"channel_id":"'
                + channel
                + '","message_id":"'
                + msg_id(seq)
                + '","data":{"type":"typing","data":{"typing":'
                + typing
                + "}}}]"
            )

        async def burst_one(seq: int) -> None:
            try:
                self.check_ack(await client.call_frame(body(seq)))
            except Exception as error:
                self.ack_errors += 1
                self.ack_error_sample.append(f"{type(error).__name__}: {error}"[:200])
            finally:
                window.release()

        interval = 1.0 / msg["rate"] if msg.get("mode") == "paced" else 0.0
        start = time.monotonic()
        for k in range(count):
            if time.monotonic() > deadline:
                break
            seq = seq0 + k
            if interval:
                delay = start + k * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sends[seq] = now_ns()
                client.emit(body(seq), self.ack_cb)
            else:
                await window.acquire()
                sends[seq] = now_ns()
                tasks.append(asyncio.create_task(burst_one(seq)))
        if tasks:
            await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
        return {"sends": sends, "ack_errors": self.ack_errors - errors_before}

    async def cmd_recv_report(self, msg: dict) -> dict:
        report = {
            "total": self.recv_total,
            "dups": self.recv_dups,
            "other_events": self.other_events,
            "unexpected_closes": self.unexpected_closes,
            "receivers": len(self.sockets),
        }
        if msg.get("full"):
            report["per_seq"] = self.recv
        return report

    async def cmd_loop(self, msg: dict) -> dict:
        """Every socket runs a closed request/ack loop (``window`` in flight) for ``duration``.

        event ``heartbeat``: ``{}``; event ``typing``: ``events:channel`` typing (alternating
        true/false) to the socket's own one-member channel (``entry["solo"]``). The loop is
        driven from the ack callback: the next request leaves as soon as the ack is read."""
        duration = msg["duration"]
        window = msg.get("window", 1)
        latencies: list[int] = []
        count = 0
        errors_before = self.ack_errors
        loop = asyncio.get_running_loop()
        start_at = time.monotonic() + msg.get("start_delay", 0.0)
        end_at = start_at + duration
        lanes_left = len(self.sockets) * window
        finished = loop.create_future()

        def lane_done() -> None:
            nonlocal lanes_left
            lanes_left -= 1
            if lanes_left == 0 and not finished.done():
                finished.set_result(None)

        def start_lane(client: SioClient) -> None:
            if msg["event"] == "heartbeat":
                bodies = ['["heartbeat",{}]'] * 2
            else:
                head = '["events:channel",{"channel_id":"' + client.meta["solo"] + '",'
                bodies = [
                    head + '"data":{"type":"typing","data":{"typing":true}}}]',
                    head + '"data":{"type":"typing","data":{"typing":false}}}]',
                ]
            state = {"flip": 0, "t": 0}

            def send() -> None:
                state["flip"] ^= 1
                state["t"] = now_ns()
                client.emit(bodies[state["flip"]], on_ack)

            def on_ack(ack: str | None) -> None:
                nonlocal count
                if ack is None:
                    self.ack_errors += 1
                    if len(self.ack_error_sample) < 5:
                        self.ack_error_sample.append("socket closed before the ack")
                    lane_done()
                    return
                latencies.append((now_ns() - state["t"]) // 1000)
                count += 1
                if '"error"' in ack[:20]:
                    self.check_ack(ack)
                if time.monotonic() < end_at:
                    send()
                else:
                    lane_done()

            send()

        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        t0 = now_ns()
        if not self.sockets:
            finished.set_result(None)
        for client in self.sockets:
            for _ in range(window):
                start_lane(client)
        try:
            await asyncio.wait_for(finished, duration + 30)
        except TimeoutError:
            self.errors.append(f"loop: {lanes_left} lanes never finished")
        return {
            "count": count,
            "t0": t0,
            "t1": now_ns(),
            "lat_us": sample(latencies),
            "errors": self.ack_errors - errors_before,
            "error_sample": self.ack_error_sample[:5],
            "unexpected_closes": self.unexpected_closes,
        }

    async def cmd_collab_connect(self, msg: dict) -> dict:
        """Connect every editor of the given documents; Socket.IO editors also join."""
        proto = msg["proto"]
        gate = asyncio.Semaphore(msg.get("concurrency", 50))
        failed: list[str] = []

        async def one(group: DocGroup, spec: dict) -> None:
            async with gate:
                try:
                    if proto == "yws":
                        client = YwsClient(self, spec)
                        url = msg["url"].format(doc=group.document_id, token=spec["token"])
                        await client.open(url)
                    else:
                        client = SioClient(self, spec["token"], spec)
                        await client.open(msg["url"])
                        self.sockets.append(client)
                        ack = await client.call(
                            "ydoc:document:join",
                            {
                                "document_id": group.document_id,
                                "user_id": spec["id"],
                                "user_name": spec["name"],
                                "user_color": "#336699",
                            },
                        )
                        if '"error"' in ack[:20]:
                            raise RuntimeError(ack[:200])
                except Exception as error:
                    failed.append(f"{type(error).__name__}: {error}"[:300])
                    return
                editor = Editor(self, group, spec["index"], client, proto)
                self.editors.append(editor)
                self.editors_by_index[spec["index"]] = editor

        # The first editor of every document connects first, the others after: pycrdt-websocket
        # 0.16 loses concurrent first joins of a new room (all but one hit "YRoom already
        # running" in start_room and are never served). Same order for every server.
        groups = []
        for doc in msg["docs"]:
            group = DocGroup(doc["note_id"], len(doc["editors"]))
            self.groups.append(group)
            groups.append((group, doc["editors"]))
        await asyncio.gather(*(one(group, editors[0]) for group, editors in groups))
        await asyncio.gather(
            *(one(group, spec) for group, editors in groups for spec in editors[1:])
        )
        return {"ok": len(self.editors), "failed": len(failed), "errors": failed[:5]}

    async def cmd_collab_run(self, msg: dict) -> dict:
        """Editors send updates for ``duration`` s, then wait (``drain`` s at most) until every
        update reached every other editor of its document.

        paced: each editor sends ``rate`` updates/s (acks, if any, in the background);
        window: each editor keeps at most ``window`` updates not yet delivered to all others
        (a closed loop: the relay rate the server sustains)."""
        mode, duration, pad = msg["mode"], msg["duration"], msg.get("pad", 48)
        window = msg.get("window", 2)
        rate = msg.get("rate", 5.0)
        self.collab_lat = []
        self.collab_recording = True
        sent0, deliv0 = self.collab_sent, self.collab_deliveries
        dups0, acks0 = self.collab_dups, self.ack_errors
        start = time.monotonic() + msg.get("start_delay", 0.0)
        end = start + duration

        async def paced(editor: Editor) -> None:
            interval = 1.0 / rate
            k = 0
            offset = random.random() * interval
            while True:
                at = start + offset + k * interval
                if at >= end:
                    return
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await editor.send_update(pad, await_ack=False)
                k += 1

        async def windowed(editor: Editor) -> None:
            delay = start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while time.monotonic() < end:
                if editor.outstanding >= window:
                    editor.wake.clear()
                    try:
                        await asyncio.wait_for(
                            editor.wake.wait(), max(0.01, end - time.monotonic())
                        )
                    except TimeoutError:
                        return
                    continue
                await editor.send_update(pad, await_ack=editor.proto == "sio")

        runner = paced if mode == "paced" else windowed
        t0 = now_ns()
        await asyncio.gather(*(runner(e) for e in self.editors))
        t_sent = now_ns()
        drain_until = time.monotonic() + msg.get("drain", 10.0)
        while any(g.pending for g in self.groups) and time.monotonic() < drain_until:
            await asyncio.sleep(0.05)
        t1 = now_ns()
        self.collab_recording = False
        missing = sum(sum(g.pending.values()) for g in self.groups)
        for g in self.groups:
            g.pending.clear()
        for editor in self.editors:
            editor.outstanding = 0
        return {
            "sent": self.collab_sent - sent0,
            "deliveries": self.collab_deliveries - deliv0,
            "missing": missing,
            "dups": self.collab_dups - dups0,
            "echoes": self.collab_echoes,
            "ack_errors": self.ack_errors - acks0,
            "ack_error_sample": self.ack_error_sample[:5],
            "t0": t0,
            "t_sent": t_sent,
            "t1": t1,
            "lat_us": sample(self.collab_lat),
            "unexpected_closes": self.unexpected_closes,
        }

    async def cmd_close_all(self, msg: dict) -> dict:
        clients = list(self.sockets) + ([self.sender] if self.sender else [])
        clients += [e.client for e in self.editors if isinstance(e.client, YwsClient)]
        for client in clients:
            client.closing = True
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        self.sockets.clear()
        self.sender = None
        self.editors.clear()
        self.editors_by_index.clear()
        self.groups.clear()
        return {"closed": len(clients)}


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
            await worker.cmd_close_all({})
            return
        try:
            result = await getattr(worker, "cmd_" + msg["cmd"])(msg)
            result = {"ok_cmd": True, **result}
        except Exception as error:  # report, never die silently
            result = {"ok_cmd": False, "error": f"{type(error).__name__}: {error}"}
        result["errors_seen"] = worker.errors[:5]
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())

"""Collaborative editing: the editors of one document (``DocGroup``) and one editor
(``Editor``: a pycrdt ``Doc`` making real Yjs updates, tagged so every server's relay of them
is recognised, and the bookkeeping of which update reached which editor)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from bench.loadgen.clients import SioClient, YwsClient
from bench.loadgen.wire import TAG_RE, now_ns, var_uint

if TYPE_CHECKING:
    from bench.loadgen.worker import Worker


class DocGroup:
    """The editors of one document (all in this worker) and the updates in flight."""

    def __init__(self, note_id: str, editor_count: int) -> None:
        self.note_id = note_id
        self.document_id = f"note:{note_id}"
        self.others = editor_count - 1
        self.pending: dict[tuple[int, int], int] = {}  # (sender, seq) -> deliveries missing


class Editor:
    """One collaborator: a pycrdt Doc making real Yjs updates, and a client to send them."""

    def __init__(
        self, worker: Worker, group: DocGroup, index: int, client: SioClient | YwsClient, proto: str
    ) -> None:
        from pycrdt import Doc, Text

        self.worker = worker
        self.group = group
        self.index = index
        self.client = client
        self.proto = proto
        self.doc: Doc[Text] = Doc()
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
        client = self.client
        if isinstance(client, YwsClient):  # proto "yws"
            client.send(b"\x00\x02" + var_uint(len(update)) + update)
            return
        body = json.dumps(
            [
                "ydoc:document:update",
                {"document_id": self.group.document_id, "update": list(update)},
            ],
            separators=(",", ":"),
        )
        if await_ack:
            self.worker.check_ack(await client.call_frame(body))
        else:
            client.emit(body, self.worker.ack_cb)

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

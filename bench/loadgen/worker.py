"""One load-generator process's state (``Worker``): the Socket.IO sockets, the broadcast
receive records, the collaborative editors and the error counters every command reports.
The commands themselves live in the modules named in bench/loadgen/__main__.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bench.loadgen.published import Received, on_published
from bench.loadgen.wire import MSG_ID_NEEDLE, now_ns

if TYPE_CHECKING:
    from bench.loadgen.clients import SioClient
    from bench.loadgen.editing import DocGroup, Editor


class Worker:
    """The state of one load-generator process: its sockets, what they received, their errors."""

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
        # HTTP long-polling: sessions opened (their handshakes alternate between instances),
        # requests sent after the handshakes, and those sent to another instance than the
        # session's handshake (a balancer without affinity)
        self.polling_opened = 0
        self.http_requests = 0
        self.http_elsewhere = 0
        # events from an out-of-process publisher (server-publish)
        self.published = Received()

    def on_event(self, client: SioClient, frame: str) -> None:
        """A Socket.IO EVENT frame a socket received: a broadcast is counted per sequence
        number, a published ``events`` event per index, a relayed document update goes to
        the socket's editor."""
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
        elif frame.startswith('42["events",'):
            on_published(self, client, frame)
        elif frame.startswith('42["ydoc:document:update"') and client.editor is not None:
            payload = json.loads(frame[2:])[1]
            client.editor.on_bytes(bytes(payload["update"]))
        else:
            self.other_events += 1

    def check_ack(self, ack: str) -> None:
        """Count (and sample) an ack that carries an error."""
        if '"error"' in ack[:20]:
            self.ack_errors += 1
            if len(self.ack_error_sample) < 5:
                self.ack_error_sample.append(ack[:200])

    def ack_cb(self, ack: str | None) -> None:
        """The ack callback of a fire-and-forget emit: count a refused or missing ack."""
        if ack is None:
            self.ack_errors += 1
            if len(self.ack_error_sample) < 5:
                self.ack_error_sample.append("socket closed before the ack")
        else:
            self.check_ack(ack)

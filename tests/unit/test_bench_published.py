"""What the ``server-publish`` suite's receivers count (``bench.loadgen.published``): frames
as a Socket.IO socket gets them, fed to a load-generator ``Worker`` — deliveries, duplicates,
and the order a publisher with several requests in flight may expect (an event answered
before another was sent arrives first), checked per socket."""

from __future__ import annotations

import asyncio
import json

from bench.loadgen.clients import SioClient
from bench.loadgen.published import pub_report
from bench.loadgen.worker import Worker


def frame(i: int, after: int, sent: int = 0) -> str:
    """The ``events`` frame of event ``i`` (``after``: events answered before it was sent)."""
    data = {"chat_id": "c", "message_id": "m", "data": {"type": "chat:completion"}}
    data["data"]["data"] = {"content": "token ", "i": i, "after": after, "t": sent}
    return "42" + json.dumps(["events", data], separators=(",", ":"))


def receive(frames: dict[SioClient, list[str]], worker: Worker) -> dict:
    for client, texts in frames.items():
        for text in texts:
            worker.on_event(client, text)
    return asyncio.run(pub_report(worker, {"full": True}))


def sockets(worker: Worker, count: int) -> list[SioClient]:
    return [SioClient(worker, "token", {}) for _ in range(count)]


def test_concurrent_events_may_arrive_in_any_order_but_each_once_per_socket():
    worker = Worker()
    one, two = sockets(worker, 2)
    # 0, 1 and 2 were in flight together (after = 0): any order is right
    report = receive({one: [frame(2, 0), frame(0, 0), frame(1, 0)], two: [frame(1, 0)]}, worker)
    assert report["total"] == 4 and report["dups"] == 0 and report["out_of_order"] == 0
    assert report["per_event"][1][0] == 2  # event 1 reached both sockets


def test_an_event_before_one_answered_earlier_is_out_of_order():
    worker = Worker()
    one, two = sockets(worker, 2)
    # event 3 was sent after 0-2 were answered; on socket one it overtakes event 2
    late = [frame(0, 0), frame(1, 0), frame(3, 3), frame(2, 0)]
    report = receive({one: late, two: [frame(0, 0), frame(1, 0), frame(2, 0), frame(3, 3)]}, worker)
    assert report["out_of_order"] == 1
    assert report["out_of_order_sample"] == ["event 3 (after 3) before event 2"]


def test_a_second_copy_on_the_same_socket_is_a_duplicate():
    worker = Worker()
    (one,) = sockets(worker, 1)
    report = receive({one: [frame(0, 0), frame(0, 0), frame(1, 1)]}, worker)
    assert report["total"] == 2 and report["dups"] == 1 and report["out_of_order"] == 0


def test_other_events_are_not_counted_as_published():
    worker = Worker()
    (one,) = sockets(worker, 1)
    report = receive({one: ['42["events",{"type":"status"}]', frame(0, 0)]}, worker)
    assert report["total"] == 1 and report["other_events"] == 1

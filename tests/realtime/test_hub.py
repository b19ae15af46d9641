"""The hub's outbox for messages to other instances, over the real Redis channel layer."""

from __future__ import annotations

import asyncio

import pytest

from realtime.hub import Coalesce, Hub

pytestmark = [pytest.mark.services]


async def test_peer_messages_arrive_in_order_and_the_sender_is_held_back(redis_url):
    """publish_to_peers never drops for space: above OUTBOX_SIZE the caller waits until the
    outbox drains, and the other instance receives every message in order."""
    sender, receiver = Hub(), Hub()  # two instances' hubs on one Redis layer
    assert not sender.single_process
    received: list[int] = []
    everything = asyncio.Event()

    async def on_doc(message: dict) -> None:
        received.append(message["n"])
        if len(received) == 200:
            everything.set()

    receiver.on_message("chorus.doc", on_doc)
    await receiver.pin("doc.note.outbox-test")
    sender.OUTBOX_SIZE = 3
    most_waiting = 0
    try:
        for n in range(200):
            await sender.publish_to_peers(
                "doc.note.outbox-test", {"type": "chorus.doc", "n": n, "origin": sender.token}
            )
            most_waiting = max(most_waiting, len(sender._outbox))
        await asyncio.wait_for(everything.wait(), 20)
        assert received == list(range(200))
        assert most_waiting <= sender.OUTBOX_SIZE
        assert sender.dropped_publishes == 0
    finally:
        await sender.stop()
        await receiver.stop()


async def test_peer_messages_with_a_coalesce_key_merge_while_they_wait(redis_url):
    """Messages that share a room and a coalesce key while waiting in the outbox go out as
    one (``combine`` of them, in order); other keys and plain messages keep their own."""
    sender, receiver = Hub(), Hub()
    received: list[dict] = []
    done = asyncio.Event()

    async def on_doc(message: dict) -> None:
        received.append(message)
        if message.get("last"):
            done.set()

    def combine(messages: list[dict]) -> dict:
        return {**messages[-1], "n": [n for m in messages for n in m["n"]]}

    room = "doc.note.coalesce-test"
    receiver.on_message("chorus.doc", on_doc)
    await receiver.pin(room)
    try:
        for n in range(100):  # no await suspends: all of it waits in the outbox at once
            key = "even" if n % 2 == 0 else "odd"
            await sender.publish_to_peers(
                room,
                {"type": "chorus.doc", "n": [n], "key": key, "origin": sender.token},
                coalesce=Coalesce(key, combine),
            )
        await sender.publish_to_peers(
            room, {"type": "chorus.doc", "n": [-1], "last": True, "origin": sender.token}
        )
        await asyncio.wait_for(done.wait(), 20)
        assert [(m.get("key"), m["n"]) for m in received] == [
            ("even", list(range(0, 100, 2))),
            ("odd", list(range(1, 100, 2))),
            (None, [-1]),
        ]
        assert sender.dropped_publishes == 0
    finally:
        await sender.stop()
        await receiver.stop()


async def test_a_failing_combine_still_publishes_every_message(redis_url, caplog):
    """Coalescing must never lose a message: if ``combine`` fails, each waiting message is
    published as it was queued (and the failure is logged)."""
    sender, receiver = Hub(), Hub()
    received: list[int] = []
    done = asyncio.Event()

    async def on_doc(message: dict) -> None:
        received.append(message["n"])
        if len(received) == 5:
            done.set()

    def broken(messages: list[dict]) -> dict:
        raise ValueError("cannot merge")

    room = "doc.note.coalesce-failure"
    receiver.on_message("chorus.doc", on_doc)
    await receiver.pin(room)
    try:
        for n in range(5):
            await sender.publish_to_peers(
                room,
                {"type": "chorus.doc", "n": n, "origin": sender.token},
                coalesce=Coalesce("same", broken),
            )
        await asyncio.wait_for(done.wait(), 20)
        assert received == [0, 1, 2, 3, 4]
        assert "coalescing 5 queued messages failed" in caplog.text
    finally:
        await sender.stop()
        await receiver.stop()

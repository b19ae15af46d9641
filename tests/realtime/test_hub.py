"""The hub's outbox for messages to other instances, over the real Redis channel layer."""

from __future__ import annotations

import asyncio

import pytest

from realtime.hub import Hub

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

"""The hub's outbox for messages to other instances, over the real Redis channel layer."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from realtime.hub import Coalesce, Hub

pytestmark = [pytest.mark.services]


class Peers:
    """Two instances' hubs on one Redis layer; the receiver records the ``chorus.doc``
    messages of one room."""

    def __init__(self) -> None:
        self.sender, self.receiver = Hub(), Hub()
        self.received: list[dict] = []
        self._wanted = 0
        self._enough = asyncio.Event()

    async def listen(self, room: str) -> None:
        async def on_doc(message: dict) -> None:
            self.received.append(message)
            if len(self.received) >= self._wanted:
                self._enough.set()

        self.receiver.on_message("chorus.doc", on_doc)
        await self.receiver.pin(room)

    async def publish(self, room: str, n, **fields) -> None:
        message = {"type": "chorus.doc", "n": n, "origin": self.sender.token, **fields}
        await self.sender.publish_to_peers(room, message)

    async def wait_for(self, count: int) -> list[dict]:
        self._wanted = count
        if len(self.received) >= count:
            self._enough.set()
        else:
            self._enough.clear()
        await asyncio.wait_for(self._enough.wait(), 20)
        return self.received


@contextlib.asynccontextmanager
async def peers(room: str):
    pair = Peers()
    await pair.listen(room)
    try:
        yield pair
    finally:
        await pair.sender.stop()
        await pair.receiver.stop()


async def test_peer_messages_arrive_in_order_and_the_sender_is_held_back(redis_url):
    """publish_to_peers never drops for space: above OUTBOX_SIZE the caller waits until the
    outbox drains, and the other instance receives every message in order."""
    async with peers("doc.note.outbox-test") as pair:
        assert not pair.sender.single_process
        pair.sender.OUTBOX_SIZE = 3
        most_waiting = 0
        for n in range(200):
            await pair.publish("doc.note.outbox-test", n)
            most_waiting = max(most_waiting, len(pair.sender._outbox))
        received = await pair.wait_for(200)
        assert [m["n"] for m in received] == list(range(200))
        assert most_waiting <= pair.sender.OUTBOX_SIZE
        assert pair.sender.dropped_publishes == 0


async def test_peer_messages_with_a_coalesce_key_merge_while_they_wait(redis_url):
    """Messages that share a room and a coalesce key while waiting in the outbox go out as
    one (``combine`` of them, in order); other keys and plain messages keep their own."""

    def combine(messages: list[dict]) -> dict:
        return {**messages[-1], "n": [n for m in messages for n in m["n"]]}

    room = "doc.note.coalesce-test"
    async with peers(room) as pair:
        for n in range(100):  # no await suspends: all of it waits in the outbox at once
            key = "even" if n % 2 == 0 else "odd"
            await pair.sender.publish_to_peers(
                room,
                {"type": "chorus.doc", "n": [n], "key": key, "origin": pair.sender.token},
                coalesce=Coalesce(key, combine),
            )
        await pair.publish(room, [-1], last=True)
        received = await pair.wait_for(3)
        assert [(m.get("key"), m["n"]) for m in received] == [
            ("even", list(range(0, 100, 2))),
            ("odd", list(range(1, 100, 2))),
            (None, [-1]),
        ]
        assert pair.sender.dropped_publishes == 0


async def test_a_failing_combine_still_publishes_every_message(redis_url, caplog):
    """Coalescing must never lose a message: if ``combine`` fails, each waiting message is
    published as it was queued (and the failure is logged)."""

    def broken(messages: list[dict]) -> dict:
        raise ValueError("cannot merge")

    room = "doc.note.coalesce-failure"
    async with peers(room) as pair:
        for n in range(5):
            await pair.sender.publish_to_peers(
                room,
                {"type": "chorus.doc", "n": n, "origin": pair.sender.token},
                coalesce=Coalesce("same", broken),
            )
        received = await pair.wait_for(5)
        assert [m["n"] for m in received] == [0, 1, 2, 3, 4]
        assert "coalescing 5 queued messages failed" in caplog.text

"""The process hub: fan-out to local connections and the outbox.

Most tests run the hub alone, on the in-memory channel layer, with fake connections (the
``Connection`` protocol is the hub's collaborator, not a service): no Redis in either pass.
The outbox to other instances runs on both layers: two hubs share the in-memory layer (the
sender told that other processes exist), and two hubs share the real Redis layer (``services``).
"Nothing arrived" is proven by a marker published after it: the marker comes first.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from realtime import recovery
from realtime.hub import Coalesce, Hub
from realtime.protocol.socketio import add_offset
from tests.realtime.fakes import WAIT, FakeConnection


async def connected(hub: Hub, sid: str, *rooms: str, **fields) -> FakeConnection:
    conn = FakeConnection(sid, **fields)
    await hub.register(conn)
    for room in rooms:
        await hub.join(conn, room)
    return conn


async def emit(hub: Hub, room: str, frame: str, **fields) -> None:
    """What ``push`` publishes for a broadcast: a ``chorus.emit`` through the layer."""
    await hub.publish(room, {"type": "chorus.emit", "frame": frame, **fields})


async def test_a_broadcast_reaches_each_local_socket_of_the_room_once(hub):
    a = await connected(hub, "a", "channel.1", "user.u1")
    b = await connected(hub, "b", "channel.1")
    other = await connected(hub, "other", "channel.2")
    await hub.join(a, "channel.1")  # joining twice is one membership
    await emit(hub, "channel.1", "hello")
    await emit(hub, "channel.1", "marker")
    await emit(hub, "channel.2", "marker")
    for conn in (a, b):
        assert [await conn.next(), await conn.next()] == ["hello", "marker"]
        assert conn.empty()
    assert a.shared[0] is b.shared[0]  # the frame is built once for the room
    assert await other.next() == "marker"  # channel.1's frame never came
    assert hub.connections == {"a": a, "b": b, "other": other}


async def test_the_sender_is_skipped_and_offsets_reach_only_sockets_that_take_them(hub):
    sender = await connected(hub, "sender", "channel.1")
    plain = await connected(hub, "plain", "channel.1")
    marked = await connected(hub, "marked", "channel.1", offsets=True)
    frame = '42["events",{"n":1}]'
    await emit(hub, "channel.1", frame, skip="sender", offset="7-1")
    await emit(hub, "channel.1", "marker")
    assert await plain.next() == frame
    assert await marked.next() == add_offset(frame, "7-1")
    assert await sender.next() == "marker"


async def test_leave_and_unregister_stop_delivery(hub):
    a = await connected(hub, "a", "channel.1", "channel.2")
    b = await connected(hub, "b", "channel.1", "channel.2")
    hub.leave(a, "channel.1")
    await hub.unregister(b)
    assert a.rooms == {"channel.2"} and b.rooms == set()
    assert "b" not in hub.connections
    await emit(hub, "channel.1", "gone")
    await emit(hub, "channel.2", "marker")
    assert await a.next() == "marker"
    assert b.empty()
    assert set(hub.rooms) == {"channel.2"}


async def test_join_and_leave_messages_move_the_local_sockets_of_a_room(hub):
    alice = await connected(hub, "alice", "user.u1")
    bob = await connected(hub, "bob", "user.u2", user_id="u2")
    await hub.publish("user.u1", {"type": "chorus.join", "target": "channel.9", "frame": "added"})
    assert await alice.next() == "added"
    await emit(hub, "channel.9", "hello")
    assert await alice.next() == "hello"
    await hub.publish(
        "user.u1", {"type": "chorus.leave", "target": "channel.9", "frame": "removed"}
    )
    assert await alice.next() == "removed"
    assert alice.rooms == {"user.u1"} and alice.rooms_left == ["channel.9"]
    await emit(hub, "channel.9", "unseen")
    await emit(hub, "user.u1", "marker")
    await emit(hub, "user.u2", "marker")
    assert await alice.next() == "marker"
    assert await bob.next() == "marker"  # never joined


async def test_a_kick_reaches_the_sockets_of_the_room_with_that_token(hub):
    old = await connected(hub, "old", "user.u1", jti="revoked")
    new = await connected(hub, "new", "user.u1", jti="fresh")
    message = {"type": "chorus.kick", "code": "token_revoked", "message": "bye", "jti": "revoked"}
    await hub.publish("user.u1", message)
    await emit(hub, "user.u1", "marker")
    assert await old.next() == ("kick", "token_revoked", "bye")
    assert await new.next() == "marker"


async def test_messages_published_soon_go_out_in_order(hub):
    conn = await connected(hub, "a", "channel.1")
    for n in range(50):
        hub.publish_soon("channel.1", {"type": "chorus.emit", "frame": str(n)})
    assert [await conn.next() for _ in range(50)] == [str(n) for n in range(50)]
    assert hub.dropped_publishes == 0


async def test_a_full_outbox_drops_ephemeral_messages_and_counts_them(hub):
    conn = await connected(hub, "a", "channel.1")
    hub.OUTBOX_SIZE = 3
    for n in range(5):  # no await: the outbox cannot drain meanwhile
        hub.publish_soon("channel.1", {"type": "chorus.emit", "frame": str(n)})
    assert hub.dropped_publishes == 2
    assert [await conn.next() for _ in range(3)] == ["0", "1", "2"]
    hub.publish_soon("channel.1", {"type": "chorus.emit", "frame": "marker"})
    assert await conn.next() == "marker"  # the dropped ones never came


async def test_peer_messages_are_not_sent_on_one_process(hub):
    """``publish_to_peers`` is for other processes' hubs: on one process it sends nothing."""
    receiver = Hub()
    seen: asyncio.Queue = asyncio.Queue()

    async def on_doc(message: dict) -> None:
        seen.put_nowait(message["n"])

    receiver.on_message("chorus.doc", on_doc)
    await receiver.pin("doc.note.1")
    try:
        assert hub.single_process
        await hub.publish_to_peers("doc.note.1", {"type": "chorus.doc", "n": 1, "origin": "x"})
        # Through the same ordered outbox: had the peer message been queued, it would be first.
        hub.publish_soon("doc.note.1", {"type": "chorus.doc", "n": "marker", "origin": "x"})
        assert await asyncio.wait_for(seen.get(), WAIT) == "marker"
    finally:
        await receiver.stop()


async def test_may_reach_knows_the_rooms_and_kinds_of_one_process(hub, settings):
    settings.CHORUS = {"RECOVERY_WINDOW": 0}
    assert not hub.may_reach("channel.1") and not hub.may_reach_kind("channel.")
    conn = await connected(hub, "a", "channel.1", "user.u1")
    assert hub.may_reach("channel.1") and not hub.may_reach("channel.2")
    assert hub.may_reach_kind("channel.") and hub.may_reach_kind("user.")
    assert not hub.may_reach_kind("doc.")
    hub.leave(conn, "channel.1")
    assert not hub.may_reach("channel.1") and not hub.may_reach_kind("channel.")
    assert hub.may_reach_kind("user.")


async def test_may_reach_counts_the_rooms_of_resumable_sessions(hub, settings):
    """What is published to a room a closed, resumable socket was in is logged for it."""
    settings.CHORUS = {"RECOVERY_WINDOW": 60}
    store = recovery.memory_store()
    await store.persist(recovery.Session("pid", "sid", "u1", ("channel.7",), recovery.ORIGIN))
    assert hub.may_reach("channel.7") and hub.may_reach_kind("channel.")
    assert not hub.may_reach("channel.8")
    settings.CHORUS = {"RECOVERY_WINDOW": 0}  # recovery off: nothing is logged for anyone
    assert not hub.may_reach("channel.7") and not hub.may_reach_kind("channel.")


async def test_across_processes_every_room_may_be_reached(hub):
    hub.single_process = False  # as on Redis: other instances' rooms are not known here
    assert hub.may_reach("channel.1") and hub.may_reach_kind("channel.")


# --- the outbox to other instances: two hubs on one layer -------------------------------------


class Peers:
    """Two instances' hubs on one layer; the receiver records the ``chorus.doc`` messages of
    one room."""

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


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def peers(request):
    """``peers(room)``: a sender and a receiver hub on the in-memory layer (the sender acting
    as one of several processes) or on the real Redis layer."""
    if request.param == "memory":
        request.getfixturevalue("one_process")
    else:
        request.getfixturevalue("redis_url")

    @contextlib.asynccontextmanager
    async def pair_for(room: str):
        pair = Peers()
        pair.sender.single_process = False
        await pair.listen(room)
        try:
            yield pair
        finally:
            await pair.sender.stop()
            await pair.receiver.stop()

    return pair_for


async def test_peer_messages_arrive_in_order_and_the_sender_is_held_back(peers):
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


async def test_peer_messages_with_a_coalesce_key_merge_while_they_wait(peers):
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


async def test_a_failing_combine_still_publishes_every_message(peers, caplog):
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

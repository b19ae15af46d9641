"""One contract, both recovery store backends (in-process and Redis): the log of broadcasts
a resumed socket may have missed, and the resumable sessions."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from channels.db import database_sync_to_async

from realtime.recovery import (
    ORIGIN,
    MemoryRecoveryStore,
    RedisRecoveryStore,
    Session,
    parse_offset,
)
from realtime.sessions import RedisSessionRegistry


class FakeClock:
    """A monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def store(request, settings):
    settings.CHORUS = {"RECOVERY_WINDOW": 1.0, "RECOVERY_LOG_SIZE": 50, "MAX_SOCKETS_PER_USER": 3}
    if request.param == "memory":
        yield MemoryRecoveryStore(clock=request.getfixturevalue("clock"))
        return
    registry = RedisSessionRegistry(request.getfixturevalue("redis_url"))
    prefix = f"chorus:test:{uuid.uuid4().hex}:"
    yield RedisRecoveryStore(registry.client, prefix=prefix)
    keys = [key async for key in registry.client.scan_iter(match=f"{prefix}*")]
    if keys:
        await registry.client.delete(*keys)
    await registry.close()


def session(user: str = "u1", rooms: tuple[str, ...] = ("user.u1",), start=ORIGIN) -> Session:
    return Session(uuid.uuid4().hex, uuid.uuid4().hex, user, rooms, start)


async def test_entries_come_back_after_an_offset_in_order(store):
    assert await store.position() == ORIGIN
    assert await store.read_after(ORIGIN) == []
    first = await store.append("channel.a", "emit", '42["x",1]', skip="s1")
    second = await store.append("user.u1", "join", '42["y",2]', target="channel.b")
    third = await store.append("channel.b", "emit", '42["z",3]')
    assert parse_offset(first) < parse_offset(second) < parse_offset(third)
    assert await store.position() == third
    entries = await store.read_after(first)
    assert [(e.offset, e.room, e.kind, e.frame, e.skip, e.target) for e in entries] == [
        (second, "user.u1", "join", '42["y",2]', None, "channel.b"),
        (third, "channel.b", "emit", '42["z",3]', None, None),
    ]
    assert [e.skip for e in await store.read_after(ORIGIN)] == ["s1", None, None]
    assert await store.read_after(third) == []


async def test_a_dropped_entry_makes_the_gap_visible(store):
    """Past RECOVERY_LOG_SIZE the oldest entries go; a reader from before them gets None
    (it cannot be told everything), a reader from a kept offset still gets the rest."""
    offsets = [await store.append("channel.a", "emit", f'42["x",{i}]') for i in range(400)]
    assert await store.read_after(ORIGIN) is None
    assert await store.read_after(offsets[0]) is None
    rest = await store.read_after(offsets[-10])
    assert [e.offset for e in rest] == offsets[-9:]


async def test_offsets_that_are_not_this_logs_are_refused(store):
    await store.append("channel.a", "emit", '42["x",1]')
    assert await store.read_after("garbage") is None
    assert await store.read_after("1-2-3") is None


async def test_a_session_is_taken_once_and_only_by_its_user(store):
    kept = session("u1", ("user.u1", "channel.a"), start="5-1")
    await store.persist(kept)
    assert await store.take(kept.pid, "u2") is None  # another user: refused, left in place
    assert await store.take("unknown", "u1") is None
    assert await store.take(kept.pid, "u1") == kept
    assert await store.take(kept.pid, "u1") is None  # once


async def test_a_session_expires_after_the_window(store, clock):
    kept = session()
    await store.persist(kept)
    if isinstance(store, MemoryRecoveryStore):
        clock.now += 1.3
    else:
        await asyncio.sleep(1.3)  # Redis's own key expiry (PX), in real time
    assert await store.take(kept.pid, "u1") is None


async def test_a_user_keeps_at_most_max_sockets_per_user_sessions(store):
    sessions = [session("u1") for _ in range(5)]
    for one in sessions:
        await store.persist(one)
    await store.persist(session("u2"))
    taken = [await store.take(one.pid, "u1") for one in sessions]
    assert taken[:2] == [None, None]  # the oldest went
    assert taken[2:] == sessions[2:]


@pytest.mark.services
async def test_sessions_persisted_in_the_same_millisecond_still_go_oldest_first(
    settings, redis_url
):
    """The Redis store orders a user's sessions by deadline; equal deadlines must not fall
    back to ordering by pid (a random hex string)."""
    settings.CHORUS = {"RECOVERY_WINDOW": 1.0, "MAX_SOCKETS_PER_USER": 3}
    registry = RedisSessionRegistry(redis_url)
    prefix = f"chorus:test:{uuid.uuid4().hex}:"
    now = time.time()
    frozen = RedisRecoveryStore(registry.client, prefix=prefix, clock=lambda: now)
    try:
        for _ in range(5):  # several rounds: random pids tie-break wrongly most of the time
            sessions = [session("u1") for _ in range(6)]
            for one in sessions:
                await frozen.persist(one)
            taken = [await frozen.take(one.pid, "u1") for one in sessions]
            assert taken == [None, None, None, *sessions[3:]]
    finally:
        keys = [key async for key in registry.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await registry.client.delete(*keys)
        await registry.close()


# --- through the socket -------------------------------------------------------------------------
# A client that lost its socket reconnects with the pid of its CONNECT reply and the last offset
# it got, as socket.io-client >= 4.6 does (``{"token", "pid", "offset"}`` in the CONNECT auth).


@pytest.fixture
def channel(db, alice, bob):
    from channels_app.models import Channel, ChannelMember

    channel = Channel.objects.create(name="team", type="group", owner=alice)
    for user in (alice, bob):
        ChannelMember.objects.create(channel=channel, user=user)
    return channel


def token_for(user) -> str:
    from accounts.tokens import issue_access_token

    return issue_access_token(user)


async def connected(sio, user, **auth) -> tuple[object, dict]:
    """A socket of ``user`` after CONNECT (``auth`` added to the token); and the reply."""
    socket = sio()
    reply = await socket.connect({"token": token_for(user), **auth})
    assert reply.startswith("0{"), reply
    return socket, json.loads(reply[1:])


async def events(socket, count: int) -> list[tuple[str, object, str | None]]:
    """The next ``count`` events as (name, data, offset or None)."""
    found = []
    while len(found) < count:
        frame = await socket.recv()
        if frame.startswith("42["):
            name, *args = json.loads(frame[2:])
            found.append((name, args[0], args[1] if len(args) > 1 else None))
    return found


async def lose(socket) -> None:
    """The client's network is gone: no DISCONNECT, no close frame (code 1006)."""
    await socket.comm.disconnect(code=1006)


async def emit(channel, n: int, first: int = 0) -> None:
    from realtime import push

    for i in range(first, first + n):
        await push.aemit_to_channel(channel.pk, "events:channel", {"n": i})


async def quiet(socket, user) -> bool:
    """True if no ``events:channel`` reaches ``socket`` before a marker sent to ``user`` now
    (replays are written before it; a live event published earlier is delivered before it)."""
    from realtime import push

    await push.aemit_to_user(user.pk, "marker", None)
    return await socket.no_event_before("marker", "events:channel")


pytestmark_socket = pytest.mark.django_db(transaction=True)


@pytestmark_socket
async def test_the_connect_reply_carries_a_pid_and_room_events_an_offset(sio, alice, channel):
    socket, reply = await connected(sio, alice)
    assert set(reply) == {"sid", "pid"} and len(reply["pid"]) >= 16
    await socket.call("user-join")
    await emit(channel, 2)
    (_, first, off1), (_, second, off2) = await events(socket, 2)
    assert (first, second) == ({"n": 0}, {"n": 1})
    assert parse_offset(off1) < parse_offset(off2)


@pytestmark_socket
async def test_without_a_window_there_is_no_pid_and_no_offset(sio, settings, alice, channel):
    settings.CHORUS = {"RECOVERY_WINDOW": 0}
    socket, reply = await connected(sio, alice)
    assert set(reply) == {"sid"}
    await socket.call("user-join")
    await emit(channel, 1)
    assert await events(socket, 1) == [("events:channel", {"n": 0}, None)]


@pytestmark_socket
async def test_a_lost_socket_resumes_with_its_rooms_and_every_missed_event_once(
    sio, alice, channel
):
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await emit(channel, 1)
    [(_, _, offset)] = await events(socket, 1)
    await lose(socket)
    await emit(channel, 5, first=1)
    again, resumed = await connected(sio, alice, pid=reply["pid"], offset=offset)
    assert resumed == reply  # same sid, same pid: socket.recovered is true in the client
    assert [data for _, data, _ in await events(again, 5)] == [{"n": i} for i in range(1, 6)]
    assert await quiet(again, alice)
    await emit(channel, 1, first=6)  # the channel room is back
    assert [data for _, data, _ in await events(again, 1)] == [{"n": 6}]


@pytestmark_socket
async def test_a_client_that_got_no_offset_yet_gets_everything_since_its_connect(
    sio, alice, channel
):
    await emit(channel, 1)  # before the socket: not for it
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await lose(socket)
    await emit(channel, 3, first=1)
    again, resumed = await connected(sio, alice, pid=reply["pid"])
    assert resumed == reply
    assert [data for _, data, _ in await events(again, 3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert await quiet(again, alice)


@pytestmark_socket
async def test_another_users_pid_gets_a_normal_connect_and_leaves_the_session(
    sio, alice, bob, channel
):
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await lose(socket)
    await emit(channel, 2)
    intruder, theirs = await connected(sio, bob, pid=reply["pid"], offset="0-0")
    assert theirs["sid"] != reply["sid"] and theirs["pid"] != reply["pid"]
    assert await quiet(intruder, bob)  # nothing of alice's replayed
    again, resumed = await connected(sio, alice, pid=reply["pid"])
    assert resumed == reply
    assert len(await events(again, 2)) == 2


@pytestmark_socket
async def test_a_client_that_chose_to_leave_is_not_resumable(sio, alice, channel):
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await socket.send("41")  # socket.disconnect() in the client
    assert await socket.closed_with() == 1000
    await emit(channel, 1)
    again, fresh = await connected(sio, alice, pid=reply["pid"])
    assert fresh["sid"] != reply["sid"] and fresh["pid"] != reply["pid"]
    assert await quiet(again, alice)


@pytestmark_socket
async def test_a_channel_lost_during_the_window_is_not_given_back(sio, alice, channel):
    from channels_app.models import ChannelMember

    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await lose(socket)
    await database_sync_to_async(ChannelMember.objects.filter(channel=channel, user=alice).update)(
        is_active=False
    )
    await emit(channel, 2)
    again, resumed = await connected(sio, alice, pid=reply["pid"])
    assert resumed == reply  # resumed, but without the channel: none of its events
    assert await quiet(again, alice)
    await emit(channel, 1, first=2)
    assert await quiet(again, alice)


@pytestmark_socket
async def test_when_the_log_no_longer_holds_the_offset_the_connect_is_normal(
    sio, settings, alice, channel
):
    settings.CHORUS = {"RECOVERY_LOG_SIZE": 3}
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await emit(channel, 1)
    [(_, _, offset)] = await events(socket, 1)
    await lose(socket)
    await emit(channel, 250, first=1)  # more than the log keeps (Redis trims by ~100)
    again, fresh = await connected(sio, alice, pid=reply["pid"], offset=offset)
    assert fresh["pid"] != reply["pid"]  # socket.recovered is false: the client knows
    assert await quiet(again, alice)


@pytestmark_socket
async def test_past_the_window_the_connect_is_normal(sio, settings, alice, channel):
    settings.CHORUS = {"RECOVERY_WINDOW": 0.3}
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await lose(socket)
    await emit(channel, 1)
    await asyncio.sleep(0.5)  # past the window, in real time (on Redis the key expiry is)
    again, fresh = await connected(sio, alice, pid=reply["pid"])
    assert fresh["sid"] != reply["sid"] and fresh["pid"] != reply["pid"]
    assert await quiet(again, alice)


@pytestmark_socket
async def test_more_missed_than_the_send_mark_allows_gets_a_normal_connect(
    sio, settings, alice, channel
):
    """What a resume would send at once is bounded like any output (``SEND_BUFFER_MAX_BYTES``):
    past it the client is not told everything, so it connects anew and knows it."""
    settings.CHORUS = {"SEND_BUFFER_MAX_BYTES": 4_000}
    socket, reply = await connected(sio, alice)
    await socket.call("user-join")
    await emit(channel, 1)
    [(_, _, offset)] = await events(socket, 1)
    await lose(socket)
    from realtime import push

    for i in range(1, 41):  # ~40 x 150 bytes missed: over the mark
        await push.aemit_to_channel(channel.pk, "events:channel", {"n": i, "pad": "x" * 120})
    again, fresh = await connected(sio, alice, pid=reply["pid"], offset=offset)
    assert fresh["pid"] != reply["pid"]  # socket.recovered is false
    assert await quiet(again, alice)

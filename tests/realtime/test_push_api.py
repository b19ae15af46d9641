"""The in-process server API (``realtime.push``) against real consumers: one socket by sid,
every socket, app rooms joined server-side, who is in a room, and server-to-client calls that
await the client's answer. Across instances: tests/live/test_push_multi.py."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from accounts.tokens import issue_access_token
from realtime import push
from tests.live.harness import listing
from tests.realtime.conftest import SioSocket

pytestmark = [pytest.mark.django_db(transaction=True)]

#: An EVENT with an ack id, as the server sends a call: ``42<id>["name",data]``.
CALL = re.compile(r"42(\d+)(\[.*)", re.DOTALL)


async def connected(sio, user) -> tuple[SioSocket, str]:
    socket = sio()
    sid = await socket.connected(issue_access_token(user))
    return socket, sid


async def next_call(socket: SioSocket, timeout: float = 2) -> tuple[int, list]:
    """The next call the server sends this socket: (ack id, [name, data…])."""
    while True:
        frame = await socket.recv(timeout)
        match = CALL.fullmatch(frame) if isinstance(frame, str) else None
        if match:
            return int(match[1]), json.loads(match[2])


def sids_of(records) -> set[str]:
    return {record.sid for record in records}


# --- one socket, every socket -----------------------------------------------------------------


async def test_emit_to_sid_reaches_that_socket_only(sio, alice):
    (first, sid), (second, _) = await connected(sio, alice), await connected(sio, alice)
    assert await push.aemit_to_sid(sid, "events", {"n": 1}) is True
    assert await first.next_event() == ("events", {"n": 1})
    await push.aemit_to_user(alice.id, "marker", None)  # behind the emit, on the same hub
    assert await second.no_event_before("marker", "events")
    assert await push.aemit_to_sid("no-such-sid", "events", {"n": 2}) is False


async def test_broadcast_reaches_every_socket(sio, alice, bob):
    (to_alice, _), (to_bob, _) = await connected(sio, alice), await connected(sio, bob)
    await push.abroadcast("announcement", {"text": "maintenance at noon"})
    for socket in (to_alice, to_bob):
        assert await socket.next_event() == ("announcement", {"text": "maintenance at noon"})


async def test_disconnect_sid_closes_that_socket_only(sio, alice):
    (victim, sid), (bystander, _) = await connected(sio, alice), await connected(sio, alice)
    assert await push.adisconnect_sid(sid, "removed", "You were removed.") is True
    assert await victim.next_event() == (
        "error",
        {"code": "removed", "message": "You were removed."},
    )
    assert await victim.closed_with() == 1000
    assert await bystander.call("heartbeat") == {}


# --- app rooms and who is in them -------------------------------------------------------------


async def test_a_socket_put_in_an_app_room_gets_its_events_until_taken_out(sio, alice, bob):
    room = push.app_room("game-7")
    (player, sid), (other, _) = await connected(sio, alice), await connected(sio, bob)
    assert await push.aadd_sid_to_room(sid, room) is True
    await push.aemit(room, "move", {"to": "e4"})
    assert await player.next_event() == ("move", {"to": "e4"})
    online = await listing(room, 1)
    assert [(r.sid, r.user_id, r.user["name"]) for r in online] == [(sid, str(alice.id), "Alice")]
    assert "email" not in online[0].user  # the public profile only

    assert await push.aremove_sid_from_room(sid, room) is True
    assert await listing(room, 0) == []
    await push.aemit(room, "move", {"to": "e5"})
    await push.aemit_to_user(alice.id, "marker", None)
    assert await player.no_event_before("marker", "move")
    await push.aemit_to_user(bob.id, "marker", None)
    assert await other.no_event_before("marker", "move")


async def test_a_user_put_in_an_app_room_brings_every_socket(sio, alice):
    room = push.app_room("support")
    (first, one), (second, two) = await connected(sio, alice), await connected(sio, alice)
    await push.aadd_user_to_room(alice.id, room, notice=("joined", {"room": "support"}))
    for socket in (first, second):
        assert await socket.next_event() == ("joined", {"room": "support"})
    online = await listing(room, 2)
    assert sids_of(online) == {one, two}
    await push.aemit(room, "ticket", {"id": 1})
    for socket in (first, second):
        assert await socket.next_event() == ("ticket", {"id": 1})


async def test_online_lists_a_users_sessions_and_every_socket(sio, alice, bob):
    (_, one), (_, two), (_, three) = [await connected(sio, u) for u in (alice, alice, bob)]
    assert sids_of(await push.aonline(push.user_room(alice.id))) == {one, two}
    everyone = await listing(push.EVERYONE_ROOM, 3)
    assert sids_of(everyone) == {one, two, three}


async def test_a_closed_socket_leaves_the_listing(sio, alice):
    room = push.app_room("lobby")
    socket, sid = await connected(sio, alice)
    await push.aadd_sid_to_room(sid, room)
    assert sids_of(await listing(room, 1)) == {sid}
    await socket.close()
    assert await listing(room, 0) == []


def test_room_names_are_checked():
    assert push.app_room("team_1.chat-2") == "app.team_1.chat-2"
    for bad in ("", "a b", "x" * 81, "caf\u00e9", "a:b", "a/b"):
        with pytest.raises(ValueError):
            push.app_room(bad)
    assert push.addressable("app.x") and push.addressable("user.42")
    assert push.addressable(push.EVERYONE_ROOM)
    assert not push.addressable("doc.note.1") and not push.addressable("app.")
    assert not push.addressable("nonsense.1") and not push.addressable("app.a b")


async def test_online_refuses_a_room_whose_members_are_not_listed():
    with pytest.raises(ValueError):
        await push.aonline("nonsense.1")


async def test_only_addressable_rooms_are_joined_by_sid(sio, alice):
    _, sid = await connected(sio, alice)
    with pytest.raises(ValueError):
        await push.aadd_sid_to_room(sid, "doc.note.1")


# --- calls ------------------------------------------------------------------------------------


async def test_a_call_returns_the_clients_answer(sio, alice):
    socket, sid = await connected(sio, alice)
    call = asyncio.create_task(push.acall(sid, "confirm", {"q": "Run the tool?"}, timeout=5))
    ack_id, args = await next_call(socket)
    assert args == ["confirm", {"q": "Run the tool?"}]
    await socket.send(f"43{ack_id}" + json.dumps([{"ok": True}]))
    assert await call == {"ok": True}


async def test_answers_with_none_or_several_values(sio, alice):
    socket, sid = await connected(sio, alice)
    for answer, expected in (([], None), ([1, "two"], [1, "two"])):
        call = asyncio.create_task(push.acall(sid, "ask", timeout=5))
        ack_id, args = await next_call(socket)
        assert args == ["ask"]
        await socket.send(f"43{ack_id}" + json.dumps(answer))
        assert await call == expected


async def test_concurrent_calls_each_get_their_own_answer(sio, alice):
    socket, sid = await connected(sio, alice)
    calls = [asyncio.create_task(push.acall(sid, "square", n, timeout=5)) for n in range(5)]
    asked = [await next_call(socket) for _ in range(5)]
    for ack_id, (_, n) in reversed(asked):  # answered out of order
        await socket.send(f"43{ack_id}" + json.dumps([n * n]))
    assert [await call for call in calls] == [0, 1, 4, 9, 16]


async def test_a_call_nobody_answers_times_out_and_a_late_answer_is_ignored(sio, alice):
    socket, sid = await connected(sio, alice)
    call = asyncio.create_task(push.acall(sid, "confirm", {}, timeout=0.3))
    ack_id, _ = await next_call(socket)
    with pytest.raises(push.CallTimeout) as raised:
        await call
    assert raised.value.code == "call_timeout"
    await socket.send(f"43{ack_id}" + json.dumps(["too late"]))
    assert await socket.call("heartbeat") == {}  # still connected, nothing broke


async def test_a_call_to_an_unknown_sid_fails_at_once():
    with pytest.raises(push.SessionNotFound) as raised:
        await push.acall("no-such-sid", "confirm", {}, timeout=30)
    assert raised.value.code == "session_not_found"


async def test_a_call_ends_when_the_socket_closes(sio, alice):
    socket, sid = await connected(sio, alice)
    call = asyncio.create_task(push.acall(sid, "confirm", {}, timeout=30))
    await next_call(socket)
    await socket.close()
    with pytest.raises(push.SessionClosed):
        await call


async def test_calls_waiting_on_one_socket_are_bounded(sio, alice, settings):
    settings.CHORUS = {"CALL_MAX_PENDING": 2}
    socket, sid = await connected(sio, alice)
    waiting = [asyncio.create_task(push.acall(sid, "ask", n, timeout=5)) for n in range(2)]
    asked = [await next_call(socket) for _ in range(2)]
    with pytest.raises(push.TooManyCalls):
        await push.acall(sid, "ask", 3, timeout=5)
    for ack_id, _ in asked:
        await socket.send(f"43{ack_id}[null]")
    assert [await call for call in waiting] == [None, None]
    # Answered calls free their places.
    again = asyncio.create_task(push.acall(sid, "ask", 4, timeout=5))
    ack_id, _ = await next_call(socket)
    await socket.send(f"43{ack_id}[4]")
    assert await again == 4


async def test_a_client_ack_for_nothing_asked_changes_nothing(sio, alice):
    socket, _ = await connected(sio, alice)
    await socket.send('43999["unasked"]')
    assert await socket.call("heartbeat") == {}


# --- sync wrappers: after the commit ----------------------------------------------------------


async def test_sync_wrappers_act_after_commit_and_not_on_rollback(sio, alice):
    socket, sid = await connected(sio, alice)
    room = push.app_room("after-commit")

    def from_a_view():
        with transaction.atomic():
            push.add_sid_to_room(sid, room)
            push.emit_to_sid(sid, "events", {"n": 1})
            push.broadcast("announcement", {"n": 2})
            assert socket.comm.output_queue.empty()  # nothing before the commit

    await database_sync_to_async(from_a_view)()
    assert await socket.next_event() == ("events", {"n": 1})
    assert await socket.next_event() == ("announcement", {"n": 2})
    assert sids_of(await listing(room, 1)) == {sid}

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            push.remove_sid_from_room(sid, room)
            push.emit_to_sid(sid, "events", {"n": 3})
            push.disconnect_sid(sid)
            raise RuntimeError

    await database_sync_to_async(rolled_back)()
    await push.aemit(room, "marker", None)  # still in the room: the leave never happened
    assert await socket.no_event_before("marker", "events")
    assert await socket.call("heartbeat") == {}  # and not disconnected
    with pytest.raises(ValueError):
        await database_sync_to_async(push.add_sid_to_room)(sid, "doc.note.1")


async def test_a_listing_is_bounded(sio, alice, bob, monkeypatch):
    for user in (alice, alice, bob):
        await connected(sio, user)
    await listing(push.EVERYONE_ROOM, 3)  # all three joins are written
    monkeypatch.setattr(push, "MAX_LISTED_SESSIONS", 2)
    assert len(await push.aonline(push.EVERYONE_ROOM)) == 2

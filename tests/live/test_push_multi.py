"""The in-process server API across instances: two daphnes on Redis, and this test process as a
third instance on the same Redis (a backend worker using ``realtime.push``) — one socket by sid,
app rooms with members on both instances, who is in them, and calls answered by a stock
python-socketio client on another instance than the caller."""

from __future__ import annotations

import asyncio

import pytest

from realtime import push
from tests.live.harness import access, listing

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def sid_of(client) -> str:
    return client.sio.get_sid("/")


async def test_one_socket_by_sid_on_either_instance(instances, clients, alice):
    a, b = instances()
    on_a = await clients(a, "alice@A").connect(await access(alice))
    on_b = await clients(b, "alice@B").connect(await access(alice))
    assert await push.aemit_to_sid(sid_of(on_b), "events", {"to": "B"}) is True
    assert await on_b.wait_for("events") == {"to": "B"}
    # A marker to the user reaches both after the emit did; A never got it.
    await push.aemit_to_user(alice.id, "marker", {"n": 1})
    await on_a.wait_for("marker")
    assert not on_a.received("events")

    assert await push.adisconnect_sid(sid_of(on_a), "removed", "Bye.") is True
    assert (await on_a.wait_for("error"))["code"] == "removed"
    await on_a.wait_disconnected()
    assert on_b.connected


async def test_an_app_room_spans_instances_and_lists_its_members(instances, clients, alice, bob):
    a, b = instances()
    room = push.app_room("match-1")
    first = await clients(a, "alice@A").connect(await access(alice))
    second = await clients(b, "bob@B").connect(await access(bob))
    for client in (first, second):
        assert await push.aadd_sid_to_room(sid_of(client), room) is True
    online = await listing(room, 2)
    assert {(r.sid, r.user_id) for r in online} == {
        (sid_of(first), str(alice.id)),
        (sid_of(second), str(bob.id)),
    }
    assert len({r.instance for r in online}) == 2  # one on each
    await push.aemit(room, "move", {"to": "e4"})
    for client in (first, second):
        assert await client.wait_for("move") == {"to": "e4"}

    await push.aremove_sid_from_room(sid_of(second), room)
    online = await listing(room, 1)
    assert [r.sid for r in online] == [sid_of(first)]


async def test_a_call_is_answered_by_a_socket_on_another_instance(instances, clients, alice):
    _, b = instances()
    client = await clients(b, "alice@B").connect(await access(alice))

    @client.sio.on("confirm")
    async def confirm(data):
        return {"approved": data["tool"] == "search"}

    answer = await push.acall(sid_of(client), "confirm", {"tool": "search"}, timeout=5)
    assert answer == {"approved": True}
    with pytest.raises(push.SessionNotFound):
        await push.acall("unknown-sid", "confirm", {}, timeout=5)


async def test_a_call_nobody_answers_times_out_across_instances(instances, clients, alice):
    _, b = instances()
    client = await clients(b, "alice@B").connect(await access(alice))

    @client.sio.on("confirm")
    async def never_answers(data):
        await asyncio.sleep(60)

    with pytest.raises(push.CallTimeout):
        await push.acall(sid_of(client), "confirm", {}, timeout=0.5)
    assert await client.call("heartbeat") == {}  # the socket lives on


async def test_a_call_ends_when_the_socket_on_another_instance_closes(instances, clients, alice):
    _, b = instances()
    client = await clients(b, "alice@B").connect(await access(alice))
    asked = asyncio.Event()

    @client.sio.on("confirm")
    async def leaves(data):
        asked.set()
        await asyncio.sleep(60)

    call = asyncio.create_task(push.acall(sid_of(client), "confirm", {}, timeout=30))
    await asyncio.wait_for(asked.wait(), 5)
    await client.sio.disconnect()
    with pytest.raises(push.SessionClosed):
        await asyncio.wait_for(call, 10)

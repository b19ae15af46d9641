"""Chat-channel live events across two daphne instances sharing Redis and the database.

Each test starts instances A and B with the same ``REDIS_URL`` (channel layer, cache, session
registry) and ``DATABASE_URL`` (the test database), after ``clean_redis`` deleted every
``chorus:*`` key of that Redis database. Changes go through the REST API of one instance;
assertions are about what real Socket.IO clients on either instance receive (docs/channels.md
"Live events" and "Moving live sockets", docs/protocol.md §5-7).
"""

from __future__ import annotations

import pytest

from tests.live.harness import Beacon, Marker, eventually, presence_event, typing_event
from tests.live.test_channels_live import (
    EVENT,
    People,
    api_events,
    assert_once_each,
    assert_sockets_private,
    create_channel,
    each_gets,
    expect_event,
    kinds,
    marks,
    of_type,
    online,
    post,
    quiet_before,
    rest,
    typing,
)

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(make_user) -> People:
    return People(make_user)


async def sessions_of(server, channel_id: str, viewer, user) -> int:
    """How many open sessions ``user`` has, from the channel's REST presence (0: offline)."""
    body = await rest(server, viewer, "GET", f"/api/channels/{channel_id}/presence/")
    return next((e["sessions"] for e in body["online"] if e["id"] == user.id), 0)


# --- 8. messages, reactions and typing cross instances -----------------------------------------


async def test_events_from_either_instance_reach_members_on_both(instances, clients, people):
    a, b = instances()
    alice, bob, carol = await people("Alice"), await people("Bob"), await people("Carol")
    cid = (await create_channel(a, alice, bob))["id"]
    alice_a = await online(clients, a, alice, "Alice@A")
    bob_b = await online(clients, b, bob, "Bob@B")
    bob_a = await online(clients, a, bob, "Bob@A")
    carol_b = await online(clients, b, carol, "Carol@B")  # a non-member beside a member on B
    members = (alice_a, bob_b, bob_a)
    beacon = await (await Beacon.create(carol.user)).watch(carol_b)
    path = f"/api/channels/{cid}/messages"

    # a message posted through A's REST, then one through B's
    via_a = await post(a, alice, cid, "posted on A")
    for event in await each_gets(members, "message", cid, via_a["id"]):
        expect_event(event, "message", cid, alice, via_a, via_a["id"])
    via_b = await post(b, bob, cid, "posted on B")
    for event in await each_gets(members, "message", cid, via_b["id"]):
        expect_event(event, "message", cid, bob, via_b, via_b["id"])

    # reactions: one added through A, one through B, one removed through B
    fire = await rest(a, bob, "POST", f"{path}/{via_a['id']}/reactions/", {"name": "fire"}, 201)
    for event in await each_gets(members, "message:reaction:add", cid, via_a["id"]):
        expect_event(event, "message:reaction:add", cid, bob, {**fire, "name": "fire"}, via_a["id"])
    wave = await rest(b, alice, "POST", f"{path}/{via_b['id']}/reactions/", {"name": "wave"}, 201)
    for event in await each_gets(members, "message:reaction:add", cid, via_b["id"]):
        expect_event(
            event, "message:reaction:add", cid, alice, {**wave, "name": "wave"}, via_b["id"]
        )
    unfire = await rest(b, bob, "DELETE", f"{path}/{via_a['id']}/reactions/", {"name": "fire"})
    assert unfire["reactions"] == []
    for event in await each_gets(members, "message:reaction:remove", cid, via_a["id"]):
        expect_event(
            event, "message:reaction:remove", cid, bob, {**unfire, "name": "fire"}, via_a["id"]
        )

    # typing from a socket on A reaches B (and bob's socket on A), and the other way round
    assert await alice_a.call(EVENT, typing(cid)) == {}
    for client in (bob_b, bob_a):
        relayed = await client.wait_for(EVENT, typing_event(cid, alice.id))
        assert relayed["data"] == {"type": "typing", "data": {"typing": True}}
        assert relayed["user"] == alice.ref
    assert await bob_b.call(EVENT, typing(cid)) == {}
    for client in (alice_a, bob_a):
        await client.wait_for(EVENT, typing_event(cid, bob.id))

    # One flash through each instance, after everything it published (its typing included:
    # the other instance's sockets received it). B's hub reads one channel in order, so
    # whatever A or B sent to carol_b's socket reaches it before that instance's marker.
    await carol_b.assert_no_event_before(EVENT, await beacon.flash(a), await beacon.flash(b))
    expected = [
        ("message", via_a["id"]),
        ("message", via_b["id"]),
        ("message:reaction:add", via_a["id"]),
        ("message:reaction:add", via_b["id"]),
        ("message:reaction:remove", via_a["id"]),
    ]
    for client in members:
        assert kinds(api_events(client, cid)) == expected, client.name
    assert not alice_a.received(EVENT, typing_event(cid, alice.id))
    assert not bob_b.received(EVENT, typing_event(cid, bob.id))
    assert len(bob_a.received(EVENT, typing_event(cid, alice.id))) == 1
    assert_sockets_private((*members, carol_b), people)


# --- 9. membership moves sockets on the other instance ------------------------------------------


async def test_member_added_on_a_receives_on_b_and_removal_on_b_stops_a(instances, clients, people):
    a, b = instances()
    alice, bob, dave = await people("Alice"), await people("Bob"), await people("Dave")
    cid = (await create_channel(a, alice, bob))["id"]
    members_path = f"/api/channels/{cid}/members"
    alice_a = await online(clients, a, alice, "Alice@A")
    bob_a = await online(clients, a, bob, "Bob@A")
    # dave is connected to B only, where no socket is in the channel's room yet
    dave_b1 = await online(clients, b, dave, "Dave@B#1")
    dave_b2 = await online(clients, b, dave, "Dave@B#2")

    member = await rest(a, alice, "POST", f"{members_path}/", {"user_id": dave.id}, 201)
    for event in await each_gets((alice_a, bob_a, dave_b1, dave_b2), "member:add", cid):
        expect_event(event, "member:add", cid, alice, member)
    # the member:add notice means the join on B is complete: live messages reach B now
    hello = await post(a, alice, cid, "hello Dave (via A)")
    await each_gets((dave_b1, dave_b2), "message", cid, hello["id"])
    also = await post(b, bob, cid, "and via B")
    await each_gets((dave_b1, dave_b2, alice_a, bob_a), "message", cid, also["id"])
    for client in (dave_b1, dave_b2):
        assert kinds(api_events(client)) == [
            ("member:add", None),
            ("message", hello["id"]),
            ("message", also["id"]),
        ]

    # dave also on A; then removed through B's REST: his sockets on A (and B) stop at once
    dave_a = await online(clients, a, dave, "Dave@A")
    beacon = await (await Beacon.create(dave.user)).watch(dave_a, dave_b1, dave_b2)
    await rest(b, alice, "DELETE", f"{members_path}/{dave.id}/", expect=204)
    everyone = (alice_a, bob_a, dave_a, dave_b1, dave_b2)
    for event in await each_gets(everyone, "member:remove", cid):
        expect_event(event, "member:remove", cid, alice, {**member, "left": False})
    watched = marks(dave_a, dave_b1, dave_b2)
    after_a = await post(a, alice, cid, "after removal (via A)")
    after_b = await post(b, bob, cid, "after removal (via B)")
    for message in (after_a, after_b):
        await each_gets((alice_a, bob_a), "message", cid, message["id"])
    assert (await dave_a.call(EVENT, typing(cid)))["error"]["code"] == "forbidden"
    # a flash through each instance after the message it published: a socket of dave's still
    # in the room would get that message before the marker of the same instance
    markers = (await beacon.flash(a), await beacon.flash(b))
    await quiet_before(watched, *markers, channel_id=cid)

    for client in everyone:
        assert_once_each(client, cid)
    assert kinds(api_events(dave_a)) == [("member:remove", None)]
    assert_sockets_private(everyone, people)


async def test_message_racing_a_cross_instance_add_is_live_or_in_the_catch_up(
    instances, clients, people
):
    """A message posted right after the add (before dave's instance has joined the room) may
    miss B's subscription; the documented recipe (member:add, then fetch) still finds it."""
    a, b = instances()
    alice, dave = await people("Alice"), await people("Dave")
    cid = (await create_channel(a, alice))["id"]
    dave_b = await online(clients, b, dave, "Dave@B")

    await rest(a, alice, "POST", f"/api/channels/{cid}/members/", {"user_id": dave.id}, 201)
    racing = await post(a, alice, cid, "posted right after the add")
    await dave_b.wait_for(EVENT, of_type("member:add", cid))
    fetched = await rest(b, dave, "GET", f"/api/channels/{cid}/messages/")
    live = {e["message_id"] for e in dave_b.received(EVENT, of_type("message", cid))}
    assert racing["id"] in live | {m["id"] for m in fetched["messages"]}
    following = await post(a, alice, cid, "after the notice")
    await dave_b.wait_for(EVENT, of_type("message", cid, following["id"]))
    assert len(dave_b.received(EVENT, of_type("member:add", cid))) == 1


# --- 10. presence across instances ---------------------------------------------------------------


async def test_presence_online_and_offline_cross_instances_once(instances, clients, people):
    a, b = instances()
    alice, bob, dave = await people("Alice"), await people("Bob"), await people("Dave")
    cid = (await create_channel(b, bob, alice, dave))["id"]  # dave: presence markers
    watcher = await online(clients, b, bob, "Bob@B")

    first = await clients(a, "Alice@A").connect(alice.token)  # her first session anywhere
    came = await watcher.wait_for(EVENT, presence_event(alice.id, "online"))
    assert came == {
        "channel_id": cid,
        "data": {
            "type": "presence",
            "data": {
                "user_id": alice.id,
                "status": "online",
                "last_active_at": came["data"]["data"]["last_active_at"],
            },
        },
        "user": alice.ref,
    }
    # a second session (on B) and closing one of the two change nothing
    second = await clients(b, "Alice@B").connect(alice.token)
    await first.disconnect()

    async def first_removed() -> bool:  # A has taken the first session out of the registry
        return await sessions_of(b, cid, bob, alice) == 1

    await eventually(first_removed)
    assert await b.online_ids(cid, bob.token) == {alice.id, bob.id}
    # A queued an offline announcement, if any, when it removed the session, so before dave's
    # online (his first session, on A): A announces in queue order, to the same room.
    dave_a = await clients(a, "Dave@A").connect(dave.token)
    await watcher.assert_no_event_before(
        EVENT,
        Marker(EVENT, presence_event(dave.id, "online")),
        predicate=presence_event(alice.id, "offline"),
    )
    assert len(watcher.received(EVENT, presence_event(alice.id, "online"))) == 1

    # the last session closes: offline, once
    await second.disconnect()
    gone = await watcher.wait_for(EVENT, presence_event(alice.id, "offline"))
    assert gone["channel_id"] == cid and gone["user"] == alice.ref
    # Nothing more: markers from each instance's presence queue, queued after alice's last
    # close was announced — dave's offline on A, then his online on B.
    watched = marks(watcher)
    await dave_a.disconnect()
    left_a = Marker(EVENT, presence_event(dave.id, "offline"))
    await eventually(lambda: watcher.received(EVENT, left_a.predicate))
    dave_b = await clients(b, "Dave@B").connect(dave.token)  # his first session again
    await quiet_before(watched, left_a, Marker(EVENT, presence_event(dave.id, "online")))
    await dave_b.disconnect()
    await eventually(lambda: len(watcher.received(EVENT, left_a.predicate)) == 2)
    assert len(watcher.received(EVENT, presence_event(alice.id, "online"))) == 1
    assert len(watcher.received(EVENT, presence_event(alice.id, "offline"))) == 1
    assert await a.online_ids(cid, bob.token) == {bob.id}
    assert_sockets_private((watcher,), people)

"""Two daphne instances sharing Redis (channel layer, cache, session registry) and PostgreSQL.

Each test starts instances A and B with the same ``REDIS_URL`` and ``DATABASE_URL`` (the test
database). Before that, ``clean_redis`` deletes every ``chorus:*`` key of that Redis database
(only those: no FLUSHALL), so no session, group or cache entry of an earlier test is visible.
"""

from __future__ import annotations

import pytest

from tests.live.harness import (
    Beacon,
    access,
    assert_public,
    presence_event,
    typing_event,
)

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]

#: Small session knobs so a killed instance's sessions expire quickly (the system check
#: requires SESSION_TTL > ping interval + ping timeout).
FAST_SESSIONS = {
    "WEBSOCKET_PING_INTERVAL": 0.5,
    "WEBSOCKET_PING_TIMEOUT": 0.5,
    "SESSION_TTL": 3,
    "SESSION_SWEEP_INTERVAL": 0.3,
}


def typing(channel_id: object, state: bool = True) -> dict:
    return {"channel_id": str(channel_id), "data": {"type": "typing", "data": {"typing": state}}}


async def test_typing_crosses_instances_to_members_only(
    instances, clients, alice, bob, carol, group_channel
):
    a, b = instances()
    channel = await group_channel(alice, bob)
    sender = await clients(a, "alice@A").connect(await access(alice))
    member = await clients(b, "bob@B").connect(await access(bob))
    outsider = await clients(b, "carol@B").connect(await access(carol))
    for client in (sender, member, outsider):
        await client.join()
    beacon = await (await Beacon.create(alice, (carol,))).watch(sender, outsider)

    assert await sender.call("events:channel", typing(channel.id)) == {}
    relayed = await member.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert relayed["data"] == {"type": "typing", "data": {"typing": True}}
    assert relayed["user"] == {"id": str(alice.id), "name": "Alice"}
    assert_public(relayed, alice)
    # The member on B has the typing, so A has published it (one group send reaches A's and
    # B's hub channels at once); A's flash follows it into both: the outsider (B) and the
    # sender (A) would get the typing first.
    marker = await beacon.flash(a)
    await outsider.assert_no_event_before("events:channel", marker)
    await sender.assert_no_event_before(
        "events:channel", marker, predicate=typing_event(channel.id, alice.id)
    )


async def test_presence_is_the_same_on_both_instances(
    instances, clients, alice, bob, carol, group_channel
):
    a, b = instances()
    channel = await group_channel(alice, bob, carol)  # carol stays offline
    await clients(a, "alice@A").connect(await access(alice))
    await clients(b, "bob@B").connect(await access(bob))

    token = await access(bob)
    expected = {str(alice.id), str(bob.id)}
    assert await a.online_ids(channel.id, token) == expected
    assert await b.online_ids(channel.id, token) == expected


async def test_killed_instance_sessions_expire_and_announce_offline(
    instances, clients, alice, bob, group_channel
):
    a, b = instances(**FAST_SESSIONS)
    channel = await group_channel(alice, bob)
    bob_token = await access(bob)
    watcher = await clients(b, "bob@B").connect(bob_token)
    await watcher.join()
    await clients(a, "alice@A").connect(await access(alice))
    await watcher.wait_for("events:channel", presence_event(alice.id, "online"))
    assert await b.online_ids(channel.id, bob_token) == {str(alice.id), str(bob.id)}

    a.kill()  # SIGKILL: no disconnect handling, no registry cleanup on A
    within = FAST_SESSIONS["SESSION_TTL"] + FAST_SESSIONS["SESSION_SWEEP_INTERVAL"] + 2
    offline = await watcher.wait_for(
        "events:channel", presence_event(alice.id, "offline"), timeout=within
    )
    assert offline["channel_id"] == str(channel.id)
    assert offline["user"] == {"id": str(alice.id), "name": "Alice"}
    assert await b.online_ids(channel.id, bob_token) == {str(bob.id)}
    assert len(watcher.received("events:channel", presence_event(alice.id, "offline"))) == 1


async def test_revoke_all_on_one_instance_kicks_sockets_on_the_other(
    instances, clients, alice, bob
):
    a, b = instances()
    victim = await clients(a, "alice@A").connect(await access(alice))
    bystander = await clients(a, "bob@A").connect(await access(bob))

    status, body = await b.arequest("POST", "/api/auth/revoke-all/", token=await access(alice))
    assert (status, body) == (200, {"revoked": True})
    error = await victim.wait_for("error")
    assert error["code"] == "token_revoked"
    await victim.wait_disconnected()
    assert bystander.connected and await bystander.call("heartbeat") == {}
    assert not bystander.received("error")

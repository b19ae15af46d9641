"""The Socket.IO endpoint against a real daphne process, with real python-socketio clients.

Every test runs twice: python-socketio clients on WebSocket, and on HTTP long-polling alone.
One daphne per test, on the test database (SQLite in pass 1, PostgreSQL in pass 2), without
Redis: the in-memory channel layer and session registry of that one process. The protocol is
docs/protocol.md (spec §2-7): auth codes, kicks, heartbeat, typing relay, presence on ping
timeout, rooms after a reconnect, note rooms.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from channels.db import database_sync_to_async

from accounts.models import Role, User
from notes.models import Note, NoteGrant, Permission, PrincipalType
from tests.conftest import PASSWORD
from tests.live.harness import (
    Beacon,
    Client,
    Marker,
    access,
    assert_public,
    eventually,
    presence_event,
    short_lived,
    typing_event,
    typing_payload,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=[("websocket",), ("polling",)], ids=["websocket", "polling"])
def socket_transport(request) -> tuple[str, ...]:
    """Every test here runs on both Engine.IO transports: the behaviour is the same."""
    return request.param


@database_sync_to_async
def last_active_at(user: User) -> datetime | None:
    """``User.last_active_at`` as stored now."""
    return User.objects.values_list("last_active_at", flat=True).get(pk=user.pk)


# --- 1. auth success -----------------------------------------------------------------------------


async def test_connect_with_auth_token_and_user_join_returns_public_profile(server, clients, alice):
    token = await access(alice)
    client = await clients(server, "alice").connect(token)
    assert client.connected
    ack = await client.join(token)
    assert ack == {"id": str(alice.id), "name": "Alice", "role": "user"}
    assert_public(ack, alice)


# --- 2. refusals ---------------------------------------------------------------------------------


async def test_connect_without_token_is_auth_required(server, clients):
    error = await clients(server).refused(auth={})
    assert error["data"] == {"code": "auth_required"}
    assert isinstance(error["message"], str) and error["message"]


async def test_connect_with_garbage_token_is_invalid_token(server, clients):
    error = await clients(server).refused("not.a.jwt")
    assert error["data"] == {"code": "invalid_token"}


async def test_connect_with_expired_token_is_token_expired(server, clients, alice):
    expired = await short_lived(alice, -60)  # exp a minute in the past
    error = await clients(server).refused(expired)
    assert error["data"] == {"code": "token_expired"}


async def test_connect_with_logged_out_token_is_token_revoked(
    server, clients, alice, http_login_enabled
):
    await http_login_enabled(alice)
    pair = await server.login("alice", PASSWORD)
    status, body = await server.arequest("POST", "/api/auth/logout/", token=pair["access"], body={})
    assert (status, body) == (200, {"revoked": True})
    error = await clients(server).refused(pair["access"])
    assert error["data"] == {"code": "token_revoked"}


@pytest.mark.parametrize(
    "fields", [{"is_active": False}, {"role": Role.PENDING}], ids=["inactive", "pending"]
)
async def test_connect_as_inactive_or_pending_user_is_forbidden(server, clients, make_user, fields):
    user = await database_sync_to_async(make_user)(**fields)
    error = await clients(server).refused(await short_lived(user, 60))
    assert error["data"] == {"code": "forbidden"}


async def test_token_in_authorization_header_with_empty_auth(server, clients, alice):
    client = clients(server, "alice")
    await client.connect(auth={}, headers={"Authorization": f"Bearer {await access(alice)}"})
    assert client.connected
    assert await client.join() == {"id": str(alice.id), "name": "Alice", "role": "user"}


async def test_bad_authorization_header_is_refused_with_its_code(server, clients):
    error = await clients(server).refused(auth={}, headers={"Authorization": "Bearer garbage"})
    assert error["data"] == {"code": "invalid_token"}


# --- 3. heartbeat --------------------------------------------------------------------------------


async def test_heartbeat_writes_last_active_at_throttled(servers, clients, alice):
    server = servers(LAST_ACTIVE_WRITE_INTERVAL=1)
    assert await last_active_at(alice) is None
    client = await clients(server, "alice").connect(await access(alice))

    assert await client.call("heartbeat") == {}
    first = await last_active_at(alice)
    assert first is not None

    # within the interval: acked, but not written again
    assert await client.call("heartbeat") == {}
    assert await last_active_at(alice) == first

    async def changed():
        assert await client.call("heartbeat") == {}
        value = await last_active_at(alice)
        return value if value != first else None

    second = await eventually(changed, timeout=5, every=0.2)
    # never rewritten before the interval had passed (allowing for the write's own latency)
    assert second - first >= timedelta(seconds=0.9)


# --- 4. typing -----------------------------------------------------------------------------------


async def test_typing_is_relayed_to_other_members_only_stamped_with_the_sender(
    server, clients, alice, bob, carol, group_channel
):
    channel = await group_channel(alice, bob)
    sockets: dict[str, Client] = {}
    for user in (alice, bob, carol):
        token = await access(user)
        sockets[user.username] = await clients(server, user.username).connect(token)
        await sockets[user.username].join(token)
    a, b, c = sockets["alice"], sockets["bob"], sockets["carol"]
    beacon = await (await Beacon.create(carol)).watch(c)

    ack = await a.call(
        "events:channel",
        {"channel_id": str(channel.id), "data": {"type": "typing", "data": {"typing": True}}},
    )
    assert ack == {}
    relayed = await b.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert relayed["data"] == {"type": "typing", "data": {"typing": True}}
    assert relayed["user"] == {"id": str(alice.id), "name": "Alice"}
    assert_public(relayed, alice)
    # bob's typing follows alice's through the same outbox and room: an echo to a comes first
    assert await b.call("events:channel", typing_payload(channel.id, True)) == {}
    await a.assert_no_event_before(
        "events:channel",
        Marker("events:channel", typing_event(channel.id, bob.id)),
        predicate=typing_event(channel.id, alice.id),
    )
    # b has the typing: the hub has written it to every socket of the room; the flash follows
    await c.assert_no_event_before("events:channel", await beacon.flash(server))

    # a non-member may not type into the channel
    refused = await c.call(
        "events:channel",
        {"channel_id": str(channel.id), "data": {"type": "typing", "data": {"typing": True}}},
    )
    assert refused["error"]["code"] == "forbidden"
    assert set(refused["error"]) == {"code", "message"}

    # a client-sent identity is ignored: still stamped with the authenticated sender
    ack = await a.call(
        "events:channel",
        {
            "channel_id": str(channel.id),
            "user_id": str(bob.id),
            "user": {"id": str(bob.id), "name": "Bob"},
            "data": {"type": "typing", "data": {"typing": False}, "user_id": str(bob.id)},
        },
    )
    assert ack == {}
    stopped = await b.wait_for(
        "events:channel", lambda d: d["data"] == {"type": "typing", "data": {"typing": False}}
    )
    assert stopped["user"] == {"id": str(alice.id), "name": "Alice"}
    assert not b.received("events:channel", typing_event(channel.id, bob.id))
    await c.assert_no_event_before("events:channel", await beacon.flash(server))


# --- 5. ping timeout -----------------------------------------------------------------------------


async def test_ping_timeout_closes_socket_and_announces_offline(
    servers, clients, raw_sockets, alice, bob, group_channel
):
    server = servers(WEBSOCKET_PING_INTERVAL=0.5, WEBSOCKET_PING_TIMEOUT=0.5)
    channel = await group_channel(alice, bob)
    bob_token = await access(bob)
    watcher = await clients(server, "bob").connect(bob_token)
    await watcher.join(bob_token)

    raw = await raw_sockets(server).handshake(await access(alice))
    assert raw.open["pingInterval"] == 500 and raw.open["pingTimeout"] == 500
    await watcher.wait_for("events:channel", presence_event(alice.id, "online"))
    assert await server.online_ids(channel.id, bob_token) == {str(alice.id), str(bob.id)}

    code, _ = await raw.closed_by_server(timeout=5)  # PINGs ("2") never answered
    assert code == 4408
    assert "2" in raw.frames
    # daphne 4 drops the close reason from the frame; the server log names it
    await eventually(lambda: f"Socket {raw.sid}: ping timeout" in server.log_tail())

    offline = await watcher.wait_for("events:channel", presence_event(alice.id, "offline"))
    assert offline["channel_id"] == str(channel.id)
    assert offline["user"] == {"id": str(alice.id), "name": "Alice"}
    assert_public(offline, alice)
    assert await server.online_ids(channel.id, bob_token) == {str(bob.id)}
    assert watcher.connected  # the python-socketio client answers PINGs and stays


# --- 6-8. kicks ----------------------------------------------------------------------------------


async def test_token_expiry_ends_the_socket_without_a_final_disconnect(server, clients, alice):
    """``error``, then the transport closes: no ``41``, which clients take as final (a client
    with reconnection on comes back with a fresh token: test_tokens_live.py)."""
    client = await clients(server, "alice").connect(await short_lived(alice, 2))
    error = await client.wait_for("error", timeout=5)
    assert error["code"] == "token_expired"
    assert set(error) == {"code", "message"}
    await client.wait_disconnected()
    assert client.disconnects == ["transport error"]  # not "server disconnect" (a 41)


async def test_logout_kicks_only_the_sockets_of_that_token(
    server, clients, alice, http_login_enabled
):
    await http_login_enabled(alice)
    first = await server.login("alice", PASSWORD)
    second = await server.login("alice", PASSWORD)
    assert first["access"] != second["access"]
    a = await clients(server, "alice-A").connect(first["access"])
    b = await clients(server, "alice-B").connect(second["access"])

    status, _ = await server.arequest(
        "POST", "/api/auth/logout/", token=first["access"], body={"refresh": first["refresh"]}
    )
    assert status == 200
    error = await a.wait_for("error")
    assert error["code"] == "token_revoked"
    assert set(error) == {"code", "message"}
    await a.wait_disconnected()

    assert b.connected
    assert await b.call("heartbeat") == {}
    assert not b.received("error")


async def test_revoke_all_kicks_every_socket_of_the_user(server, clients, alice, bob):
    a1 = await clients(server, "alice-1").connect(await access(alice))
    a2 = await clients(server, "alice-2").connect(await access(alice))
    other = await clients(server, "bob").connect(await access(bob))

    status, body = await server.arequest("POST", "/api/auth/revoke-all/", token=await access(alice))
    assert (status, body) == (200, {"revoked": True})
    for socket in (a1, a2):
        assert (await socket.wait_for("error"))["code"] == "token_revoked"
        await socket.wait_disconnected()
    assert other.connected and await other.call("heartbeat") == {}
    assert not other.received("error")


# --- 9. reconnect --------------------------------------------------------------------------------


async def test_reconnect_and_user_join_restores_channel_rooms(
    server, clients, alice, bob, group_channel
):
    channel = await group_channel(alice, bob)
    alice_token = await access(alice)
    a = await clients(server, "alice").connect(alice_token)
    await a.join(alice_token)

    first = await clients(server, "bob-1").connect(await access(bob))
    await first.join()
    assert await a.call("events:channel", typing_payload(channel.id, True)) == {}
    await first.wait_for("events:channel", typing_event(channel.id, alice.id))
    await first.disconnect()

    second = await clients(server, "bob-2").connect(await access(bob))
    await second.join()
    assert await a.call("events:channel", typing_payload(channel.id, False)) == {}
    relayed = await second.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert relayed["data"]["data"] == {"typing": False}


async def test_without_user_join_no_channel_events(server, clients, alice, bob, group_channel):
    """The control for the reconnect test: rooms come from ``user-join``, not from CONNECT."""
    channel = await group_channel(alice, bob)
    a = await clients(server, "alice").connect(await access(alice))
    await a.join()
    b = await clients(server, "bob").connect(await access(bob))
    beacon = await (await Beacon.create(bob)).watch(b)
    witness = await clients(server, "bob (joined)").connect(await access(bob))
    await witness.join()
    assert await a.call("events:channel", typing_payload(channel.id, True)) == {}
    # the witness (in the room) has the typing: the hub has written it to every socket of the
    # room, b's too if b were in it; the flash follows
    await witness.wait_for("events:channel", typing_event(channel.id, alice.id))
    await b.assert_no_event_before("events:channel", await beacon.flash(server))


# --- 10. join-note -------------------------------------------------------------------------------


async def test_join_note_checks_read_access(server, clients, alice, bob, carol):
    note = await database_sync_to_async(Note.objects.create)(owner=alice, title="plan")
    await database_sync_to_async(NoteGrant.objects.create)(
        note=note, principal_type=PrincipalType.USER, user=bob, permission=Permission.READ
    )
    reader = await clients(server, "bob").connect(await access(bob))
    assert await reader.call("join-note", {"note_id": str(note.id)}) == {"note_id": str(note.id)}

    stranger = await clients(server, "carol").connect(await access(carol))
    refused = await stranger.call("join-note", {"note_id": str(note.id)})
    missing = await reader.call("join-note", {"note_id": str(uuid.uuid4())})
    # An unreadable note is answered like a missing one (REST's 404 and y-websocket alike).
    assert refused == missing and missing["error"]["code"] == "not_found"

    bad = await reader.call("join-note", {"note_id": "not-a-uuid"})
    assert bad["error"]["code"] == "bad_request"


async def test_sigterm_with_open_sockets_exits_cleanly(server, clients, alice):
    """daphne 4.2.3 crashed (SIGSEGV) on SIGTERM with a WebSocket open; realtime.transport.shutdown
    works around it. A clean exit is what process supervisors see on every deploy."""
    client = await clients(server, "alice").connect(await access(alice))
    assert await client.call("heartbeat", {}) == {}
    server.stop()
    assert server.process.returncode == 0

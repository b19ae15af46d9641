"""The Socket.IO consumer through WebsocketCommunicator: handshake, auth, refusals, limits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts import tickets
from accounts.models import RevokedToken, Role, User
from accounts.tokens import (
    issue_access_token,
    issue_token_pair,
    revoke_all_tokens,
    validate_access_token,
)
from channels_app.models import Channel, ChannelMember
from config.formats import iso
from notes.models import Note
from realtime import push
from realtime.routing import http_application, websocket_application
from tests.realtime.conftest import SIO_PATH

pytestmark = [pytest.mark.django_db(transaction=True)]


def token_for(user: User, **kwargs) -> str:
    return issue_access_token(user, **kwargs)


@pytest.fixture
def channel(alice, bob):
    channel = Channel.objects.create(name="team", type="group", owner=alice)
    for user in (alice, bob):
        ChannelMember.objects.create(channel=channel, user=user)
    return channel


# --- handshake --------------------------------------------------------------------------------


async def test_open_packet_carries_sid_and_configured_ping_settings(sio, settings):
    settings.CHORUS = {
        "WEBSOCKET_PING_INTERVAL": 7.5,
        "WEBSOCKET_PING_TIMEOUT": 3,
        "WEBSOCKET_MAX_MESSAGE_BYTES": 4096,
    }
    packet = await sio().open()
    assert packet["upgrades"] == [] and len(packet["sid"]) >= 16
    assert (packet["pingInterval"], packet["pingTimeout"], packet["maxPayload"]) == (
        7500,
        3000,
        4096,
    )


@pytest.mark.parametrize(
    "query",
    ["EIO=3&transport=websocket", "transport=websocket", "EIO=4&transport=polling", "EIO=4"],
)
async def test_unsupported_engineio_version_or_transport_is_refused(sio, query):
    socket = sio(f"/ws/socket.io/?{query}")
    connected, _ = await socket.comm.connect()
    assert connected  # accepted so the client can see why
    assert await socket.closed_with() == 4400


async def test_http_on_the_socketio_path_is_engineio_not_django():
    """HTTP on the Socket.IO path is Engine.IO long-polling (JSON errors), never Django (CSRF
    HTML); the protocol itself is tested live (tests/live/test_polling_live.py)."""

    async def django(scope, receive, send):
        raise AssertionError("Django must not see the Socket.IO path")

    communicator = HttpCommunicator(
        http_application(django), "PUT", "/ws/socket.io/?EIO=4&transport=polling"
    )
    response = await communicator.get_response()
    assert response["status"] == 400
    assert json.loads(response["body"]) == {"code": 2, "message": "Bad handshake method"}


async def test_connect_with_auth_token_is_accepted(sio, alice):
    sid = await sio().connected(token_for(alice))
    assert len(sid) >= 16


@pytest.mark.parametrize("where", ["header", "cookie", "query"])
async def test_token_from_header_cookie_or_query(sio, alice, where):
    token = token_for(alice)
    path, headers = "/ws/socket.io/?EIO=4&transport=websocket", []
    if where == "header":
        headers = [(b"authorization", f"Bearer {token}".encode())]
    elif where == "cookie":
        headers = [(b"cookie", f"theme=dark; token={token}".encode())]
    else:
        path += f"&token={token}"
    reply = await sio(path, headers).connect(None)
    assert reply.startswith('0{"sid":'), reply


async def expect_refusal(sio, auth, code: str, close: int) -> None:
    socket = sio()
    reply = await socket.connect(auth)
    assert reply.startswith("4"), reply
    body = json.loads(reply[1:])
    assert body["data"] == {"code": code} and body["message"]
    assert await socket.closed_with() == close


async def test_refusal_no_token(sio):
    await expect_refusal(sio, {}, "auth_required", 4401)


async def test_refusal_garbage_and_wrong_key(sio, alice):
    await expect_refusal(sio, {"token": "garbage"}, "invalid_token", 4401)
    refresh = (await database_sync_to_async(issue_token_pair)(alice))["refresh"]
    await expect_refusal(sio, {"token": refresh}, "invalid_token", 4401)


async def test_refusal_expired(sio, alice):
    token = AccessToken.for_user(alice)
    token.set_exp(from_time=token.current_time - timedelta(hours=1))
    await expect_refusal(sio, {"token": str(token)}, "token_expired", 4401)


async def test_refusal_revoked(sio, alice):
    token = token_for(alice)
    await database_sync_to_async(revoke_all_tokens)(alice)
    await expect_refusal(sio, {"token": token}, "token_revoked", 4401)


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": Role.PENDING}])
async def test_refusal_forbidden_user(sio, alice, change):
    token = token_for(alice)
    await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(**change)
    await expect_refusal(sio, {"token": token}, "forbidden", 4403)


async def test_other_namespace_gets_connect_error(sio, alice):
    socket = sio()
    await socket.open()
    await socket.send('40/admin,{"token":"' + token_for(alice) + '"}')
    frame = await socket.recv()
    assert frame == '44/admin,{"message":"Invalid namespace"}'


async def test_event_before_connect_closes_and_runs_nothing(sio, alice):
    socket = sio()
    await socket.open()
    await socket.send('421["heartbeat",{}]')
    assert await socket.closed_with() == 4401
    await database_sync_to_async(alice.refresh_from_db)()
    assert alice.last_active_at is None


@pytest.mark.parametrize("frame", ["", "9", "42[", '42{"a":1}', "4" + "[" * 1000])
async def test_unparsable_frames_close_the_socket(sio, alice, frame):
    socket = sio()
    await socket.connected(token_for(alice))
    await socket.send(frame)
    assert await socket.closed_with() == 4400


async def test_oversized_frame_closes_with_1009(sio, alice, settings):
    settings.CHORUS = {"WEBSOCKET_MAX_MESSAGE_BYTES": 400}
    socket = sio()
    await socket.connected(token_for(alice))
    await socket.send('42["heartbeat",{"pad":"' + "é" * 300 + '"}]')  # ~330 chars, ~630 bytes
    assert await socket.closed_with() == 1009


# --- events -----------------------------------------------------------------------------------


async def test_user_join_acks_public_profile_only(sio, alice):
    socket = sio()
    token = token_for(alice)
    await socket.connected(token)
    ack = await socket.call("user-join", {"auth": {"token": token}})
    assert ack == {"id": str(alice.id), "name": "Alice", "role": "user"}


async def test_user_join_with_someone_elses_or_bad_token_is_refused(sio, alice, bob):
    socket = sio()
    await socket.connected(token_for(alice))
    ack = await socket.call("user-join", {"auth": {"token": token_for(bob)}})
    assert ack["error"]["code"] == "forbidden"
    ack = await socket.call("user-join", {"auth": {"token": "garbage"}})
    assert ack["error"]["code"] == "unauthorized"


async def test_unknown_event_and_bad_payload_ack_bad_request(sio, alice):
    socket = sio()
    await socket.connected(token_for(alice))
    assert (await socket.call("no-such-event", {}))["error"]["code"] == "bad_request"
    ack = await socket.call("events:channel", {"channel_id": "not-a-uuid"})
    assert ack["error"]["code"] == "bad_request" and "channel_id" in ack["error"]["message"]
    assert (await socket.call("join-note", "a string"))["error"]["code"] == "bad_request"


async def test_binary_attachments_are_rebuilt_before_the_handler(sio, alice):
    note = await database_sync_to_async(Note.objects.create)(owner=alice, title="n")
    socket = sio()
    await socket.connected(token_for(alice))
    payload = {"note_id": str(note.id), "blob": {"_placeholder": True, "num": 0}}
    await socket.send("451-7" + json.dumps(["join-note", payload]))
    await socket.send(b"\x00\x01binary")
    frame = await socket.recv()
    assert frame == '437[{"note_id":"' + str(note.id) + '"}]'


async def test_typing_reaches_other_members_only(sio, alice, bob, make_user, channel):
    carol = await database_sync_to_async(make_user)("carol")
    sockets = {}
    for user in (alice, bob, carol):
        sockets[user.username] = sio()
        await sockets[user.username].connected(token_for(user))
        await sockets[user.username].call("user-join", {})
    ack = await sockets["alice"].call(
        "events:channel",
        {
            "channel_id": str(channel.id),
            "user_id": str(carol.id),
            "data": {"type": "typing", "data": {"typing": True}},
        },
    )
    assert ack == {}
    name, data = await sockets["bob"].next_event()
    assert name == "events:channel"
    assert data == {
        "channel_id": str(channel.id),
        "data": {"type": "typing", "data": {"typing": True}},
        "user": {"id": str(alice.id), "name": "Alice"},
    }

    def is_typing(data) -> bool:
        return data["data"]["type"] == "typing"

    # Bob got it, so every local socket the room reaches did: a marker sent now comes after.
    for user in (alice, carol):
        await push.aemit_to_user(user.id, "marker", None)
        assert await sockets[user.username].no_event_before("marker", "events:channel", is_typing)
    refused = await sockets["carol"].call(
        "events:channel",
        {"channel_id": str(channel.id), "data": {"type": "typing", "data": {"typing": True}}},
    )
    assert refused["error"]["code"] == "forbidden"


async def test_repeated_typing_is_throttled_but_stop_always_passes(
    sio, alice, bob, channel, settings
):
    settings.CHORUS = {"TYPING_MIN_INTERVAL": 30}  # no repeat can pass however slow the run
    a, b = sio(), sio()
    await a.connected(token_for(alice))
    await b.connected(token_for(bob))
    await b.call("user-join", {})
    typing = {"channel_id": str(channel.id), "data": {"type": "typing", "data": {"typing": True}}}
    for _ in range(3):
        assert await a.call("events:channel", typing) == {}
    stop = {"channel_id": str(channel.id), "data": {"type": "typing", "data": {"typing": False}}}
    assert await a.call("events:channel", stop) == {}
    received = [await b.next_event(), await b.next_event()]
    assert [d["data"]["data"]["typing"] for _, d in received] == [True, False]
    push.emit_soon(push.user_room(bob.id), "marker", None)  # the same outbox, behind them
    assert await b.next_event() == ("marker", None)  # nothing more came before it


async def test_last_read_at_is_stored_for_members_only(sio, alice, make_user, channel):
    socket = sio()
    await socket.connected(token_for(alice))
    ack = await socket.call(
        "events:channel", {"channel_id": str(channel.id), "data": {"type": "last_read_at"}}
    )
    member = await database_sync_to_async(ChannelMember.objects.get)(channel=channel, user=alice)
    assert member.last_read_at is not None
    assert ack == {"last_read_at": iso(member.last_read_at)}
    stranger = sio()
    await stranger.connected(token_for(await database_sync_to_async(make_user)("dave")))
    ack = await stranger.call(
        "events:channel", {"channel_id": str(channel.id), "data": {"type": "last_read_at"}}
    )
    assert ack["error"]["code"] == "forbidden"


async def test_heartbeat_writes_last_active_at_once_per_interval(sio, alice):
    socket = sio()
    await socket.connected(token_for(alice))
    assert await socket.call("heartbeat", {}) == {}
    await database_sync_to_async(alice.refresh_from_db)()
    first = alice.last_active_at
    assert first is not None
    assert await socket.call("heartbeat", {}) == {}
    await database_sync_to_async(alice.refresh_from_db)()
    assert alice.last_active_at == first


async def test_join_note_answers_unreadable_and_missing_notes_alike(sio, alice, bob):
    """As REST's 404: a note the caller may not read is indistinguishable from none."""
    note = await database_sync_to_async(Note.objects.create)(owner=alice, title="secret")
    socket = sio()
    await socket.connected(token_for(bob))
    unreadable = await socket.call("join-note", {"note_id": str(note.id)})
    missing = "00000000-0000-0000-0000-000000000000"
    assert await socket.call("join-note", {"note_id": missing}) == unreadable
    assert unreadable["error"]["code"] == "not_found"


# --- limits, timers, kicks --------------------------------------------------------------------


async def test_rate_limit_acks_then_disconnects_sustained_abuse(sio, alice, settings):
    settings.CHORUS = {"EVENT_RATE": 0.01, "EVENT_BURST": 2, "RATE_LIMIT_DISCONNECT_AFTER": 3}
    socket = sio()
    await socket.connected(token_for(alice))
    assert await socket.call("heartbeat", {}) == {}
    assert await socket.call("heartbeat", {}) == {}
    assert (await socket.call("heartbeat", {}))["error"]["code"] == "rate_limited"
    assert (await socket.call("heartbeat", {}))["error"]["code"] == "rate_limited"
    await socket.send('429["heartbeat",{}]')
    name, data = await socket.next_event()
    assert (name, data["code"]) == ("error", "rate_limited")
    assert await socket.recv() == "41"
    assert await socket.closed_with() == 4429


async def test_max_sockets_per_user(sio, alice, settings):
    settings.CHORUS = {"MAX_SOCKETS_PER_USER": 1}
    await sio().connected(token_for(alice))
    second = sio()
    reply = await second.connect({"token": token_for(alice)})
    assert json.loads(reply[1:])["data"] == {"code": "too_many_connections"}
    assert await second.closed_with() == 4429


async def test_an_exception_in_a_handler_closes_1011_and_runs_the_full_disconnect(
    sio, alice, monkeypatch
):
    """A failure escaping a handler used to kill the application instance: daphne closed the
    socket with 1011 but ``disconnect`` never ran, so the session stayed registered."""
    from realtime.consumers.socketio import SocketIOConsumer
    from realtime.sessions import get_registry

    socket = sio()
    await socket.connected(token_for(alice))
    assert await get_registry().count(str(alice.pk)) == 1

    async def broken(self, packet):
        raise RuntimeError("a bug")

    monkeypatch.setattr(SocketIOConsumer, "_on_event", broken)
    await socket.send('42["heartbeat",{}]')
    assert await socket.closed_with() == 1011
    assert await get_registry().count(str(alice.pk)) == 0
    await sio().connected(token_for(alice))  # and the user connects again at once


async def test_ping_is_sent_and_a_missing_pong_closes(sio, alice, settings):
    settings.CHORUS = {
        "WEBSOCKET_PING_INTERVAL": 0.2,
        "WEBSOCKET_PING_TIMEOUT": 1.0,  # generous: a loaded machine must not miss our pong
        "SESSION_TTL": 5,
    }
    socket = sio()
    await socket.connected(token_for(alice))
    assert await socket.recv() == "2"
    await socket.send("3")
    assert await socket.recv() == "2"  # answered: pinged again, still open
    assert await socket.closed_with() == 4408  # not answered: closed


async def test_token_expiry_sends_the_error_then_closes_without_disconnect(sio, alice):
    """No ``41`` (nor Engine.IO ``1``): clients take either as final; a bare close makes them
    reconnect with a fresh token (docs/protocol.md §4)."""
    socket = sio()
    await socket.connected(token_for(alice, ttl_seconds=2))  # whole seconds: 1 to 2 s left
    name, data = await socket.next_event(timeout=4)
    assert (name, data["code"]) == ("error", "token_expired")
    frames = []
    while (output := await socket.comm.receive_output(2))["type"] != "websocket.close":
        frames.append(output.get("text"))
    assert output["code"] == 4401 and output.get("reason") == "token_expired"
    assert all(frame == "2" for frame in frames), frames  # pings at most: no "41", no "1"


async def test_logout_kicks_only_that_tokens_sockets(sio, alice):
    pair = database_sync_to_async(issue_token_pair)
    first, second = await pair(alice), await pair(alice)
    a, b = sio(), sio()
    await a.connected(first["access"])
    await b.connected(second["access"])
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first['access']}")
    response = await database_sync_to_async(client.post)("/api/auth/logout/", {}, format="json")
    assert response.status_code == 200
    name, data = await a.next_event()
    assert (name, data["code"]) == ("error", "token_revoked")
    assert await a.recv() == "41"
    assert await b.call("heartbeat", {}) == {}


async def test_revoke_all_kicks_every_socket_of_the_user(sio, alice, bob):
    a1, a2, b = sio(), sio(), sio()
    for socket, user in ((a1, alice), (a2, alice), (b, bob)):
        await socket.connected(token_for(user))

    def revoke():
        with transaction.atomic():
            revoke_all_tokens(alice)

    await database_sync_to_async(revoke)()
    for socket in (a1, a2):
        name, data = await socket.next_event()
        assert (name, data["code"]) == ("error", "token_revoked")
    assert await b.call("heartbeat", {}) == {}


async def test_membership_push_moves_live_sockets(sio, alice, bob, make_user):
    channel = await database_sync_to_async(Channel.objects.create)(name="new", owner=alice)
    socket = sio()
    await socket.connected(token_for(bob))
    await push.aadd_user_to_room(
        bob.id, push.channel_room(channel.id), notice=("events:channel", {"added": True})
    )
    assert await socket.next_event() == ("events:channel", {"added": True})  # joined by now
    await push.aemit_to_channel(channel.id, "events:channel", {"hello": 1})
    assert await socket.next_event() == ("events:channel", {"hello": 1})
    await push.aremove_user_from_room(
        bob.id, push.channel_room(channel.id), notice=("events:channel", {"removed": True})
    )
    assert await socket.next_event() == ("events:channel", {"removed": True})
    await push.aemit_to_channel(channel.id, "events:channel", {"hello": 2})
    await push.aemit_to_user(bob.id, "events", {"marker": True})
    assert await socket.next_event() == ("events", {"marker": True})  # hello 2 never came


async def test_presence_online_and_offline_reach_channel_members(sio, alice, bob, channel):
    watcher = sio()
    await watcher.connected(token_for(bob))
    await watcher.call("user-join", {})
    socket = sio()
    await socket.connected(token_for(alice))
    name, data = await watcher.next_event()
    assert name == "events:channel" and data["data"]["type"] == "presence"
    assert data["data"]["data"]["status"] == "online"
    assert data["data"]["data"]["user_id"] == str(alice.id)
    second = sio()
    await second.connected(token_for(alice))
    await second.close()  # not the last session: no event
    await socket.close()
    name, data = await watcher.next_event()
    assert data["data"]["data"]["status"] == "offline"
    assert set(data["user"]) == {"id", "name"}
    # Announcements go out in order: alice online again comes next, so that offline was the
    # only one (the close of ``second`` announced nothing).
    again = sio()
    await again.connected(token_for(alice))
    name, data = await watcher.next_event()
    assert data["data"]["data"]["status"] == "online"


async def test_presence_of_a_connect_burst_is_announced_once_per_user(sio, make_user, bob, channel):
    """Sockets that connect together are announced in batches: once per user, with the
    stored last_active_at."""
    from django.utils import timezone

    seen = timezone.now() - timedelta(minutes=5)

    def members(count):
        users = [make_user(f"burst-{n}", last_active_at=seen) for n in range(count)]
        for user in users:
            ChannelMember.objects.create(channel=channel, user=user)
        return users

    users = await database_sync_to_async(members)(6)
    watcher = sio()
    await watcher.connected(token_for(bob))
    await watcher.call("user-join", {})
    sockets = [sio() for _ in users]
    for socket in sockets:
        await socket.open()
    replies = await asyncio.gather(
        *(
            socket.connect({"token": token_for(user)})
            for socket, user in zip(sockets, users, strict=True)
        )
    )
    assert all(reply.startswith("0{") for reply in replies)
    announced = [(await watcher.next_event())[1]["data"]["data"] for _ in users]
    assert sorted(entry["user_id"] for entry in announced) == sorted(str(u.id) for u in users)
    assert {entry["status"] for entry in announced} == {"online"}
    assert {entry["last_active_at"] for entry in announced} == {seen.isoformat()}
    # Announcements go out in order: one user leaving comes next, so nobody was announced twice.
    await sockets[0].close()
    name, data = await watcher.next_event()
    assert name == "events:channel"
    assert (data["data"]["data"]["user_id"], data["data"]["data"]["status"]) == (
        str(users[0].id),
        "offline",
    )


async def test_presence_reads_channels_only_while_a_socket_can_hear_one(
    sio, alice, bob, channel, monkeypatch
):
    """One process: while no socket is in any channel room, users coming online or going
    offline cost no database read and no announcement; once a socket is, they do again.
    With Redis other instances' rooms are unknown here, so every change is read."""
    from realtime import presence
    from realtime.hub import get_hub

    reads: list[list[str]] = []
    audience = presence._audience

    async def counted(user_ids):  # the real lookup, counted
        reads.append(sorted(user_ids))
        return await audience(user_ids)

    monkeypatch.setattr(presence, "_audience", counted)

    async def settled() -> None:
        queue = get_hub().presence
        while queue.queue or (queue.task is not None and not queue.task.done()):
            await asyncio.sleep(0.01)

    socket = sio()
    await socket.connected(token_for(alice))
    await socket.close()
    await settled()
    if get_hub().single_process:
        assert reads == []
    else:
        assert reads and all(read == [str(alice.id)] for read in reads)
    watcher = sio()
    await watcher.connected(token_for(bob))
    await watcher.call("user-join", {})
    await settled()
    reads.clear()
    socket = sio()
    await socket.connected(token_for(alice))
    name, data = await watcher.next_event()
    assert name == "events:channel"
    assert data["data"]["data"] == {
        "user_id": str(alice.id),
        "status": "online",
        "last_active_at": None,
    }
    assert reads == [[str(alice.id)]]


async def test_lapsed_group_membership_is_restored_by_the_keeper(sio, alice, bob, settings):
    """A group the layer forgot (group_expiry, a Redis restart) is re-added by the keeper."""
    from realtime.hub import get_hub

    settings.CHORUS = {"GROUP_REFRESH_INTERVAL": 0}
    socket = sio()
    await socket.connected(token_for(bob))
    hub = get_hub()
    room = push.user_room(bob.id)
    await hub.layer.group_discard(room, hub.channel_name)  # the layer forgets the group
    await push.aemit_to_user(bob.id, "events", {"n": 1})
    await hub.keeper.keep()
    await push.aemit_to_user(bob.id, "events", {"n": 2})
    assert await socket.next_event() == ("events", {"n": 2})  # the first: n 1 never came


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(None, True), (b"http://localhost:3000", True), (b"https://evil.example", False)],
)
async def test_origin_check(sio, alice, origin, accepted, caplog):
    """The page's own origin (the Host it was served from) is accepted; full rule: test_origins."""
    headers = [(b"host", b"localhost:3000")] + ([(b"origin", origin)] if origin else [])
    socket = sio(headers=headers)
    connected, code = await socket.comm.connect()
    assert connected is accepted
    if not accepted:
        assert code == 4403
        assert "origin" in caplog.text and "evil.example" in caplog.text


async def test_cors_allowed_origin_is_accepted(sio, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    socket = sio(headers=[(b"origin", b"https://app.example.com")])
    connected, _ = await socket.comm.connect()
    assert connected


async def test_role_set_to_pending_kicks_the_users_sockets(sio, alice):
    socket = sio()
    await socket.connected(token_for(alice))

    def demote():
        with transaction.atomic():
            user = User.objects.get(pk=alice.pk)
            user.role = Role.PENDING
            user.save()

    await database_sync_to_async(demote)()
    name, data = await socket.next_event()
    assert (name, data["code"]) == ("error", "token_revoked")
    assert await socket.recv() == "41"


async def test_sync_push_api_reaches_sockets_after_commit(sio, alice):
    socket = sio()
    await socket.connected(token_for(alice))

    def from_a_view():
        with transaction.atomic():
            push.emit_to_user(alice.id, "events", {"data": {"type": "hello"}})
            assert socket.comm.output_queue.empty()  # nothing before the commit

    await database_sync_to_async(from_a_view)()
    assert await socket.next_event() == ("events", {"data": {"type": "hello"}})

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            push.emit_to_user(alice.id, "events", {"data": {"type": "never"}})
            raise RuntimeError

    await database_sync_to_async(rolled_back)()
    await push.aemit_to_user(alice.id, "marker", None)
    assert await socket.no_event_before("marker", "events")


async def test_concurrent_connects_never_exceed_the_socket_limit(sio, alice, settings):
    settings.CHORUS = {"MAX_SOCKETS_PER_USER": 2}
    sockets = [sio() for _ in range(6)]
    for socket in sockets:
        await socket.open()
    replies = await asyncio.gather(*(s.connect({"token": token_for(alice)}) for s in sockets))
    accepted = [r for r in replies if r.startswith('0{"sid"')]
    refused = [json.loads(r[1:])["data"]["code"] for r in replies if r.startswith("4")]
    assert len(accepted) == 2 and refused == ["too_many_connections"] * 4


async def test_concurrent_connects_each_get_their_own_answer(sio, alice, bob, make_user):
    """CONNECTs that arrive together are validated in one batch (realtime/db.py): each socket
    still gets the answer for its own token and is bound to its own user."""
    carol = await database_sync_to_async(make_user)("carol")
    dave = await database_sync_to_async(make_user)("dave")
    revoked = token_for(carol)
    await database_sync_to_async(RevokedToken.objects.create)(
        jti=jwt.decode(revoked, options={"verify_signature": False})["jti"],
        user=carol,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    disabled = token_for(dave)
    await database_sync_to_async(User.objects.filter(pk=dave.pk).update)(is_active=False)
    expired = AccessToken.for_user(bob)
    expired.set_exp(from_time=expired.current_time - timedelta(hours=1))
    cases = [
        (token_for(alice), alice),
        (revoked, "token_revoked"),
        (token_for(bob), bob),
        ("garbage", "invalid_token"),
        (disabled, "forbidden"),
        (str(expired), "token_expired"),
        (token_for(alice), alice),
    ]
    sockets = [sio() for _ in cases]
    for socket in sockets:
        await socket.open()
    replies = await asyncio.gather(
        *(
            socket.connect({"token": token})
            for socket, (token, _) in zip(sockets, cases, strict=True)
        )
    )
    for socket, reply, (token, expected) in zip(sockets, replies, cases, strict=True):
        if isinstance(expected, User):
            assert reply.startswith('0{"sid"'), reply
            ack = await socket.call("user-join", {"auth": {"token": token}})
            assert ack["id"] == str(expected.id), ack
        else:
            assert json.loads(reply[1:])["data"] == {"code": expected}, reply


async def test_a_flooded_socket_does_not_hold_the_others_back(sio, alice):
    """A socket whose queue already holds a backlog yields to the event loop after every
    message: another socket's frame is answered long before the backlog is worked off."""
    flooded, other = sio(), sio()
    await flooded.open()
    await other.open()
    backlog = 2000
    for _ in range(backlog):
        await flooded.send("2")  # Engine.IO PING from the client: answered with "3"
    await other.send("2probe")
    assert await other.recv() == "3probe"
    answered_meanwhile = flooded.comm.output_queue.qsize()
    assert answered_meanwhile < backlog / 10, answered_meanwhile


async def test_heartbeat_write_is_bounded_by_the_database_across_instances(sio, alice):
    """Another instance wrote last_active_at a moment ago: this one's due write is a no-op."""
    from django.utils import timezone

    recent = timezone.now()
    await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(last_active_at=recent)
    socket = sio()
    await socket.connected(token_for(alice))
    assert await socket.call("heartbeat", {}) == {}
    await database_sync_to_async(alice.refresh_from_db)()
    assert alice.last_active_at == recent


async def test_ephemeral_outbox_keeps_order_and_counts_drops(sio, alice, caplog):
    from realtime.hub import get_hub

    socket = sio()
    await socket.connected(token_for(alice))
    hub = get_hub()
    hub.OUTBOX_SIZE = 3  # this hub's outbox is created on first use with this bound
    for n in range(5):  # no await in between: the outbox cannot drain meanwhile
        push.emit_soon(push.user_room(alice.id), "events", {"n": n})
    assert hub.dropped_publishes == 2
    assert "outbox full" in caplog.text
    received = [await socket.next_event() for _ in range(3)]
    assert received == [("events", {"n": 0}), ("events", {"n": 1}), ("events", {"n": 2})]
    push.emit_soon(push.user_room(alice.id), "marker", None)  # behind any dropped one
    assert await socket.no_event_before("marker", "events")


# --- the realtime ORM thread's connection -----------------------------------------------------


def _backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


async def _terminate(database_url: str, pid: int) -> None:
    """Make PostgreSQL drop the backend ``pid`` (as a restart or an idle timeout would)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):
            cursor = await admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            if await cursor.fetchone() is None:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} still alive")


@pytest.mark.services
async def test_a_connection_the_database_dropped_is_replaced(
    sio, alice, channel, database_url, monkeypatch
):
    """Socket queries share one kept-open connection (realtime/db.py). When the server drops
    it: with the idle check due, the next call reconnects first; without it, that call fails
    with an error ack and the one after works."""
    from realtime import db

    socket = sio()
    await socket.connected(token_for(alice))
    assert (await socket.call("user-join", {}))["id"] == str(alice.id)

    monkeypatch.setattr(db, "IDLE_CHECK_SECONDS", 10**9)
    await _terminate(database_url, await db.orm(_backend_pid)())
    assert (await socket.call("user-join", {}))["error"]["code"] == "internal_error"
    assert (await socket.call("user-join", {}))["id"] == str(alice.id)

    monkeypatch.setattr(db, "IDLE_CHECK_SECONDS", 0)
    await _terminate(database_url, await db.orm(_backend_pid)())
    assert (await socket.call("user-join", {}))["id"] == str(alice.id)


# --- auth:renew (docs/protocol.md §4.3) ---------------------------------------------------------


def exp_of(token: str) -> str:
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    return iso(datetime.fromtimestamp(exp, tz=UTC))


async def test_renew_adopts_a_fresh_token_of_the_same_user(sio, alice):
    socket = sio()
    await socket.connected(token_for(alice, ttl_seconds=60))
    fresh = token_for(alice, ttl_seconds=600)
    assert await socket.call("auth:renew", {"token": fresh}) == {
        "ok": True,
        "expires_at": exp_of(fresh),
    }


def expired_token(user: User) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(from_time=token.current_time - timedelta(hours=1))
    return str(token)


def revoked_token(user: User) -> str:
    token = token_for(user)
    claims = jwt.decode(token, options={"verify_signature": False})
    RevokedToken.objects.create(
        jti=claims["jti"], user=user, expires_at=timezone.now() + timedelta(minutes=5)
    )
    return token


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda alice, bob: "garbage", "invalid_token"),
        (lambda alice, bob: expired_token(alice), "token_expired"),
        (lambda alice, bob: revoked_token(alice), "token_revoked"),
        (lambda alice, bob: token_for(bob), "forbidden"),
    ],
    ids=["garbage", "expired", "revoked", "other-user"],
)
async def test_a_refused_renewal_changes_nothing(sio, alice, bob, make, code):
    """The refusal acks the token's code, and the socket's own expiry still fires."""
    socket = sio()
    await socket.connected(token_for(alice, ttl_seconds=2))
    token = await database_sync_to_async(make)(alice, bob)
    ack = await socket.call("auth:renew", {"token": token})
    assert ack["error"]["code"] == code and ack["error"]["message"]
    name, data = await socket.next_event(timeout=4)
    assert (name, data["code"]) == ("error", "token_expired")
    assert await socket.closed_with() == 4401


async def test_renew_without_a_token_is_bad_request(sio, alice):
    socket = sio()
    await socket.connected(token_for(alice))
    assert (await socket.call("auth:renew", {}))["error"]["code"] == "bad_request"
    assert (await socket.call("auth:renew", {"token": ""}))["error"]["code"] == "bad_request"


async def test_a_renewed_socket_belongs_to_the_new_token(sio, alice):
    """A logout of the old token no longer kicks it; one of the new token does."""
    socket = sio()
    old, new = token_for(alice), token_for(alice)
    await socket.connected(old)
    assert (await socket.call("auth:renew", {"token": new}))["ok"] is True
    jti = {t: jwt.decode(t, options={"verify_signature": False})["jti"] for t in (old, new)}
    await push.adisconnect_token(alice.id, jti[old])
    # The marker takes the kick's path after it (the user's room, through this process's hub).
    await push.aemit_to_user(alice.id, "marker", None)
    assert await socket.no_event_before("marker", "error")
    await push.adisconnect_token(alice.id, jti[new])
    name, data = await socket.next_event()
    assert (name, data["code"]) == ("error", "token_revoked")
    assert await socket.recv() == "41"


# --- connection tickets (docs/protocol.md §4.2) -------------------------------------------------


def ticket_of(user: User) -> str:
    return tickets.issue(validate_access_token(token_for(user)))["ticket"]


async def test_a_ticket_opens_one_socketio_connection(sio, alice):
    ticket = await database_sync_to_async(ticket_of)(alice)
    first = sio(f"{SIO_PATH}&ticket={ticket}")
    reply = await first.connect(None)
    assert reply.startswith('0{"sid":'), reply
    again = sio(f"{SIO_PATH}&ticket={ticket}")
    reply = await again.connect({})
    assert json.loads(reply[1:])["data"] == {"code": "ticket_invalid"}
    assert await again.closed_with() == 4401


async def test_a_ticket_wins_over_the_other_handshake_credentials(sio, alice):
    headers = [(b"authorization", f"Bearer {token_for(alice)}".encode())]
    socket = sio(f"{SIO_PATH}&ticket=spent-or-never-issued", headers)
    reply = await socket.connect(None)
    assert json.loads(reply[1:])["data"] == {"code": "ticket_invalid"}


async def test_a_connect_token_leaves_the_ticket_unspent(sio, alice):
    ticket = await database_sync_to_async(ticket_of)(alice)
    await sio(f"{SIO_PATH}&ticket={ticket}").connected(token_for(alice))
    assert (await sio(f"{SIO_PATH}&ticket={ticket}").connect(None)).startswith('0{"sid":')


async def test_a_ticket_opens_one_yjs_connection(alice):
    note = await database_sync_to_async(Note.objects.create)(owner=alice, title="t")
    ticket = await database_sync_to_async(ticket_of)(alice)
    comms = []
    try:
        for _ in range(2):
            comms.append(
                WebsocketCommunicator(
                    websocket_application, f"/ws/yjs/note:{note.id}?ticket={ticket}"
                )
            )
            assert (await comms[-1].connect())[0]
        first = await comms[0].receive_output(3)
        assert first["type"] == "websocket.send" and first["bytes"][:2] == b"\x00\x00"  # step 1
        closed = await comms[1].receive_output(3)
        assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
        assert closed.get("reason") == "ticket_invalid"
    finally:
        for comm in comms:
            await comm.disconnect()

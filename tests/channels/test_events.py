"""What the channel API publishes, read back from the real in-memory channel layer.

A listener channel is subscribed to the rooms (``channel.<id>``, ``user.<id>``) exactly as a
process hub would be; each REST mutation must publish ``chorus.emit`` hub messages whose frame
is ``42["events:channel",{...}]`` only after its transaction commits, and ``chorus.join`` /
``chorus.leave`` to move the members' sockets.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from channels_app import services
from channels_app.permissions import channel_access
from tests.channels.conftest import MESSAGE_KEYS

from .conftest import assert_no_private_data, decode_frame

pytestmark = pytest.mark.django_db(transaction=True)


def room(kind: str, obj) -> str:
    key = obj["id"] if isinstance(obj, dict) else obj.pk
    return f"{kind}.{key}"


def only_event(listener) -> dict:
    events = listener.events()
    assert len(events) == 1, events
    name, payload = events[0]
    assert name == "events:channel"
    assert_no_private_data(payload)
    return payload


def assert_envelope(payload: dict, channel: dict, kind: str, actor, message_id=None) -> dict:
    expected_keys = {"channel_id", "data", "user"} | ({"message_id"} if message_id else set())
    assert set(payload) == expected_keys
    assert payload["channel_id"] == channel["id"]
    if message_id:
        assert payload["message_id"] == message_id
    assert set(payload["data"]) == {"type", "data"}
    assert payload["data"]["type"] == kind
    assert payload["user"] == {"id": str(actor.pk), "name": actor.display_name}
    return payload["data"]["data"]


@pytest.fixture
def channel(make_channel, owner, member) -> dict:
    return make_channel(owner, members=[member])


# --- messages ---------------------------------------------------------------------------------


def test_post_emits_message_with_the_rest_payload(client_of, listen, channel, member):
    listener = listen(room("channel", channel))
    response = client_of(member).post(
        f"/api/channels/{channel['id']}/messages/", {"content": "hello"}
    )
    payload = only_event(listener)
    body = response.json()
    data = assert_envelope(payload, channel, "message", member, message_id=body["id"])
    assert set(data) == MESSAGE_KEYS
    assert data == body


def test_reply_emits_message_then_message_reply_with_the_parent(
    client_of, listen, channel, post, owner, member
):
    root = post(owner, channel["id"], "root")
    listener = listen(room("channel", channel))
    reply = post(member, channel["id"], "reply", parent_id=root["id"])
    events = listener.events()
    assert [p["data"]["type"] for _, p in events] == ["message", "message:reply"]
    first = assert_envelope(events[0][1], channel, "message", member, message_id=reply["id"])
    assert first["parent_id"] == root["id"]
    parent = assert_envelope(events[1][1], channel, "message:reply", member, message_id=root["id"])
    assert set(parent) == MESSAGE_KEYS
    assert parent["id"] == root["id"] and parent["reply_count"] == 1
    for _, payload in events:
        assert_no_private_data(payload)


def test_edit_and_delete_emit_update_and_delete(client_of, listen, channel, post, member):
    message = post(member, channel["id"], "draft")
    url = f"/api/channels/{channel['id']}/messages/{message['id']}/"
    listener = listen(room("channel", channel))
    client_of(member).patch(url, {"content": "final"})
    data = assert_envelope(
        only_event(listener), channel, "message:update", member, message_id=message["id"]
    )
    assert data["content"] == "final" and data["edited_at"] is not None
    client_of(member).delete(url)
    data = assert_envelope(
        only_event(listener), channel, "message:delete", member, message_id=message["id"]
    )
    assert data["content"] == "" and data["deleted_at"] is not None


def test_reactions_emit_add_and_remove_once(client_of, listen, channel, post, owner, member):
    message = post(owner, channel["id"], "react")
    url = f"/api/channels/{channel['id']}/messages/{message['id']}/reactions/"
    listener = listen(room("channel", channel))
    client_of(member).post(url, {"name": "fire"})
    data = assert_envelope(
        only_event(listener), channel, "message:reaction:add", member, message_id=message["id"]
    )
    assert data["name"] == "fire"
    assert data["reactions"] == [{"name": "fire", "count": 1, "user_ids": [str(member.pk)]}]
    client_of(member).post(url, {"name": "fire"})  # already there: nothing changes
    assert listener.events() == []
    client_of(member).delete(url, {"name": "fire"})
    data = assert_envelope(
        only_event(listener), channel, "message:reaction:remove", member, message_id=message["id"]
    )
    assert data["name"] == "fire" and data["reactions"] == []
    client_of(member).delete(url, {"name": "fire"})
    assert listener.events() == []


def test_refused_and_invalid_requests_emit_nothing(client_of, listen, channel, post, owner, member):
    message = post(owner, channel["id"], "mine")
    listener = listen(room("channel", channel))
    client = client_of(member)
    assert client.post(f"/api/channels/{channel['id']}/messages/", {}).status_code == 400
    url = f"/api/channels/{channel['id']}/messages/{message['id']}/"
    assert client.patch(url, {"content": "not yours"}).status_code == 403
    assert listener.events() == []


# --- channels ---------------------------------------------------------------------------------


@pytest.mark.django_db  # not transactional: the on-commit callbacks are captured, run later
def test_create_joins_members_sockets_and_emits_channel_created(
    client_of, listen, owner, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_of(owner).post(
            "/api/channels/", {"type": "group", "name": "team", "member_ids": [str(member.pk)]}
        )
    channel = response.json()
    channel_room = room("channel", channel)
    listener = listen(channel_room, room("user", owner), room("user", member))
    for callback in callbacks:  # run after the listener exists: the room is new
        callback()
    received = listener.drain()
    # No room emit (nobody's sockets are in a new room): each member's join carries the
    # channel:created notice, delivered by the hub after that join completes.
    assert [m["type"] for m in received] == ["chorus.join", "chorus.join"]
    assert {(m["room"], m["target"]) for m in received} == {
        (room("user", owner), channel_room),
        (room("user", member), channel_room),
    }
    for join in received:
        name, payload = decode_frame(join["frame"])
        assert name == "events:channel"
        data = assert_envelope(payload, channel, "channel:created", owner)
        assert data["id"] == channel["id"] and data["name"] == "team"
        assert data["member_count"] == 2
        assert "membership" not in data and "unread_count" not in data
        assert_no_private_data(payload)


def test_existing_dm_emits_nothing(client_of, listen, make_channel, owner, member):
    dm = make_channel(owner, type="dm", members=[member])
    listener = listen(room("channel", dm), room("user", owner), room("user", member))
    again = client_of(member).post("/api/channels/", {"type": "dm", "member_ids": [str(owner.pk)]})
    assert again.status_code == 200
    assert listener.drain() == []


def test_update_and_archive_emit_channel_update(client_of, listen, channel, owner, member):
    listener = listen(room("channel", channel), room("user", owner), room("user", member))
    url = f"/api/channels/{channel['id']}/"
    client_of(owner).patch(url, {"name": "renamed"})
    assert assert_envelope(only_event(listener), channel, "channel:update", owner)["name"] == (
        "renamed"
    )
    # Archiving takes every member's sockets out of the room, each told by a notice.
    client_of(owner).patch(url, {"archived": True})
    received = listener.drain()
    assert [m["type"] for m in received] == ["chorus.leave", "chorus.leave"]
    assert {m["target"] for m in received} == {room("channel", channel)}
    for leave in received:
        data = assert_envelope(decode_frame(leave["frame"])[1], channel, "channel:update", owner)
        assert data["archived_at"] is not None


def test_unarchive_puts_members_sockets_back(client_of, listen, channel, owner, member):
    url = f"/api/channels/{channel['id']}/"
    client_of(owner).patch(url, {"archived": True})
    listener = listen(room("user", member))
    client_of(owner).patch(url, {"archived": False})
    joins = [m for m in listener.drain() if m["type"] == "chorus.join"]
    assert [m["target"] for m in joins] == [room("channel", channel)]
    data = assert_envelope(decode_frame(joins[0]["frame"])[1], channel, "channel:update", owner)
    assert data["archived_at"] is None


def test_delete_emits_channel_delete_then_removes_sockets(
    client_of, listen, channel, owner, member
):
    channel_room = room("channel", channel)
    listener = listen(channel_room, room("user", member))
    assert client_of(owner).delete(f"/api/channels/{channel['id']}/").status_code == 204
    received = listener.drain()
    assert [m["type"] for m in received] == ["chorus.emit", "chorus.leave"]
    name, payload = decode_frame(received[0]["frame"])
    assert name == "events:channel"
    assert assert_envelope(payload, channel, "channel:delete", owner) == {"id": channel["id"]}
    assert received[1]["target"] == channel_room and received[1]["frame"] is None


# --- members ----------------------------------------------------------------------------------


def test_add_member_joins_their_sockets_and_emits_member_add(
    client_of, listen, channel, owner, outsider
):
    channel_room = room("channel", channel)
    listener = listen(channel_room, room("user", outsider))
    client_of(owner).post(f"/api/channels/{channel['id']}/members/", {"user_id": str(outsider.pk)})
    received = listener.drain()
    # The room hears first; then the new member's sockets join and get the same event.
    assert [m["type"] for m in received] == ["chorus.emit", "chorus.join"]
    assert received[1]["target"] == channel_room
    for frame in (received[0]["frame"], received[1]["frame"]):
        name, payload = decode_frame(frame)
        assert name == "events:channel"
        data = assert_envelope(payload, channel, "member:add", owner)
        assert data["user"] == {"id": str(outsider.pk), "name": "Otto"}
        assert data["role"] == "member"
        assert_no_private_data(payload)


def test_role_change_emits_member_update(client_of, listen, channel, owner, member):
    listener = listen(room("channel", channel))
    client_of(owner).patch(
        f"/api/channels/{channel['id']}/members/{member.pk}/", {"role": "manager"}
    )
    data = assert_envelope(only_event(listener), channel, "member:update", owner)
    assert data["role"] == "manager" and data["user"]["id"] == str(member.pk)


def test_private_flags_and_read_receipts_emit_nothing(client_of, listen, channel, member):
    listener = listen(room("channel", channel), room("user", member))
    client = client_of(member)
    client.patch(f"/api/channels/{channel['id']}/members/{member.pk}/", {"is_muted": True})
    client.post(f"/api/channels/{channel['id']}/read/")
    assert listener.drain() == []


def test_remove_member_kicks_their_sockets_with_notice_before_the_room_event(
    client_of, listen, channel, owner, member
):
    channel_room = room("channel", channel)
    listener = listen(channel_room, room("user", member))
    client_of(owner).delete(f"/api/channels/{channel['id']}/members/{member.pk}/")
    received = listener.drain()
    assert [m["type"] for m in received] == ["chorus.leave", "chorus.emit"]
    leave = received[0]
    assert leave["room"] == room("user", member) and leave["target"] == channel_room
    name, notice = decode_frame(leave["frame"])
    assert name == "events:channel"
    data = assert_envelope(notice, channel, "member:remove", owner)
    assert data["user"]["id"] == str(member.pk) and data["left"] is False
    assert decode_frame(received[1]["frame"]) == (name, notice)
    assert_no_private_data(notice)


def test_member_leaving_is_marked_left(client_of, listen, channel, member):
    listener = listen(room("channel", channel))
    client_of(member).delete(f"/api/channels/{channel['id']}/members/{member.pk}/")
    data = assert_envelope(only_event(listener), channel, "member:remove", member)
    assert data["left"] is True


# --- transactions -----------------------------------------------------------------------------


def test_rolled_back_transaction_emits_nothing(listen, channel, member):
    from channels_app.models import Message

    listener = listen(room("channel", channel), room("user", member))
    access = channel_access(member, channel["id"])
    with pytest.raises(RuntimeError), transaction.atomic():
        services.post_message(access, content="never", data={}, parent=None)
        services.remove_member(access, member.pk)
        raise RuntimeError("roll back")
    assert listener.drain() == []
    assert not Message.objects.exists()
    services.post_message(access, content="kept", data={}, parent=None)  # control: it emits
    assert [p["data"]["type"] for _, p in listener.events()] == ["message"]


def test_emits_wait_for_the_outer_transaction(listen, channel, member):
    listener = listen(room("channel", channel))
    access = channel_access(member, channel["id"])
    with transaction.atomic():
        services.post_message(access, content="later", data={}, parent=None)
        assert listener.drain() == []
    assert len(listener.events()) == 1


# --- privacy across every event type ----------------------------------------------------------


def test_no_private_user_field_in_any_payload(
    client_of, listen, make_channel, post, owner, member, outsider
):
    channel = make_channel(owner, members=[member])
    listener = listen(room("channel", channel), room("user", outsider))
    base = f"/api/channels/{channel['id']}/"
    root = post(member, channel["id"], "root")
    reply = post(owner, channel["id"], "reply", parent_id=root["id"])
    client_of(owner).patch(f"{base}messages/{reply['id']}/", {"content": "edited"})
    client_of(member).post(f"{base}messages/{root['id']}/reactions/", {"name": "fire"})
    client_of(member).delete(f"{base}messages/{root['id']}/reactions/", {"name": "fire"})
    client_of(owner).delete(f"{base}messages/{reply['id']}/")
    client_of(owner).post(f"{base}members/", {"user_id": str(outsider.pk)})
    client_of(owner).patch(f"{base}members/{outsider.pk}/", {"role": "manager"})
    client_of(owner).delete(f"{base}members/{outsider.pk}/")
    client_of(owner).patch(base, {"name": "renamed"})
    client_of(owner).delete(base)
    received = listener.drain()
    frames = [m["frame"] for m in received if m.get("frame")]
    kinds = {decode_frame(f)[1]["data"]["type"] for f in frames}
    assert kinds == {
        "message",
        "message:reply",
        "message:update",
        "message:delete",
        "message:reaction:add",
        "message:reaction:remove",
        "member:add",
        "member:update",
        "member:remove",
        "channel:update",
        "channel:delete",
    }
    for frame in frames:
        assert_no_private_data(decode_frame(frame)[1])
        for needle in ("SECRET", "private.example", "1990-04-05"):
            assert needle not in frame

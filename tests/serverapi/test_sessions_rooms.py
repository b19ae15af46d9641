"""Operations on one session (publish, call, disconnect), broadcast, presence and app rooms,
seen from in-process Socket.IO sockets (the real consumer; HTTP through the Django stack)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from asgiref.sync import sync_to_async

from accounts.tokens import issue_access_token

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN_SID = "AAAAAAAAAAAAAAAAAAAA"


async def connected(sio, user) -> tuple[object, str]:
    socket = sio()
    sid = await socket.connected(await sync_to_async(issue_access_token)(user))
    return socket, sid


async def test_publish_to_a_session_reaches_that_socket_only(sio, server_api, alice):
    (one, sid), (other, _) = await connected(sio, alice), await connected(sio, alice)
    api = await server_api("publish")
    answer = await api.post(f"sessions/{sid}/events/", {"event": "only", "data": {"n": 1}})
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert await one.next_event() == ("only", {"n": 1})
    await api.post(f"users/{alice.id}/events/", {"event": "marker"})
    assert await other.no_event_before("marker", "only")
    missing = await api.post(f"sessions/{UNKNOWN_SID}/events/", {"event": "only"})
    assert (missing.status, missing.code) == (404, "session_not_found")


async def test_broadcast_reaches_every_socket(sio, server_api, alice, bob):
    (a, _), (b, _) = await connected(sio, alice), await connected(sio, bob)
    answer = await (await server_api("publish")).post("broadcast/", {"event": "all", "data": 1})
    assert answer.status == 200
    assert await a.next_event() == ("all", 1)
    assert await b.next_event() == ("all", 1)


async def answer_next_call(socket, answer: object) -> dict:
    """Read frames until an EVENT with an ack id; answer it; return the event's data."""
    while True:
        frame = await socket.recv(5)
        match = re.match(r"^42(\d+)(\[.*)$", frame, re.S)
        if match:
            name, data = json.loads(match.group(2))[:2]
            await socket.send(f"43{match.group(1)}{json.dumps([answer])}")
            return {"event": name, "data": data}


async def test_a_call_returns_the_clients_answer(sio, server_api, alice):
    socket, sid = await connected(sio, alice)
    api = await server_api("call")
    call = asyncio.create_task(
        api.post(f"sessions/{sid}/call/", {"event": "confirm", "data": {"q": "ok?"}})
    )
    asked = await answer_next_call(socket, {"yes": True})
    assert asked == {"event": "confirm", "data": {"q": "ok?"}}
    answer = await call
    assert (answer.status, answer.body) == (200, {"answer": {"yes": True}})


async def test_a_call_nobody_answers_times_out_with_504(sio, server_api, alice):
    _, sid = await connected(sio, alice)  # reads nothing, answers nothing
    answer = await (await server_api("call")).post(
        f"sessions/{sid}/call/", {"event": "confirm", "timeout": 0.2}
    )
    assert (answer.status, answer.code) == (504, "call_timeout")


async def test_call_refusals(server_api, settings):
    settings.SERVER_API_CALL_TIMEOUT_MAX = 5
    api = await server_api("call")
    unknown = await api.post(f"sessions/{UNKNOWN_SID}/call/", {"event": "confirm"})
    assert (unknown.status, unknown.code) == (404, "session_not_found")
    for timeout in (6, 0, -1, "soon"):
        body = {"event": "confirm", "timeout": timeout}
        answer = await api.post(f"sessions/{UNKNOWN_SID}/call/", body)
        assert (answer.status, answer.code) == (400, "bad_request"), timeout
        assert "timeout" in answer.body["error"]["fields"]
    no_scope = await (await server_api("publish")).post(
        f"sessions/{UNKNOWN_SID}/call/", {"event": "confirm"}
    )
    assert (no_scope.status, no_scope.code) == (403, "missing_scope")


async def test_disconnect_a_session(sio, server_api, alice):
    (one, sid), (other, _) = await connected(sio, alice), await connected(sio, alice)
    api = await server_api("disconnect")
    answer = await api.post(f"sessions/{sid}/disconnect/", {"code": "bye", "message": "Later."})
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert await one.next_event() == ("error", {"code": "bye", "message": "Later."})
    assert await one.recv() == "41"
    assert await other.call("heartbeat", {}) == {}
    missing = await api.post(f"sessions/{UNKNOWN_SID}/disconnect/", {})
    assert (missing.status, missing.code) == (404, "session_not_found")


async def test_presence_lists_the_sessions_with_public_profiles(sio, server_api, alice):
    (_, first), (_, second) = await connected(sio, alice), await connected(sio, alice)
    answer = await (await server_api("presence")).get(f"rooms/user.{alice.id}/presence/")
    assert answer.status == 200
    assert answer.body["room"] == f"user.{alice.id}"
    sessions = answer.body["sessions"]
    assert {s["sid"] for s in sessions} == {first, second}
    for session in sessions:
        assert session["user"] == {"id": str(alice.id), "name": "Alice", "role": "user"}
        assert session["instance"] and session["connected_at"].endswith("Z")
    assert "private bio" not in json.dumps(answer.body)


async def test_app_room_membership(sio, server_api, alice, bob):
    (a, _), (b, _) = await connected(sio, alice), await connected(sio, bob)
    api = await server_api("publish")
    added = await api.post(
        "rooms/app.chat-42/members/",
        {"user": str(alice.id), "notice": {"event": "joined", "data": {"room": "chat-42"}}},
    )
    assert (added.status, added.body) == (200, {"ok": True})
    assert await a.next_event() == ("joined", {"room": "chat-42"})
    await api.post("rooms/app.chat-42/events/", {"event": "said", "data": 1})
    assert await a.next_event() == ("said", 1)
    await api.post(f"users/{bob.id}/events/", {"event": "marker"})
    assert await b.no_event_before("marker", "said")  # bob is not in the room
    removed = await api.delete(f"rooms/app.chat-42/members/{alice.id}/")
    assert (removed.status, removed.body) == (200, {"ok": True})
    await api.post("rooms/app.chat-42/events/", {"event": "said", "data": 2})
    await api.post(f"users/{alice.id}/events/", {"event": "marker"})
    assert await a.no_event_before("marker", "said")


@pytest.mark.parametrize("room", ["channel.1", "user.x", "app.", "app.bad name", "app." + "x" * 81])
async def test_membership_is_for_app_rooms_only(server_api, alice, room):
    api = await server_api("publish")
    added = await api.post(f"rooms/{room}/members/", {"user": str(alice.id)})
    assert (added.status, added.code) == (400, "bad_request")
    assert "room" in added.body["error"]["fields"]
    removed = await api.delete(f"rooms/{room}/members/{alice.id}/")
    assert (removed.status, removed.code) == (400, "bad_request")


async def test_membership_of_an_unknown_user_is_404(server_api):
    api = await server_api("publish")
    unknown = "00000000-0000-0000-0000-000000000000"
    added = await api.post("rooms/app.x/members/", {"user": unknown})
    assert (added.status, added.code) == (404, "user_not_found")
    removed = await api.delete(f"rooms/app.x/members/{unknown}/")
    assert (removed.status, removed.code) == (404, "user_not_found")
    bad = await api.post("rooms/app.x/members/", {"user": "nope"})
    assert (bad.status, bad.code) == (400, "bad_request")

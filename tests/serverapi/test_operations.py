"""What the server API's operations do to live sockets (in-process Socket.IO sockets through
the real consumer; the HTTP calls go through the whole Django stack)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from accounts.tokens import issue_access_token, validate_access_token

pytestmark = pytest.mark.django_db(transaction=True)


async def token_for(user) -> str:
    return await sync_to_async(issue_access_token)(user)


async def test_publish_to_a_user_reaches_every_socket_of_that_user_only(
    sio, server_api, alice, bob
):
    a1, a2, b = sio(), sio(), sio()
    for socket, user in ((a1, alice), (a2, alice), (b, bob)):
        await socket.connected(await token_for(user))
    api = await server_api("publish")
    for n in range(3):
        answer = await api.post(f"users/{alice.id}/events/", {"event": "events", "data": n})
        assert answer.status == 200
    for socket in (a1, a2):
        assert [await socket.next_event() for _ in range(3)] == [("events", n) for n in range(3)]
    await api.post(f"users/{bob.id}/events/", {"event": "marker"})
    assert await b.no_event_before("marker", "events")


async def test_data_is_any_json_and_without_it_the_event_has_no_argument(sio, server_api, alice):
    socket = sio()
    await socket.connected(await token_for(alice))
    api = await server_api("publish")
    await api.post(f"users/{alice.id}/events/", {"event": "ping"})
    await api.post(f"users/{alice.id}/events/", {"event": "list", "data": [1, "two", None]})
    # (this client resumes sessions: each event ends with its recovery offset)
    assert (await socket.recv()).startswith('42["ping","')  # the offset only
    assert await socket.next_event() == ("list", [1, "two", None])


async def test_disconnect_a_user_with_code_and_message(sio, server_api, alice, bob):
    a, b = sio(), sio()
    await a.connected(await token_for(alice))
    await b.connected(await token_for(bob))
    answer = await (await server_api("disconnect")).post(
        f"users/{alice.id}/disconnect/", {"code": "maintenance", "message": "Back soon."}
    )
    assert (answer.status, answer.body) == (200, {"ok": True})
    assert await a.next_event() == ("error", {"code": "maintenance", "message": "Back soon."})
    assert await a.recv() == "41"
    assert await b.call("heartbeat", {}) == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"code": "Not A Code"}, "code"), ({"message": "x" * 201}, "message"), ({"code": 3}, "code")],
)
async def test_disconnect_refuses_a_bad_code_or_message(server_api, alice, body, field):
    answer = await (await server_api("disconnect")).post(f"users/{alice.id}/disconnect/", body)
    assert (answer.status, answer.code) == (400, "bad_request")
    assert field in answer.body["error"]["fields"]


async def test_revoke_tokens_voids_them_and_kicks_the_sockets(sio, server_api, alice):
    token = await token_for(alice)
    socket = sio()
    await socket.connected(token)
    answer = await (await server_api("disconnect")).post(f"users/{alice.id}/revoke-tokens/")
    assert (answer.status, answer.body) == (200, {"ok": True})
    name, data = await socket.next_event()
    assert (name, data["code"]) == ("error", "token_revoked")
    with pytest.raises(Exception, match="revoked"):
        await sync_to_async(validate_access_token)(token)


async def test_a_batch_sends_its_events_in_order_to_users_and_rooms(sio, server_api, alice, bob):
    a, b = sio(), sio()
    await a.connected(await token_for(alice))
    await b.connected(await token_for(bob))
    api = await server_api("publish")
    events = [{"user": str(alice.id), "event": "delta", "data": n} for n in range(5)]
    events.insert(2, {"room": f"user.{bob.id}", "event": "note", "data": "for bob"})
    answer = await api.post("batch/", {"events": events})
    assert (answer.status, answer.body) == (200, {"ok": True, "events": 6})
    assert [await a.next_event() for _ in range(5)] == [("delta", n) for n in range(5)]
    assert await b.next_event() == ("note", "for bob")


@pytest.mark.parametrize(
    ("events", "status", "code"),
    [
        ([], 400, "bad_request"),
        ([{"event": "e", "data": 1}], 400, "bad_request"),  # no target
        ([{"event": "e", "user": "USER", "room": "app.x"}], 400, "bad_request"),  # two
        ([{"event": "e", "room": "doc.note.1"}], 400, "bad_request"),  # not addressable
        ([{"event": "connect", "user": "USER"}], 400, "bad_request"),  # reserved name
        ([{"event": "e", "user": "00000000-0000-0000-0000-000000000000"}], 404, "user_not_found"),
        ([{"event": "e", "user": "USER"}] * 101, 400, "bad_request"),  # over BATCH_MAX
    ],
)
async def test_a_bad_batch_is_refused_whole_and_sends_nothing(
    sio, server_api, alice, events, status, code
):
    socket = sio()
    await socket.connected(await token_for(alice))
    api = await server_api("publish")
    good = {"event": "sent", "user": str(alice.id)}
    body = [{**e, "user": str(alice.id)} if e.get("user") == "USER" else e for e in events]
    answer = await api.post("batch/", {"events": [good, *body]} if body else {"events": []})
    assert (answer.status, answer.code) == (status, code)
    await api.post(f"users/{alice.id}/events/", {"event": "marker"})
    assert await socket.no_event_before("marker", "sent")


async def test_a_batch_needs_the_publish_scope(server_api, alice):
    answer = await (await server_api("call")).post(
        "batch/", {"events": [{"event": "e", "user": str(alice.id)}]}
    )
    assert (answer.status, answer.code) == (403, "missing_scope")

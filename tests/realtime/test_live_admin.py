"""The live admin over HTTP (Django's test client as staff): who is online with kick and
revoke, and the open documents with their editors (accounts/live_admin.py,
notes/live_admin.py). Real sockets (Socket.IO and y-websocket through Channels'
communicator) on this process's hub and in-process registry; across instances:
tests/live/test_live_admin_live.py."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from django.urls import reverse

from accounts.models import User
from accounts.tokens import issue_access_token
from channels_app.models import Channel, ChannelMember
from notes.models import Note, NoteGrant, Permission, PrincipalType
from realtime.routing import websocket_application

pytestmark = [pytest.mark.django_db(transaction=True)]

ONLINE = "/admin/accounts/user/online/"
ACT = "/admin/accounts/user/online/act/"
OPEN = "/admin/notes/note/open/"


@pytest.fixture
async def staff(one_process, make_user) -> AsyncClient:
    root = await database_sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    client = AsyncClient()
    await client.aforce_login(root)
    return client


@pytest.fixture
def note(alice, bob) -> Note:
    note = Note.objects.create(owner=alice, title="Plan for the live admin")
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.USER, user=bob, permission=Permission.WRITE
    )
    return note


async def yws(note: Note, user: User, address: str = "192.0.2.20") -> WebsocketCommunicator:
    url = f"/ws/yjs/note:{note.id}?token={await database_sync_to_async(issue_access_token)(user)}"
    comm = WebsocketCommunicator(websocket_application, url)
    comm.scope["client"] = [address, 40000]
    assert (await comm.connect())[0]
    await comm.receive_from()  # the server's sync step 1: the connection is in the document
    return comm


async def until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
    return result


def rows(html: str) -> list[str]:
    return [part.split("</tr>")[0] for part in html.split('<tr class="session"')[1:]]


async def test_online_lists_each_socket_with_user_instance_endpoint_transport_and_address(
    staff, sio, alice, bob, note
):
    socket = sio()
    socket.comm.scope["client"] = ["192.0.2.10", 40000]
    sid = await socket.connected(await database_sync_to_async(issue_access_token)(alice))
    editor = await yws(note, bob)
    response = await staff.get(ONLINE)
    assert response.status_code == 200
    html = response.content.decode()
    [alice_row] = [row for row in rows(html) if f'data-sid="{sid}"' in row]
    [bob_row] = [row for row in rows(html) if "y-websocket" in row]
    expected = (
        (alice_row, alice, "socket.io", "192.0.2.10"),
        (bob_row, bob, "y-websocket", "192.0.2.20"),
    )
    for row, user, endpoint, address in expected:
        cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
        assert user.username in cells[0]
        assert cells[1:4] == [_instance(), endpoint, "websocket"]
        assert cells[4].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
        assert cells[5] == address
    await editor.disconnect()


def _instance() -> str:
    from realtime.consumers.base import instance_id

    return instance_id()


async def test_the_address_reaches_no_other_user(staff, sio, alice, bob):
    """A record's client address is the admin's alone: the presence announcement a channel
    member gets of a user coming online carries the profile and nothing of the record."""
    channel = await database_sync_to_async(Channel.objects.create)(
        name="team", type="group", owner=alice
    )
    for user in (alice, bob):
        await database_sync_to_async(ChannelMember.objects.create)(channel=channel, user=user)
    watcher = sio()
    await watcher.connected(await database_sync_to_async(issue_access_token)(bob))
    await watcher.call("user-join", {})
    socket = sio()
    socket.comm.scope["client"] = ["192.0.2.99", 40000]
    await socket.connected(await database_sync_to_async(issue_access_token)(alice))
    name, data = await watcher.next_event()
    assert (name, data["data"]["type"]) == ("events:channel", "presence")
    assert "192.0.2.99" not in json.dumps(data) and "address" not in json.dumps(data)
    assert "192.0.2.99" in (await staff.get(ONLINE)).content.decode()  # the admin has it


async def test_the_pages_are_for_staff_with_permissions_only(one_process, make_user, alice):
    plain = await database_sync_to_async(make_user)("plain")
    clerk = await database_sync_to_async(make_user)("clerk", is_staff=True)  # no permissions
    kick = {"action": "revoke", "user_id": str(alice.pk)}
    for user, status in ((None, 302), (plain, 302), (clerk, 403)):
        client = AsyncClient()
        if user is not None:
            await client.aforce_login(user)
        for response in (
            await client.get(ONLINE),
            await client.get(OPEN),
            await client.post(ACT, kick),
        ):
            assert response.status_code == status
            if status == 302:
                assert response["Location"].startswith("/admin/login/")
    refreshed = await database_sync_to_async(User.objects.get)(pk=alice.pk)
    assert refreshed.tokens_valid_after == alice.tokens_valid_after  # nothing was revoked


async def test_kick_one_socket_leaves_the_others(staff, sio, alice):
    token = await database_sync_to_async(issue_access_token)(alice)
    kicked, kept = sio(), sio()
    sid = await kicked.connected(token)
    await kept.connected(token)
    response = await staff.post(ACT, {"action": "kick_socket", "sid": sid})
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:accounts_user_online"
    )
    name, data = await kicked.next_event()
    assert (name, data["code"]) == ("error", "kicked")
    assert await kept.call("heartbeat") == {}


async def test_kick_a_y_websocket_connection_by_sid(staff, bob, note):
    editor = await yws(note, bob)

    async def its_sid():
        html = (await staff.get(ONLINE)).content.decode()
        return [r.split('"')[1] for r in rows(html) if "y-websocket" in r]

    [sid] = await until(its_sid)
    response = await staff.post(ACT, {"action": "kick_socket", "sid": sid})
    assert response.status_code == 302
    while (output := await editor.receive_output(2))["type"] != "websocket.close":
        pass
    assert output["code"] == 4401


async def test_kick_user_and_revoke_act_on_every_socket_of_the_user(staff, sio, alice, bob):
    token = await database_sync_to_async(issue_access_token)(alice)
    first, second, bystander = sio(), sio(), sio()
    await first.connected(token)
    await second.connected(token)
    await bystander.connected(await database_sync_to_async(issue_access_token)(bob))
    response = await staff.post(ACT, {"action": "kick_user", "user_id": str(alice.pk)})
    assert response.status_code == 302
    for socket in (first, second):
        name, data = await socket.next_event()
        assert (name, data["code"]) == ("error", "kicked")

    again = sio()
    await again.connected(token)  # a kick is not a ban: the token still works
    response = await staff.post(ACT, {"action": "revoke", "user_id": str(alice.pk)})
    assert response.status_code == 302
    name, data = await again.next_event()
    assert (name, data["code"]) == ("error", "token_revoked")
    refused = await sio().connect({"token": token})
    assert refused.startswith("4") and "token_revoked" in refused  # CONNECT_ERROR
    assert await bystander.call("heartbeat") == {}


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"action": "explode", "user_id": "x"},
        {"action": "kick_socket"},
        {"action": "kick_socket", "sid": "no-such-sid"},
        {"action": "kick_user", "user_id": "not-a-uuid"},
        {"action": "revoke", "user_id": "00000000-0000-4000-8000-000000000000"},
    ],
)
async def test_bad_input_is_refused_with_400_and_changes_nothing(staff, sio, alice, form):
    socket = sio()
    await socket.connected(await database_sync_to_async(issue_access_token)(alice))
    before = (await database_sync_to_async(User.objects.get)(pk=alice.pk)).tokens_valid_after
    response = await staff.post(ACT, form)
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "bad_request"
    assert await socket.call("heartbeat") == {}
    after = (await database_sync_to_async(User.objects.get)(pk=alice.pk)).tokens_valid_after
    assert after == before


async def test_the_model_lists_link_to_the_live_pages(staff):
    users = (await staff.get("/admin/accounts/user/")).content.decode()
    notes = (await staff.get("/admin/notes/note/")).content.decode()
    assert f'href="{ONLINE}"' in users and f'href="{OPEN}"' in notes


async def test_the_online_page_only_reads(staff):
    response = await staff.post(ONLINE, {"action": "kick_user"})
    assert response.status_code == 405


async def test_open_documents_list_each_note_with_its_editors(staff, sio, alice, bob, note):
    editor = await yws(note, bob)
    socket = sio()
    await socket.connected(await database_sync_to_async(issue_access_token)(alice))
    joined = await socket.call("ydoc:document:join", {"document_id": f"note:{note.id}"})
    assert "state" in joined, joined

    async def both_listed():
        html = (await staff.get(OPEN)).content.decode()
        return html.count('class="editor"') == 2 and html

    html = await until(both_listed)
    assert note.title in html and f'data-note="{note.id}"' in html
    assert "Bob" in html and "Alice" in html
    assert "y-websocket" in html and "socket.io" in html
    await editor.disconnect()
    await socket.call("ydoc:document:leave", {"document_id": f"note:{note.id}"})

    async def none_open():
        return "No document is open." in (await staff.get(OPEN)).content.decode()

    await until(none_open)

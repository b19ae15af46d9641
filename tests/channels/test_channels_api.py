"""Channels through HTTP: create, list, retrieve, update, archive, delete; who may do what."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync

from accounts.models import Role, User
from channels_app.models import Channel, ChannelMember, Message
from realtime.sessions import SessionRecord, get_registry

pytestmark = pytest.mark.django_db


def error_code(response) -> str:
    return response.json()["error"]["code"]


# --- create -----------------------------------------------------------------------------------


def test_create_group_makes_creator_owner_and_adds_members(client_of, owner, member):
    response = client_of(owner).post(
        "/api/channels/", {"type": "group", "name": "team", "member_ids": [str(member.pk)]}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "group"
    assert body["is_private"] is True
    assert body["owner"] == {"id": str(owner.pk), "name": "Olive"}
    assert body["member_count"] == 2
    assert body["membership"]["role"] == "owner"
    assert body["unread_count"] == 0
    roles = dict(ChannelMember.objects.filter(channel_id=body["id"]).values_list("user_id", "role"))
    assert roles == {owner.pk: "owner", member.pk: "member"}


def test_create_standard_channel_defaults_to_public(client_of, owner):
    response = client_of(owner).post("/api/channels/", {"name": "general"})
    assert response.status_code == 201
    assert response.json()["type"] == "standard"
    assert response.json()["is_private"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"type": "group", "name": ""},
        {"type": "standard"},
        {"type": "nonsense", "name": "x"},
        {"type": "group", "name": "x", "member_ids": ["not-a-uuid"]},
        {"type": "group", "name": "x", "member_ids": ["00000000-0000-0000-0000-000000000000"]},
        {"type": "dm", "member_ids": []},
        {"type": "group", "name": "x", "is_private": False},
        {"type": "standard", "name": "x", "data": [1, 2]},
    ],
)
def test_create_with_bad_input_is_400_and_creates_nothing(client_of, owner, body):
    response = client_of(owner).post("/api/channels/", body)
    assert response.status_code == 400, response.content
    assert error_code(response) == "bad_request"
    assert not Channel.objects.exists()


def test_create_refuses_pending_member(client_of, owner, make_user):
    pending = make_user("pat", role=Role.PENDING)
    response = client_of(owner).post(
        "/api/channels/", {"type": "group", "name": "x", "member_ids": [str(pending.pk)]}
    )
    assert response.status_code == 400
    assert "member_ids" in response.json()["error"]["fields"]
    assert not Channel.objects.exists()


def test_dm_is_created_once_per_pair(client_of, owner, member):
    first = client_of(owner).post("/api/channels/", {"type": "dm", "member_ids": [str(member.pk)]})
    assert first.status_code == 201
    again = client_of(owner).post("/api/channels/", {"type": "dm", "member_ids": [str(member.pk)]})
    assert again.status_code == 200
    reverse = client_of(member).post(
        "/api/channels/", {"type": "dm", "member_ids": [str(owner.pk)]}
    )
    assert reverse.status_code == 200
    assert first.json()["id"] == again.json()["id"] == reverse.json()["id"]
    assert Channel.objects.filter(type="dm").count() == 1
    channel = Channel.objects.get()
    assert channel.dm_key == ":".join(sorted([str(owner.pk), str(member.pk)]))
    assert reverse.json()["membership"]["role"] == "member"


def test_dm_needs_exactly_one_other_user(client_of, owner, member, outsider):
    client = client_of(owner)
    both = client.post(
        "/api/channels/", {"type": "dm", "member_ids": [str(member.pk), str(outsider.pk)]}
    )
    alone = client.post("/api/channels/", {"type": "dm", "member_ids": [str(owner.pk)]})
    assert both.status_code == alone.status_code == 400
    assert not Channel.objects.exists()


# --- read -------------------------------------------------------------------------------------


def test_non_member_gets_404_for_group_and_dm(client_of, make_channel, owner, member, outsider):
    group = make_channel(owner, members=[member])
    dm = make_channel(owner, type="dm", members=[member])
    for channel in (group, dm):
        client = client_of(outsider)
        assert client.get(f"/api/channels/{channel['id']}/").status_code == 404
        assert client.get(f"/api/channels/{channel['id']}/messages/").status_code == 404
        assert client.get(f"/api/channels/{channel['id']}/members/").status_code == 404
        post = client.post(f"/api/channels/{channel['id']}/messages/", {"content": "x"})
        assert post.status_code == 404
        assert error_code(post) == "not_found"
    assert client_of(member).get(f"/api/channels/{group['id']}/").status_code == 200


def test_private_standard_channel_is_for_members(client_of, make_channel, owner, outsider):
    channel = make_channel(owner, type="standard", name="secret", is_private=True)
    assert client_of(outsider).get(f"/api/channels/{channel['id']}/").status_code == 404


def test_public_standard_channel_readable_but_posting_needs_membership(
    client_of, make_channel, post, owner, outsider
):
    channel = make_channel(owner, type="standard", name="general")
    post(owner, channel["id"], "hello")
    client = client_of(outsider)
    detail = client.get(f"/api/channels/{channel['id']}/")
    assert detail.status_code == 200
    assert detail.json()["membership"] is None
    assert detail.json()["unread_count"] is None
    messages = client.get(f"/api/channels/{channel['id']}/messages/")
    assert [m["content"] for m in messages.json()["messages"]] == ["hello"]
    refused = client.post(f"/api/channels/{channel['id']}/messages/", {"content": "me too"})
    assert refused.status_code == 403
    assert error_code(refused) == "forbidden"
    assert Message.objects.count() == 1


def test_list_shows_mine_and_public_pinned_first(client_of, make_channel, owner, member, outsider):
    make_channel(owner, name="a-group", members=[member])
    public = make_channel(owner, type="standard", name="b-public")
    make_channel(owner, type="standard", name="c-private", is_private=True)
    zed = make_channel(outsider, name="z-group", members=[member])
    client = client_of(member)
    names = [c["name"] for c in client.get("/api/channels/").json()]
    assert names == ["a-group", "b-public", "z-group"]
    client.patch(f"/api/channels/{zed['id']}/members/{member.pk}/", {"is_pinned": True})
    names = [c["name"] for c in client.get("/api/channels/").json()]
    assert names == ["z-group", "a-group", "b-public"]
    joined = [c["name"] for c in client.get("/api/channels/?joined=true").json()]
    assert joined == ["z-group", "a-group"]
    assert public["id"] not in {c["id"] for c in client.get("/api/channels/?joined=1").json()}
    assert client.get("/api/channels/?joined=maybe").status_code == 400


def test_removed_member_loses_access(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    url = f"/api/channels/{channel['id']}/"
    assert client_of(member).get(url).status_code == 200
    assert client_of(owner).delete(f"{url}members/{member.pk}/").status_code == 204
    membership = ChannelMember.objects.get(channel_id=channel["id"], user=member)
    assert membership.is_active is False
    assert membership.left_at is not None
    client = client_of(member)
    assert client.get(url).status_code == 404
    assert client.get(f"{url}messages/").status_code == 404
    assert client.post(f"{url}messages/", {"content": "x"}).status_code == 404
    assert channel["id"] not in {c["id"] for c in client.get("/api/channels/").json()}


# --- update / archive -------------------------------------------------------------------------


def test_manager_updates_member_cannot(client_of, make_channel, owner, member, outsider):
    channel = make_channel(owner, members=[member, outsider])
    url = f"/api/channels/{channel['id']}/"
    refused = client_of(member).patch(url, {"name": "mine now"})
    assert refused.status_code == 403
    client_of(owner).patch(f"{url}members/{member.pk}/", {"role": "manager"})
    response = client_of(member).patch(url, {"name": "renamed", "description": "d"})
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert Channel.objects.get(pk=channel["id"]).name == "renamed"


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"is_private": False}, {"data": "text"}, {"archived": "later"}]
)
def test_update_with_bad_input_is_400_and_changes_nothing(client_of, make_channel, owner, body):
    channel = make_channel(owner, name="keep")
    response = client_of(owner).patch(f"/api/channels/{channel['id']}/", body)
    assert response.status_code == 400
    assert error_code(response) == "bad_request"
    stored = Channel.objects.get(pk=channel["id"])
    assert (stored.name, stored.archived_at, stored.data) == ("keep", None, {})


def test_archived_channel_refuses_changes_but_stays_readable(
    client_of, make_channel, post, owner, member, outsider
):
    channel = make_channel(owner, members=[member])
    first = post(member, channel["id"], "before archive")
    url = f"/api/channels/{channel['id']}/"
    archived = client_of(owner).patch(url, {"archived": True})
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    client = client_of(member)
    refused = [
        client.post(f"{url}messages/", {"content": "after"}),
        client.post(f"{url}messages/{first['id']}/reactions/", {"name": "fire"}),
        client.patch(f"{url}messages/{first['id']}/", {"content": "edited"}),
        client_of(owner).post(f"{url}members/", {"user_id": str(outsider.pk)}),
        client_of(owner).delete(f"{url}members/{member.pk}/"),
        client_of(owner).patch(url, {"name": "renamed"}),
    ]
    for response in refused:
        assert response.status_code == 409, response.content
        assert error_code(response) == "conflict"
        assert "archived" in response.json()["error"]["message"]
    assert Message.objects.count() == 1
    assert client.get(url).status_code == 200
    history = client.get(f"{url}messages/").json()["messages"]
    assert [m["content"] for m in history] == ["before archive"]
    assert client.post(f"{url}read/").status_code == 200
    unarchived = client_of(owner).patch(url, {"archived": False})
    assert unarchived.json()["archived_at"] is None
    assert client.post(f"{url}messages/", {"content": "after"}).status_code == 201


def test_archived_public_channel_is_hidden_from_non_members(
    client_of, make_channel, owner, outsider
):
    channel = make_channel(owner, type="standard", name="old")
    client_of(owner).patch(f"/api/channels/{channel['id']}/", {"archived": True})
    assert client_of(outsider).get(f"/api/channels/{channel['id']}/").status_code == 404
    assert client_of(outsider).get("/api/channels/").json() == []


def test_member_cannot_archive(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    response = client_of(member).patch(f"/api/channels/{channel['id']}/", {"archived": True})
    assert response.status_code == 403
    assert Channel.objects.get(pk=channel["id"]).archived_at is None


# --- delete -----------------------------------------------------------------------------------


def test_only_owner_or_admin_deletes(client_of, make_channel, owner, member, make_user):
    channel = make_channel(owner, members=[member])
    url = f"/api/channels/{channel['id']}/"
    client_of(owner).patch(f"{url}members/{member.pk}/", {"role": "manager"})
    refused = client_of(member).delete(url)
    assert refused.status_code == 403
    assert Channel.objects.filter(pk=channel["id"]).exists()
    assert client_of(owner).delete(url).status_code == 204
    assert not Channel.objects.filter(pk=channel["id"]).exists()
    other = make_channel(owner, name="other")
    admin = make_user("root", role=Role.ADMIN)
    assert client_of(admin).delete(f"/api/channels/{other['id']}/").status_code == 204


def test_unauthenticated_is_refused(api, make_channel, owner):
    assert api.get("/api/channels/").status_code == 401
    assert api.post("/api/channels/", {"name": "x"}).status_code == 401


def test_admin_reads_any_channel_without_membership(client_of, make_channel, owner, make_user):
    channel = make_channel(owner, name="closed")
    admin = make_user("root", role=Role.ADMIN)
    client = client_of(admin)
    detail = client.get(f"/api/channels/{channel['id']}/")
    assert detail.status_code == 200
    assert detail.json()["membership"] is None
    assert channel["id"] not in {c["id"] for c in client.get("/api/channels/").json()}
    refused = client.post(f"/api/channels/{channel['id']}/messages/", {"content": "x"})
    assert refused.status_code == 403


def test_presence_endpoint_still_answers(client_of, make_channel, owner, outsider):
    channel = make_channel(owner, name="p")
    response = client_of(owner).get(f"/api/channels/{channel['id']}/presence/")
    assert response.status_code == 200
    assert response.json() == {"channel_id": channel["id"], "online": []}
    assert client_of(outsider).get(f"/api/channels/{channel['id']}/presence/").status_code == 404


def test_presence_entries_are_exactly_the_documented_fields(client_of, make_channel, owner, member):
    """docs/channels.md: ``{"id", "name", "sessions", "last_active_at"}`` — no role."""
    channel = make_channel(owner, members=[member], name="p")
    User.objects.filter(pk=member.pk).update(last_active_at=datetime(2025, 5, 1, 12, tzinfo=UTC))
    record = SessionRecord("sid-1", str(member.pk), "test", time.time(), member.public_profile())

    async def registry(method: str, *args):  # on Redis, a registry belongs to an event loop
        return await getattr(get_registry(), method)(*args)

    async_to_sync(registry)("add", record)
    try:
        response = client_of(owner).get(f"/api/channels/{channel['id']}/presence/")
    finally:
        async_to_sync(registry)("remove", "sid-1", str(member.pk))
    assert response.json() == {
        "channel_id": channel["id"],
        "online": [
            {
                "id": str(member.pk),
                "name": "Mike",
                "sessions": 1,
                "last_active_at": "2025-05-01T12:00:00.000000Z",
            }
        ],
    }

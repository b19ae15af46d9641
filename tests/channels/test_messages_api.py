"""Messages through HTTP: post, edit, delete, threads, reactions, cursor paging, unread counts
and read receipts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from channels_app.models import ChannelMember, Message, Reaction
from tests.channels.conftest import MESSAGE_KEYS

pytestmark = pytest.mark.django_db

ISO_MICROSECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def messages_url(channel: dict, message: dict | None = None) -> str:
    url = f"/api/channels/{channel['id']}/messages/"
    return f"{url}{message['id']}/" if message else url


@pytest.fixture
def channel(make_channel, owner, member, outsider) -> dict:
    """A group of owner and member (outsider is not in it)."""
    return make_channel(owner, members=[member])


# --- post / shape -----------------------------------------------------------------------------


def test_post_returns_full_message_shape(client_of, channel, member):
    response = client_of(member).post(messages_url(channel), {"content": "hello", "data": {"k": 1}})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    assert body["channel_id"] == channel["id"]
    assert body["parent_id"] is None
    assert body["author"] == {"id": str(member.pk), "name": "Mike"}
    assert (body["content"], body["data"]) == ("hello", {"k": 1})
    assert ISO_MICROSECONDS.match(body["created_at"])
    assert body["edited_at"] is None and body["deleted_at"] is None
    assert body["reactions"] == [] and body["reply_count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": "   "},
        {"content": "x" * 20_001},
        {"content": "x", "data": "not an object"},
        {"content": "x", "parent_id": "nope"},
        {"content": "x", "parent_id": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_post_bad_input_is_400_and_stores_nothing(client_of, channel, member, body):
    response = client_of(member).post(messages_url(channel), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert not Message.objects.exists()


def test_malformed_json_is_400(client_of, channel, member):
    response = client_of(member).generic(
        "POST", messages_url(channel), "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


# --- edit / delete ----------------------------------------------------------------------------


def test_only_author_edits(client_of, channel, post, owner, member):
    message = post(member, channel["id"], "original")
    refused = client_of(owner).patch(messages_url(channel, message), {"content": "hijack"})
    assert refused.status_code == 403
    assert Message.objects.get(pk=message["id"]).content == "original"
    edited = client_of(member).patch(messages_url(channel, message), {"content": "fixed"})
    assert edited.status_code == 200
    assert edited.json()["content"] == "fixed"
    assert ISO_MICROSECONDS.match(edited.json()["edited_at"])


def test_edit_bad_input_is_400(client_of, channel, post, member):
    message = post(member, channel["id"], "original")
    for body in ({}, {"content": ""}, {"data": 3}):
        response = client_of(member).patch(messages_url(channel, message), body)
        assert response.status_code == 400
    stored = Message.objects.get(pk=message["id"])
    assert (stored.content, stored.edited_at) == ("original", None)


def test_author_deletes_softly(client_of, channel, post, member):
    message = post(member, channel["id"], "oops", data={"x": 1})
    client_of(member).post(f"{messages_url(channel, message)}reactions/", {"name": "fire"})
    response = client_of(member).delete(messages_url(channel, message))
    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "" and body["data"] == {} and body["reactions"] == []
    assert ISO_MICROSECONDS.match(body["deleted_at"])
    stored = Message.objects.get(pk=message["id"])
    assert stored.deleted_at is not None and stored.content == ""
    history = client_of(member).get(messages_url(channel)).json()["messages"]
    assert [m["deleted_at"] is not None for m in history] == [True]
    again = client_of(member).delete(messages_url(channel, message))
    assert again.status_code == 409


def test_manager_deletes_others_messages_member_cannot(
    client_of, make_channel, post, owner, member, outsider
):
    channel = make_channel(owner, members=[member, outsider])
    message = post(outsider, channel["id"], "spam")
    refused = client_of(member).delete(messages_url(channel, message))
    assert refused.status_code == 403
    assert Message.objects.get(pk=message["id"]).deleted_at is None
    client_of(owner).patch(
        f"/api/channels/{channel['id']}/members/{member.pk}/", {"role": "manager"}
    )
    assert client_of(member).delete(messages_url(channel, message)).status_code == 200
    assert Message.objects.get(pk=message["id"]).deleted_at is not None


def test_admin_deletes_without_membership(client_of, channel, post, member, make_user):
    message = post(member, channel["id"], "bad")
    admin = make_user("root", role=Role.ADMIN)
    assert client_of(admin).delete(messages_url(channel, message)).status_code == 200


def test_message_of_another_channel_is_404(client_of, make_channel, channel, post, owner, member):
    other = make_channel(owner, name="other", members=[member])
    message = post(member, other["id"], "elsewhere")
    response = client_of(member).patch(messages_url(channel, message), {"content": "x"})
    assert response.status_code == 404


# --- threads ----------------------------------------------------------------------------------


def test_replies_form_a_thread(client_of, channel, post, owner, member):
    root = post(owner, channel["id"], "root")
    first = post(member, channel["id"], "r1", parent_id=root["id"])
    post(owner, channel["id"], "r2", parent_id=root["id"])
    post(owner, channel["id"], "another top-level")
    assert first["parent_id"] == root["id"]
    client = client_of(member)
    thread = client.get(messages_url(channel), {"parent_id": root["id"]}).json()["messages"]
    assert [m["content"] for m in thread] == ["r1", "r2"]
    top = client.get(messages_url(channel), {"parent_id": "null"}).json()["messages"]
    assert [(m["content"], m["reply_count"]) for m in top] == [
        ("root", 2),
        ("another top-level", 0),
    ]
    everything = client.get(messages_url(channel)).json()["messages"]
    assert len(everything) == 4
    nested = client.post(messages_url(channel), {"content": "deep", "parent_id": first["id"]})
    assert nested.status_code == 400
    assert client.get(messages_url(channel), {"parent_id": "bogus"}).status_code == 400


# --- reactions --------------------------------------------------------------------------------


def test_reactions_add_and_remove(client_of, channel, post, owner, member):
    message = post(owner, channel["id"], "react to me")
    url = f"{messages_url(channel, message)}reactions/"
    first = client_of(member).post(url, {"name": "fire"})
    assert first.status_code == 201
    assert client_of(member).post(url, {"name": "fire"}).status_code == 200  # already there
    client_of(owner).post(url, {"name": "fire"})
    body = client_of(owner).post(url, {"name": "ok"}).json()
    assert body["reactions"] == [
        {"name": "fire", "count": 2, "user_ids": [str(member.pk), str(owner.pk)]},
        {"name": "ok", "count": 1, "user_ids": [str(owner.pk)]},
    ]
    removed = client_of(member).delete(url, {"name": "fire"})
    assert removed.status_code == 200
    assert removed.json()["reactions"][0] == {
        "name": "fire",
        "count": 1,
        "user_ids": [str(owner.pk)],
    }
    by_query = client_of(owner).delete(f"{url}?name=ok")
    assert [r["name"] for r in by_query.json()["reactions"]] == ["fire"]
    assert Reaction.objects.count() == 1


def test_reaction_bad_input_and_non_member(client_of, make_channel, post, owner, outsider):
    channel = make_channel(owner, type="standard", name="general")
    message = post(owner, channel["id"], "hi")
    url = f"{messages_url(channel, message)}reactions/"
    for body in ({}, {"name": ""}, {"name": "two words"}, {"name": "x" * 65}):
        assert client_of(owner).post(url, body).status_code == 400
    assert client_of(outsider).post(url, {"name": "fire"}).status_code == 403
    assert not Reaction.objects.exists()


def test_reacting_to_deleted_message_is_409(client_of, channel, post, member):
    message = post(member, channel["id"], "gone")
    client_of(member).delete(messages_url(channel, message))
    response = client_of(member).post(f"{messages_url(channel, message)}reactions/", {"name": "x"})
    assert response.status_code == 409


# --- cursor paging ----------------------------------------------------------------------------


@pytest.fixture
def seven(channel, post, member) -> list[dict]:
    return [post(member, channel["id"], f"m{i}") for i in range(1, 8)]


def contents(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["content"] for m in response.json()["messages"]]


def test_after_returns_strictly_later_ascending(client_of, channel, member, seven):
    response = client_of(member).get(messages_url(channel), {"after": seven[2]["id"]})
    assert contents(response) == ["m4", "m5", "m6", "m7"]
    assert response.json()["has_more"] is False


def test_before_with_limit_returns_the_closest_earlier_ascending(client_of, channel, member, seven):
    response = client_of(member).get(messages_url(channel), {"before": seven[4]["id"], "limit": 2})
    assert contents(response) == ["m3", "m4"]
    assert response.json()["has_more"] is True


def test_after_with_limit_and_between(client_of, channel, member, seven):
    client = client_of(member)
    page = client.get(messages_url(channel), {"after": seven[0]["id"], "limit": 3})
    assert contents(page) == ["m2", "m3", "m4"]
    assert page.json()["has_more"] is True
    between = client.get(messages_url(channel), {"after": seven[1]["id"], "before": seven[5]["id"]})
    assert contents(between) == ["m3", "m4", "m5"]


def test_no_cursor_returns_newest_ascending(client_of, channel, member, seven):
    response = client_of(member).get(messages_url(channel), {"limit": 3})
    assert contents(response) == ["m5", "m6", "m7"]
    assert response.json()["has_more"] is True
    assert contents(client_of(member).get(messages_url(channel))) == [f"m{i}" for i in range(1, 8)]


def test_paging_breaks_created_at_ties_by_id(client_of, channel, member, seven):
    same = timezone.now() - timedelta(days=1)
    Message.objects.filter(channel_id=channel["id"]).update(created_at=same)
    by_id = sorted(seven, key=lambda m: m["id"])
    response = client_of(member).get(messages_url(channel), {"after": by_id[2]["id"]})
    assert [m["id"] for m in response.json()["messages"]] == [m["id"] for m in by_id[3:]]
    response = client_of(member).get(messages_url(channel), {"before": by_id[4]["id"], "limit": 2})
    assert [m["id"] for m in response.json()["messages"]] == [m["id"] for m in by_id[2:4]]


def test_limit_is_capped_at_200_and_validated(client_of, channel, member):
    client = client_of(member)
    for limit in ("0", "201", "abc", "-1"):
        response = client.get(messages_url(channel), {"limit": limit})
        assert response.status_code == 400, limit
        assert response.json()["error"]["code"] == "bad_request"
    assert client.get(messages_url(channel), {"limit": "200"}).status_code == 200


def test_unknown_cursor_is_400(client_of, make_channel, channel, post, owner, member):
    other = make_channel(owner, name="other", members=[member])
    foreign = post(member, other["id"], "elsewhere")
    client = client_of(member)
    for cursor in ("00000000-0000-0000-0000-000000000000", foreign["id"], "junk"):
        for name in ("after", "before"):
            response = client.get(messages_url(channel), {name: cursor})
            assert response.status_code == 400, (name, cursor)
            assert response.json()["error"]["code"] == "bad_request"


# --- unread counts and read receipts ----------------------------------------------------------


def unread_of(client, channel: dict) -> int | None:
    listed = {c["id"]: c for c in client.get("/api/channels/").json()}
    return listed[channel["id"]]["unread_count"]


def test_unread_counts_others_undeleted_messages_after_last_read(
    client_of, channel, post, owner, member
):
    post(owner, channel["id"], "one")
    post(owner, channel["id"], "two")
    post(member, channel["id"], "mine")  # not counted: by me
    doomed = post(owner, channel["id"], "three")
    client = client_of(member)
    assert unread_of(client, channel) == 3
    client_of(owner).delete(messages_url(channel, doomed))
    assert unread_of(client, channel) == 2
    assert unread_of(client_of(owner), channel) == 1  # member's "mine"


def test_read_receipt_resets_unread(client_of, channel, post, owner, member):
    post(owner, channel["id"], "one")
    client = client_of(member)
    response = client.post(f"/api/channels/{channel['id']}/read/")
    assert response.status_code == 200
    body = response.json()
    assert body["channel_id"] == channel["id"]
    assert ISO_MICROSECONDS.match(body["last_read_at"])
    stored = ChannelMember.objects.get(channel_id=channel["id"], user=member).last_read_at
    assert stored is not None
    assert unread_of(client, channel) == 0
    detail = client.get(f"/api/channels/{channel['id']}/").json()
    assert detail["membership"]["last_read_at"] == body["last_read_at"]
    post(owner, channel["id"], "two")
    post(owner, channel["id"], "three")
    assert unread_of(client, channel) == 2
    assert client.get(f"/api/channels/{channel['id']}/").json()["unread_count"] == 2


def test_read_receipt_needs_membership(client_of, make_channel, owner, outsider):
    public = make_channel(owner, type="standard", name="general")
    assert client_of(outsider).post(f"/api/channels/{public['id']}/read/").status_code == 403
    group = make_channel(owner, name="g")
    assert client_of(outsider).post(f"/api/channels/{group['id']}/read/").status_code == 404

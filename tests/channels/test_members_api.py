"""Channel members through HTTP: add, remove, leave, roles, the caller's mute / pin flags."""

from __future__ import annotations

import pytest

from channels_app.models import ChannelMember

pytestmark = pytest.mark.django_db


def members_url(channel: dict, user=None) -> str:
    url = f"/api/channels/{channel['id']}/members/"
    return f"{url}{user.pk}/" if user is not None else url


def active_ids(channel: dict) -> set:
    return set(
        ChannelMember.objects.filter(channel_id=channel["id"], is_active=True).values_list(
            "user_id", flat=True
        )
    )


def test_list_members_public_shape(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    body = client_of(member).get(members_url(channel)).json()
    assert [m["user"] for m in body] == [
        {"id": str(owner.pk), "name": "Olive"},
        {"id": str(member.pk), "name": "Mike"},
    ]
    assert [m["role"] for m in body] == ["owner", "member"]
    assert all(set(m) == {"user", "role", "joined_at"} for m in body)


def test_owner_adds_member_who_gains_access(client_of, make_channel, owner, outsider):
    channel = make_channel(owner)
    assert client_of(outsider).get(f"/api/channels/{channel['id']}/").status_code == 404
    response = client_of(owner).post(
        members_url(channel), {"user_id": str(outsider.pk), "role": "manager"}
    )
    assert response.status_code == 201
    assert response.json()["role"] == "manager"
    assert client_of(outsider).get(f"/api/channels/{channel['id']}/").status_code == 200


def test_plain_member_cannot_add_or_remove(client_of, make_channel, owner, member, outsider):
    channel = make_channel(owner, members=[member])
    added = client_of(member).post(members_url(channel), {"user_id": str(outsider.pk)})
    assert added.status_code == 403
    removed = client_of(member).delete(members_url(channel, owner))
    assert removed.status_code == 403
    assert active_ids(channel) == {owner.pk, member.pk}


def test_adding_an_active_member_again_is_409(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    response = client_of(owner).post(members_url(channel), {"user_id": str(member.pk)})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": "nope"},
        {"user_id": "00000000-0000-0000-0000-000000000000"},
        {"user_id": "{outsider}", "role": "owner"},
        {"user_id": "{outsider}", "role": "king"},
    ],
)
def test_add_with_bad_input_is_400(client_of, make_channel, owner, outsider, body):
    channel = make_channel(owner)
    body = {k: v.format(outsider=outsider.pk) for k, v in body.items()}
    response = client_of(owner).post(members_url(channel), body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert active_ids(channel) == {owner.pk}


def test_readding_a_removed_member_reactivates(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    client_of(owner).delete(members_url(channel, member))
    response = client_of(owner).post(members_url(channel), {"user_id": str(member.pk)})
    assert response.status_code == 201
    membership = ChannelMember.objects.get(channel_id=channel["id"], user=member)
    assert membership.is_active and membership.left_at is None
    assert ChannelMember.objects.filter(channel_id=channel["id"]).count() == 2


def test_self_join_and_leave_public_standard_channel(client_of, make_channel, owner, outsider):
    channel = make_channel(owner, type="standard", name="general")
    client = client_of(outsider)
    joined = client.post(members_url(channel), {"user_id": str(outsider.pk)})
    assert joined.status_code == 201
    assert joined.json()["is_muted"] is False  # the caller's own membership shows its flags
    assert (
        client.post(f"/api/channels/{channel['id']}/messages/", {"content": "hi"}).status_code
        == 201
    )
    promoted = client.post(members_url(channel), {"user_id": str(outsider.pk), "role": "manager"})
    assert promoted.status_code == 403
    assert client.delete(members_url(channel, outsider)).status_code == 204
    assert active_ids(channel) == {owner.pk}


def test_cannot_self_join_private_channel(client_of, make_channel, owner, outsider):
    channel = make_channel(owner, type="standard", name="hidden", is_private=True)
    response = client_of(outsider).post(members_url(channel), {"user_id": str(outsider.pk)})
    assert response.status_code == 404


def test_member_leaves_group(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    assert client_of(member).delete(members_url(channel, member)).status_code == 204
    assert active_ids(channel) == {owner.pk}


def test_owner_cannot_leave_or_be_removed_or_demoted(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    client_of(owner).patch(members_url(channel, member), {"role": "manager"})
    assert client_of(owner).delete(members_url(channel, owner)).status_code == 409
    assert client_of(member).delete(members_url(channel, owner)).status_code == 403
    demote = client_of(member).patch(members_url(channel, owner), {"role": "member"})
    assert demote.status_code == 403
    assert ChannelMember.objects.get(channel_id=channel["id"], user=owner).role == "owner"


def test_manager_removes_member(client_of, make_channel, owner, member, outsider):
    channel = make_channel(owner, members=[member, outsider])
    client_of(owner).patch(members_url(channel, member), {"role": "manager"})
    assert client_of(member).delete(members_url(channel, outsider)).status_code == 204
    assert active_ids(channel) == {owner.pk, member.pk}
    assert client_of(member).delete(members_url(channel, outsider)).status_code == 404


def test_dm_members_are_fixed(client_of, make_channel, owner, member, outsider):
    dm = make_channel(owner, type="dm", members=[member])
    add = client_of(owner).post(members_url(dm), {"user_id": str(outsider.pk)})
    leave = client_of(member).delete(members_url(dm, member))
    assert add.status_code == leave.status_code == 409
    assert active_ids(dm) == {owner.pk, member.pk}


def test_mute_and_pin_are_the_callers_own(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    mine = client_of(member).patch(
        members_url(channel, member), {"is_muted": True, "is_pinned": True}
    )
    assert mine.status_code == 200
    assert mine.json()["is_muted"] is True and mine.json()["is_pinned"] is True
    theirs = client_of(owner).patch(members_url(channel, member), {"is_muted": False})
    assert theirs.status_code == 403
    stored = ChannelMember.objects.get(channel_id=channel["id"], user=member)
    assert stored.is_muted and stored.is_pinned
    detail = client_of(member).get(f"/api/channels/{channel['id']}/").json()
    assert detail["membership"]["is_muted"] is True
    owner_view = client_of(owner).get(members_url(channel)).json()
    assert all("is_muted" not in m for m in owner_view)


def test_member_cannot_change_roles(client_of, make_channel, owner, member):
    channel = make_channel(owner, members=[member])
    response = client_of(member).patch(members_url(channel, member), {"role": "manager"})
    assert response.status_code == 403
    assert ChannelMember.objects.get(channel_id=channel["id"], user=member).role == "member"


@pytest.mark.parametrize("body", [{}, {"role": "owner"}, {"is_muted": "loud"}])
def test_member_update_bad_input_is_400(client_of, make_channel, owner, member, body):
    channel = make_channel(owner, members=[member])
    response = client_of(owner).patch(members_url(channel, member), body)
    assert response.status_code == 400
    assert ChannelMember.objects.get(channel_id=channel["id"], user=member).role == "member"

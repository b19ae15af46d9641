"""Who may read or write a note: owner, admins, user / group / everyone grants."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.models import Role
from notes.models import Note, NoteGrant, Permission, PrincipalType

pytestmark = pytest.mark.django_db


@pytest.fixture
def note(alice):
    return Note.objects.create(owner=alice, title="plan")


def test_owner_writes_and_a_stranger_sees_nothing(note, alice, bob):
    assert note.access_for(alice) == "write"
    assert note.access_for(bob) is None
    assert list(Note.objects.readable_by(bob)) == []


def test_admin_writes_everything(note, make_user):
    root = make_user("root", role=Role.ADMIN)
    assert note.access_for(root) == "write"
    assert list(Note.objects.readable_by(root)) == [note]


@pytest.mark.parametrize("permission", [Permission.READ, Permission.WRITE])
def test_user_grant(note, bob, permission):
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.USER, user=bob, permission=permission
    )
    assert note.access_for(bob) == permission
    assert list(Note.objects.readable_by(bob)) == [note]


def test_group_grant_and_write_implies_read(note, bob):
    team = Group.objects.create(name="team")
    bob.groups.add(team)
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.GROUP, group=team, permission=Permission.READ
    )
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.EVERYONE, permission=Permission.WRITE
    )
    assert note.access_for(bob) == "write"
    assert list(Note.objects.readable_by(bob)) == [note]


def test_grant_principal_must_match_its_type(note, bob):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        NoteGrant.objects.create(note=note, principal_type=PrincipalType.EVERYONE, user=bob)

"""accounts.queries: each hand-written SELECT returns what the ORM query it replaces returns.

The data is built through the ORM — users active, inactive, pending and deleted, with every
kind of column filled (UUIDs, datetimes, a date, JSON), revocations expired or not, with and
without a user — and more ids than one ``IN (…)`` list holds, so the chunking runs too. Runs
on SQLite (pass 1) and PostgreSQL (pass 2).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from django.utils import timezone

from accounts.models import RevokedToken, Role, User
from accounts.queries import revoked_jtis, users_by_pk
from lib import sqlrows

pytestmark = pytest.mark.django_db

#: More than one ``IN (…)`` list: the statements run in two chunks.
MANY = sqlrows.IN_LIST_MAX + 20


def make_users(count: int) -> list[User]:
    """``count`` users through the ORM, every column that converts filled on some of them."""
    now = timezone.now()
    users = [
        User(
            username=f"q-{index:04d}",
            name=f"Person {index}",
            is_active=index % 7 != 0,
            role=Role.PENDING
            if index % 11 == 0
            else (Role.ADMIN if index % 13 == 0 else Role.USER),
            last_active_at=now - timedelta(minutes=index, microseconds=index)
            if index % 2
            else None,
            tokens_valid_after=now - timedelta(hours=index) if index % 5 == 0 else None,
            date_of_birth=date(1980, 1, 1) + timedelta(days=index) if index % 3 == 0 else None,
            settings={"theme": "dark", "n": index} if index % 4 == 0 else {},
        )
        for index in range(count)
    ]
    return User.objects.bulk_create(users)


def as_loaded(user: User) -> tuple:
    """Every column's value and type, what ``User.from_db`` adds, and the instance's state."""
    columns = tuple(
        (field.attname, type(value), value)
        for field in User._meta.concrete_fields
        for value in [getattr(user, field.attname)]
    )
    return columns, getattr(user, "_loaded_access", None), user._state.db, user._state.adding


def test_users_by_pk_equals_in_bulk():
    users = make_users(MANY)
    deleted = users[-5:]
    User.objects.filter(pk__in=[u.pk for u in deleted]).delete()
    unknown = [uuid.uuid4() for _ in range(10)]
    pks = [u.pk for u in users] + unknown + [users[0].pk, users[1].pk]  # repeats too
    assert len(set(pks)) > sqlrows.IN_LIST_MAX

    found = users_by_pk(pks)

    expected = User.objects.in_bulk(pks)
    assert len(expected) == MANY - len(deleted)
    assert found.keys() == expected.keys()
    assert {pk: as_loaded(u) for pk, u in found.items()} == {
        pk: as_loaded(u) for pk, u in expected.items()
    }


def test_users_by_pk_of_one_and_of_none():
    (user,) = make_users(1)
    assert {pk: as_loaded(u) for pk, u in users_by_pk([user.pk]).items()} == {
        user.pk: as_loaded(User.objects.get(pk=user.pk))
    }
    assert users_by_pk([uuid.uuid4()]) == User.objects.in_bulk([uuid.uuid4()]) == {}
    assert users_by_pk([]) == {}


def test_revoked_jtis_equals_the_orm_filter():
    owners = make_users(3)
    now = timezone.now()
    revoked = [
        RevokedToken(
            jti=f"revoked-{index}",
            user=owners[index % 3] if index % 4 else None,
            expires_at=now + timedelta(minutes=index - 100),  # the first 100 expired already
        )
        for index in range(MANY)
    ]
    RevokedToken.objects.bulk_create(revoked)
    # Every other stored one, each followed by one never revoked: both in every chunk.
    jtis = [
        jti for index in range(0, MANY, 2) for jti in (f"revoked-{index}", f"never-revoked-{index}")
    ]
    jtis += ["revoked-2", "never-revoked-2"]  # repeats too
    assert len(set(jtis)) > sqlrows.IN_LIST_MAX

    found = revoked_jtis(jtis)

    expected = set(RevokedToken.objects.filter(jti__in=jtis).values_list("jti", flat=True))
    assert len(expected) == (MANY + 1) // 2
    assert found == expected
    assert revoked_jtis([]) == set()

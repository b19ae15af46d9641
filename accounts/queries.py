"""The hand-written SELECTs over accounts' tables: what every socket CONNECT reads.

Token validation (``accounts.tokens.validate_access_tokens``) reads the users of a batch of
tokens and the revocations the cache does not know, for every socket CONNECT. Built as
QuerySets these statements cost several times what the database takes to run them
(docs/benchmarks.md: the table of session 3's changes under the run of 2026-11-26 18:44 UTC),
so they are written with ``sqlrows``, which keeps the ORM's value conversion and
``Model.from_db``. Each function names the ORM query it replaces and returns the same rows;
tests/accounts/test_queries.py compares the two on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from lib import sqlrows

from .models import RevokedToken, User


def users_by_pk(pks: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    """The users among ``pks`` by primary key (active or not; a pk with no user is absent).

    Replaces ``User.objects.in_bulk(pks)``: one statement per ``sqlrows.IN_LIST_MAX`` pks,
    every concrete column loaded and each instance built by ``User.from_db``."""
    users: dict[uuid.UUID, User] = {}
    for chunk in sqlrows.chunks(list(dict.fromkeys(pks))):
        where = f"{sqlrows.column(User, 'id')} IN ({sqlrows.placeholders(len(chunk))})"
        params = sqlrows.db_values(User._meta.pk, chunk)
        users.update((user.pk, user) for user in sqlrows.load(User, where, params))
    return users


def revoked_jtis(jtis: Iterable[str]) -> set[str]:
    """The token ids among ``jtis`` that have a ``RevokedToken`` row (expired or not).

    Replaces ``set(RevokedToken.objects.filter(jti__in=jtis).values_list("jti", flat=True))``:
    one statement per ``sqlrows.IN_LIST_MAX`` ids."""
    jti = RevokedToken._meta.get_field("jti")
    column = sqlrows.column(RevokedToken, "jti")
    found: set[str] = set()
    for chunk in sqlrows.chunks(list(dict.fromkeys(jtis))):
        sql = (
            f"SELECT {column} FROM {sqlrows.table(RevokedToken)}"
            f" WHERE {column} IN ({sqlrows.placeholders(len(chunk))})"
        )
        found.update(row[0] for row in sqlrows.select(sql, chunk, [jti]))
    return found

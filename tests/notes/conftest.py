"""Fixtures for the notes API tests (helpers live in tests/notes/helpers.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.models import Role
from notes.models import Note
from notes.yjs import seed_state
from tests.notes.helpers import Tap, pm_doc


@pytest.fixture
def carol(make_user):
    return make_user("carol", name="Carol", bio="carol's private bio", gender="carol-secret")


@pytest.fixture
def admin(make_user):
    return make_user("root", name="Root", role=Role.ADMIN)


@pytest.fixture
def team(db):
    return Group.objects.create(name="team")


@pytest.fixture
def note(alice) -> Note:
    """Alice's note with a collaborative document seeded from two paragraphs."""
    content = pm_doc("hello", "world")
    return Note.objects.create(
        owner=alice,
        title="plan",
        data={"content": {"md": "hello\n\nworld", "html": "<p>hello</p>", "json": content}},
        yjs_state=seed_state(content),
    )


@pytest.fixture
def plain_note(alice) -> Note:
    """Alice's note that has never had a Yjs state."""
    return Note.objects.create(owner=alice, title="legacy", data={"content": {"md": "old"}})


# --- realtime state ----------------------------------------------------------------------------


@pytest.fixture
def tap():
    """``tap(*groups)`` -> a Tap subscribed to those groups (closed after the test)."""
    taps: list[Tap] = []

    def make(*groups: str) -> Tap:
        taps.append(Tap().subscribe(*groups))
        return taps[-1]

    yield make
    for made in taps:
        made.close()

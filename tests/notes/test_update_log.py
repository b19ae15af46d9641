"""The update log's hand-written INSERT (``notes.yjs.append_updates``) stores what the ORM
would: the same note, bytes and a creation time, in order; a deleted note's updates are
refused alone. Runs on SQLite and (second pass) PostgreSQL."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from notes.models import Note, NoteUpdate
from notes.yjs import append_updates

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notes(alice):
    return [Note.objects.create(owner=alice, title=f"n{i}") for i in range(3)]


def test_the_rows_equal_what_the_orm_stores(notes):
    by_orm = NoteUpdate.objects.create(note=notes[0], update=b"\x01\x02\x00")
    before = timezone.now()
    results = append_updates([(str(notes[0].pk), b"\x01\x02\x00"), (str(notes[1].pk), b"\xff")])
    rows = list(NoteUpdate.objects.order_by("id").values("id", "note_id", "update", "created_at"))
    assert results == [rows[-1]["id"]] * 2  # the highest id the statement wrote
    assert [(r["note_id"], bytes(r["update"])) for r in rows] == [
        (notes[0].pk, b"\x01\x02\x00"),
        (notes[0].pk, b"\x01\x02\x00"),
        (notes[1].pk, b"\xff"),
    ]
    ours = rows[1:]
    assert type(ours[0]["created_at"]) is type(by_orm.created_at)
    for row in ours:
        assert before - datetime.timedelta(seconds=1) <= row["created_at"] <= timezone.now()
    # Read back through the model, as loads and saves read them.
    assert [bytes(u.update) for u in notes[1].updates.all()] == [b"\xff"]


def test_a_large_batch_is_stored_whole_and_in_order(notes):
    batch = [(str(notes[2].pk), i.to_bytes(2, "big")) for i in range(1_200)]
    results = append_updates(batch)
    stored = list(
        NoteUpdate.objects.filter(note=notes[2]).order_by("id").values_list("id", "update")
    )
    assert [bytes(u) for _, u in stored] == [u for _, u in batch]
    ids = [row_id for row_id, _ in stored]
    # Three statements of up to 500 rows: each result is its own statement's highest id.
    assert results == [ids[499]] * 500 + [ids[999]] * 500 + [ids[-1]] * 200


def test_a_deleted_notes_updates_are_refused_alone(notes):
    gone = str(notes[1].pk)
    Note.objects.filter(pk=gone).delete()
    results = append_updates([(str(notes[0].pk), b"a"), (gone, b"b"), (str(notes[2].pk), b"c")])
    assert 0 < results[0] < results[2] == NoteUpdate.objects.latest("id").id
    assert isinstance(results[1], Note.DoesNotExist)
    assert sorted(bytes(u) for u in NoteUpdate.objects.values_list("update", flat=True)) == [
        b"a",
        b"c",
    ]

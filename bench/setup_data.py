"""Bench fixture: users, channels, notes and tokens in the bench database; writes a JSON fixture.

Run by ``bench/run`` (never by hand needed) with the bench environment: ``CHORUS_VAR_DIR``,
``DATABASE_URL`` (the bench SQLite file or the ``bench`` PostgreSQL database), ``SECRET_KEY``.

Idempotent: users ``bench-u0000`` … and ``bench-sender``, the group channel ``bench-broadcast``
(every bench user is a member), one private "solo" channel per ack-workload user, and the
collaborative notes (each owned by its first editor, write grants for the other editors).
Every run issues fresh access tokens (long-lived: the bench never refreshes) and empties the
notes (Yjs state, rendered data, update log) so each run edits documents of the same size;
``--reset-docs`` does only that, before every Chorus collab suite (bench/fixtures.py), so
every server — the peers hold documents in memory and start empty — starts every round from
empty documents.

It also installs the write counter (see ``WRITE_LOG_SQL``): an ``AFTER UPDATE`` trigger on
``accounts_user`` and ``notes_note`` that appends (table, row id, time, and for users the
stored ``last_active_at``) to ``bench_write_log``. The harness counts database writes from
that table — the same way on SQLite and PostgreSQL, per row, with timestamps (so "at most one
write per user per interval" is checked per user, not on averages). The trigger exists only
in the bench database.

Usage: python bench/setup_data.py --users 1000 --solo 100 --docs 50 --editors 4 --out FILE
       python bench/setup_data.py --reset-docs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_CHORUS_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from accounts.models import Role, User  # noqa: E402
from accounts.tokens import issue_access_token  # noqa: E402
from channels_app.models import Channel, ChannelMember, ChannelType, MemberRole  # noqa: E402
from notes.models import Note, NoteGrant, NoteUpdate, Permission, PrincipalType  # noqa: E402

TOKEN_TTL = 7 * 24 * 3600

WRITE_LOG_SQL = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS bench_log_accounts_user",
        "DROP TRIGGER IF EXISTS bench_log_notes_note",
        "DROP TRIGGER IF EXISTS bench_log_notes_noteupdate",
        "DROP TABLE IF EXISTS bench_write_log",
        "CREATE TABLE bench_write_log (tbl TEXT, row_id TEXT, at REAL, val REAL)",
        # val: the stored last_active_at (the application's clock, which its throttle uses),
        # to the microsecond: whole epoch seconds plus the text's fraction. (julianday() is a
        # double of ~2.46e6 days, ~40 us apart: two writes 5.000001 s apart read as 4.99997.)
        """CREATE TRIGGER bench_log_accounts_user AFTER UPDATE ON accounts_user
           BEGIN INSERT INTO bench_write_log VALUES (
             'accounts_user', NEW.id, (julianday('now') - 2440587.5) * 86400.0,
             CAST(strftime('%s', substr(NEW.last_active_at, 1, 19)) AS INTEGER)
               + CAST(substr(NEW.last_active_at, 20) AS REAL)); END""",
        """CREATE TRIGGER bench_log_notes_note AFTER UPDATE ON notes_note
           BEGIN INSERT INTO bench_write_log VALUES (
             'notes_note', NEW.id, (julianday('now') - 2440587.5) * 86400.0, NULL); END""",
        # The update log: one row per accepted update (row_id: the note).
        """CREATE TRIGGER bench_log_notes_noteupdate AFTER INSERT ON notes_noteupdate
           BEGIN INSERT INTO bench_write_log VALUES (
             'notes_noteupdate', NEW.note_id, (julianday('now') - 2440587.5) * 86400.0,
             NULL); END""",
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS bench_log_accounts_user ON accounts_user",
        "DROP TRIGGER IF EXISTS bench_log_notes_note ON notes_note",
        "DROP TRIGGER IF EXISTS bench_log_notes_noteupdate ON notes_noteupdate",
        "DROP TABLE IF EXISTS bench_write_log",
        "CREATE TABLE bench_write_log (tbl text, row_id text, at double precision, "
        "val double precision)",
        *[
            f"""CREATE OR REPLACE FUNCTION bench_log_{table}() RETURNS trigger AS $$
                BEGIN
                  INSERT INTO bench_write_log VALUES (
                    '{table}', NEW.id::text, extract(epoch from clock_timestamp()), {val});
                  RETURN NULL;
                END $$ LANGUAGE plpgsql"""
            for table, val in (
                ("accounts_user", "extract(epoch from NEW.last_active_at)"),
                ("notes_note", "NULL"),
            )
        ],
        *[
            f"""CREATE TRIGGER bench_log_{table} AFTER UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION bench_log_{table}()"""
            for table in ("accounts_user", "notes_note")
        ],
        # The update log: one row per accepted update (row_id: the note; val: the
        # transaction id, so that the group commits can be counted).
        """CREATE OR REPLACE FUNCTION bench_log_notes_noteupdate() RETURNS trigger AS $$
            BEGIN
              INSERT INTO bench_write_log VALUES ('notes_noteupdate', NEW.note_id::text,
                extract(epoch from clock_timestamp()), txid_current());
              RETURN NULL;
            END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER bench_log_notes_noteupdate AFTER INSERT ON notes_noteupdate
            FOR EACH ROW EXECUTE FUNCTION bench_log_notes_noteupdate()""",
    ],
}


def ensure_users(usernames: list[str]) -> dict[str, User]:
    existing = {u.username: u for u in User.objects.filter(username__in=usernames)}
    missing = [
        User(username=name, name=name.replace("bench-", "Bench "), role=Role.USER)
        for name in usernames
        if name not in existing
    ]
    for user in missing:
        user.set_unusable_password()
    User.objects.bulk_create(missing, batch_size=500)
    return {u.username: u for u in User.objects.filter(username__in=usernames)}


def ensure_channel(name: str, owner: User, members: list[User]) -> Channel:
    channel, _ = Channel.objects.get_or_create(
        name=name, type=ChannelType.GROUP, defaults={"owner": owner}
    )
    have = set(ChannelMember.objects.filter(channel=channel).values_list("user_id", flat=True))
    ChannelMember.objects.bulk_create(
        [
            ChannelMember(
                channel=channel,
                user=user,
                role=MemberRole.OWNER if user.pk == owner.pk else MemberRole.MEMBER,
            )
            for user in members
            if user.pk not in have
        ],
        batch_size=500,
    )
    return channel


DOC_TITLE_PREFIX = "bench-doc-"


def reset_documents() -> str:
    """Empty every bench note (owned by a bench user): no Yjs state, no rendered data, no
    rows in the update log; what was emptied, in words."""
    notes = Note.objects.filter(
        title__startswith=DOC_TITLE_PREFIX, owner__username__startswith="bench-"
    )
    with transaction.atomic():
        states = notes.exclude(yjs_state=None).values_list("yjs_state", flat=True)
        state = sum(len(s) for s in states if s is not None)
        log_rows, _ = NoteUpdate.objects.filter(note__in=notes).delete()
        count = notes.update(yjs_state=None, data={})
    return f"{count} bench notes emptied ({state / 1024:.0f} KiB of state, {log_rows} log rows)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--solo", type=int, default=100)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--editors", type=int, default=4)
    parser.add_argument("--out")
    parser.add_argument(
        "--reset-docs", action="store_true", help="only empty the bench notes, then exit"
    )
    args = parser.parse_args()
    started = time.monotonic()
    if args.reset_docs:
        print(reset_documents())
        return
    if not args.out:
        parser.error("--out is required")

    call_command("migrate", interactive=False, verbosity=0)
    vendor = connection.vendor
    with connection.cursor() as cursor:
        for statement in WRITE_LOG_SQL[vendor]:
            cursor.execute(statement)
        cursor.execute("DELETE FROM bench_write_log")

    names = [f"bench-u{i:04d}" for i in range(args.users)]
    with transaction.atomic():
        users = ensure_users([*names, "bench-sender"])
        sender = users["bench-sender"]
        ordered = [users[name] for name in names]
        broadcast = ensure_channel("bench-broadcast", sender, [sender, *ordered])
        solo = [
            ensure_channel(f"bench-solo-{i:04d}", user, [user])
            for i, user in enumerate(ordered[: args.solo])
        ]
        notes = []
        editors_needed = args.docs * args.editors
        if editors_needed > len(ordered):
            raise SystemExit("--docs x --editors exceeds --users")
        for d in range(args.docs):
            editors = ordered[d * args.editors : (d + 1) * args.editors]
            note, _ = Note.objects.get_or_create(
                owner=editors[0], title=f"{DOC_TITLE_PREFIX}{d:03d}"
            )
            for editor in editors[1:]:
                NoteGrant.objects.get_or_create(
                    note=note,
                    principal_type=PrincipalType.USER,
                    user=editor,
                    defaults={"permission": Permission.WRITE},
                )
            notes.append((note, editors))
        reset_documents()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM bench_write_log")

    def user_entry(user: User) -> dict:
        return {
            "id": str(user.pk),
            "username": user.username,
            "name": user.display_name,
            "role": user.role,
            "token": issue_access_token(user, ttl_seconds=TOKEN_TTL),
        }

    fixture = {
        "created": time.time(),
        "vendor": vendor,
        "jwt_secret": settings.SIMPLE_JWT["SIGNING_KEY"],
        "users": [user_entry(u) for u in ordered],
        "sender": user_entry(sender),
        "broadcast_channel": str(broadcast.pk),
        "solo_channels": [str(c.pk) for c in solo],
        "notes": [
            {"id": str(note.pk), "editors": list(range(d * args.editors, (d + 1) * args.editors))}
            for d, (note, _) in enumerate(notes)
        ],
    }
    Path(args.out).write_text(json.dumps(fixture))
    print(
        f"bench fixture: {len(ordered)} users, {len(solo)} solo channels, {len(notes)} notes "
        f"({vendor}) in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

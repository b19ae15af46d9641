"""Idempotent demo data: users alice, bob and carol, a group channel 'general' with the three
of them, a note 'Welcome' of alice's that bob may edit and carol may only read (the demo page
at /, docs/demo.md)."""

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Role, User
from channels_app.models import Channel, ChannelMember, ChannelType, MemberRole
from notes.models import Note, NoteGrant, Permission, PrincipalType

WELCOME = {
    "content": {
        "md": "Welcome to Chorus.",
        "html": "<p>Welcome to Chorus.</p>",
        "json": {
            "type": "doc",
            "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Welcome to Chorus."}]}
            ],
        },
    }
}


class Command(BaseCommand):
    help = "Create the demo users, channel and note if they are missing (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when any user exists."
        )

    def handle(self, *args, if_empty: bool = False, **options):
        if if_empty and User.objects.exists():
            self.stdout.write("Users exist; demo seeding skipped.")
            return
        password = settings.DEMO_PASSWORD
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        created_users = []
        with transaction.atomic():
            users = {}
            for username in ("alice", "bob", "carol"):
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={"name": username.capitalize(), "role": Role.USER},
                )
                if created:
                    user.set_password(password)
                    user.save()
                    created_users.append(username)
                users[username] = user
            general, _ = Channel.objects.get_or_create(
                name="general",
                type=ChannelType.GROUP,
                defaults={"owner": users["alice"], "description": "Everyone's channel."},
            )
            members = (
                ("alice", MemberRole.OWNER),
                ("bob", MemberRole.MEMBER),
                ("carol", MemberRole.MEMBER),
            )
            for username, role in members:
                ChannelMember.objects.get_or_create(
                    channel=general, user=users[username], defaults={"role": role}
                )
            note, _ = Note.objects.get_or_create(
                owner=users["alice"], title="Welcome", defaults={"data": WELCOME}
            )
            for username, permission in (("bob", Permission.WRITE), ("carol", Permission.READ)):
                NoteGrant.objects.get_or_create(
                    note=note,
                    principal_type=PrincipalType.USER,
                    user=users[username],
                    defaults={"permission": permission},
                )
        if created_users:
            shown = password if generated else "(from DEMO_PASSWORD)"
            self.stdout.write(f"Created demo users {', '.join(created_users)}; password: {shown}")
        else:
            self.stdout.write("Demo data already present.")

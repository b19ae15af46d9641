from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.tokens import purge_expired_revocations


class Command(BaseCommand):
    help = "Delete revocation records and blacklisted refresh tokens that have expired anyway."

    def handle(self, *args, **options):
        purged = purge_expired_revocations()
        call_command("flushexpiredtokens", verbosity=0)
        self.stdout.write(f"Purged {purged} expired revoked access token(s).")

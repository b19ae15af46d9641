from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from accounts.tokens import revoke_all_tokens


class Command(BaseCommand):
    help = "Void every token of a user and disconnect their sockets (live kick needs REDIS_URL)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        with transaction.atomic():
            revoke_all_tokens(user)
        self.stdout.write(self.style.SUCCESS(f"Revoked every token of {username}."))

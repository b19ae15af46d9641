from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.tokens import issue_access_token


class Command(BaseCommand):
    help = "Print an access token for a user (for scripts and tests)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--ttl", type=int, default=None, help="Lifetime in seconds.")

    def handle(self, *args, username: str, ttl: int | None, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.may_sign_in:
            raise CommandError(f"User {username!r} is inactive or pending.")
        if ttl is not None and ttl <= 0:
            raise CommandError("--ttl must be a positive number of seconds.")
        self.stdout.write(issue_access_token(user, ttl_seconds=ttl))

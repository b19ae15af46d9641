from django.core.management.base import BaseCommand, CommandError

from serverapi.models import ApiKey


class Command(BaseCommand):
    help = "Revoke a server-API key by its prefix (refused from the next request on)."

    def add_arguments(self, parser):
        parser.add_argument("prefix", help="The key's public prefix (8 hex characters).")

    def handle(self, *args, prefix: str, **options):
        api_key = ApiKey.objects.filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError(f"No API key with prefix {prefix!r}.")
        if not api_key.revoke():
            raise CommandError(f"API key {prefix} ({api_key.name}) was already revoked.")
        self.stdout.write(self.style.SUCCESS(f"Revoked API key {prefix} ({api_key.name})."))

from django.core.management.base import BaseCommand, CommandError

from serverapi.models import ApiKey, Scope


class Command(BaseCommand):
    help = (
        "Create a server-API key and print it (stdout, once: only its hash is stored). "
        "Scopes: " + ", ".join(Scope.values) + "."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who uses the key.")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=Scope.values,
            required=True,
            help="A scope the key holds (repeat for several).",
        )

    def handle(self, *args, name: str, scopes: list[str], **options):
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        api_key, key = ApiKey.issue(name, scopes)
        self.stderr.write(
            f"API key {api_key.prefix} ({name}; scopes: {', '.join(api_key.scopes)}). "
            "It is printed this once: store it now."
        )
        self.stdout.write(key)

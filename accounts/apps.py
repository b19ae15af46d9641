from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and tokens"

    def ready(self) -> None:
        # registers the checks, connects receivers, describes the auth in the OpenAPI schema
        from . import checks, receivers, schema  # noqa: F401

from django.apps import AppConfig


class ServerApiConfig(AppConfig):
    name = "serverapi"
    verbose_name = "Server API"

    def ready(self) -> None:
        from . import checks, schema  # noqa: F401  (registers the checks, the schema extension)

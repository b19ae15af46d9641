from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo page at ``/`` (docs/demo.md): templates, the built front end, one view."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"

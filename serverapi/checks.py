"""System checks for the server API's settings."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_server_api_settings(app_configs, **kwargs) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if settings.SERVER_API_RATE_LIMIT < 0:
        errors.append(
            Error("SERVER_API_RATE_LIMIT must be 0 (off) or positive.", id="serverapi.E001")
        )
    if not settings.SERVER_API_CALL_TIMEOUT_MAX > 0:
        errors.append(Error("SERVER_API_CALL_TIMEOUT_MAX must be positive.", id="serverapi.E002"))
    return errors

"""System checks for the accounts settings."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_ticket_ttl(app_configs, **kwargs) -> list[CheckMessage]:
    """``WS_TICKET_TTL`` must be positive: a ticket that expires at once connects nobody."""
    if not settings.WS_TICKET_TTL > 0:
        return [Error("WS_TICKET_TTL must be positive.", id="accounts.E001")]
    return []

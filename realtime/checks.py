"""System checks for realtime settings that cannot work together. Module map: docs/realtime.md."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from realtime import transport
from realtime.conf import realtime_settings


@register()
def check_realtime_settings(app_configs, **kwargs):
    problems: list[CheckMessage] = []
    rs = realtime_settings
    heartbeat = rs.WEBSOCKET_PING_INTERVAL + rs.WEBSOCKET_PING_TIMEOUT
    if heartbeat >= rs.SESSION_TTL:
        problems.append(
            Error(
                "SESSION_TTL must exceed WEBSOCKET_PING_INTERVAL + WEBSOCKET_PING_TIMEOUT "
                f"({rs.SESSION_TTL} <= {heartbeat}); live sockets would flicker offline.",
                id="realtime.E001",
            )
        )
    if rs.DOC_SAVE_MAX_WAIT < rs.DOC_SAVE_DEBOUNCE:
        problems.append(
            Error("DOC_SAVE_MAX_WAIT must be at least DOC_SAVE_DEBOUNCE.", id="realtime.E002")
        )
    for name in (
        "SEND_BUFFER_MAX_BYTES",
        "SEND_STALL_TIMEOUT",
        "DOC_MAX_PENDING_UPDATES",
        "CONNECT_TIMEOUT",
        "MAX_UNAUTHENTICATED_PER_ADDRESS",
        "YJS_MESSAGE_RATE",
        "YJS_MESSAGE_BURST",
        "AWARENESS_MAX_IDS_PER_CONNECTION",
        "AWARENESS_MAX_STATE_BYTES",
        "AWARENESS_MAX_DOCUMENT_BYTES",
        "WEBSOCKET_PING_INTERVAL",
        "WEBSOCKET_PING_TIMEOUT",
        "SESSION_TTL",
        "EVENT_RATE",
        "EVENT_BURST",
        "MAX_SOCKETS_PER_USER",
        "WEBSOCKET_MAX_MESSAGE_BYTES",
        "RECOVERY_LOG_SIZE",
    ):
        if getattr(rs, name) <= 0:
            problems.append(Error(f"{name} must be positive.", id="realtime.E003"))
    if rs.RECOVERY_WINDOW < 0:
        problems.append(Error("RECOVERY_WINDOW must be 0 (off) or positive.", id="realtime.E004"))
    try:
        re.compile(rs.RECOVERY_SKIP_USER_AGENTS)
    except (re.error, TypeError):
        problems.append(
            Error("RECOVERY_SKIP_USER_AGENTS must be a regular expression.", id="realtime.E005")
        )
    unknown = sorted(set(rs.TRANSPORT_PATCHES_OFF) - set(transport.PIECES))
    if isinstance(rs.TRANSPORT_PATCHES_OFF, str) or unknown:
        problems.append(
            Error(
                f"TRANSPORT_PATCHES_OFF must list piece names of {sorted(transport.PIECES)};"
                f" unknown: {unknown or rs.TRANSPORT_PATCHES_OFF!r}.",
                id="realtime.E006",
            )
        )
    layer = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if settings.REDIS_URL and "redis" not in layer.lower():
        problems.append(
            Warning("REDIS_URL is set but the channel layer is not Redis.", id="realtime.W001")
        )
    return problems

"""Auth events: ``auth:renew``, a connected socket's token renewed in band (docs/protocol.md
§4 and §6). Module map: docs/realtime.md.

The fresh access token is validated by the one function (``realtime.db.validate_token``); if
it is good and of the socket's own user, the socket adopts it (``conn.adopt_token``): its
expiry moves to the new token's ``exp`` and its ``jti`` becomes the new one (a logout of the
new token kicks it; one of the old token no longer does). Anything else is refused with the
token's own code (``invalid_token``, ``token_expired``, ``token_revoked``, ``forbidden``; a
token of another user: ``forbidden``) and nothing changes: the old expiry still fires.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from accounts.tokens import TokenRejected
from config.formats import iso
from realtime.db import validate_token
from realtime.events.registry import EventError, Payload, on


class Renew(Payload):
    token: str = Field(min_length=1, max_length=4096)


@on("auth:renew", Renew)
async def renew(conn, payload: Renew) -> dict:
    """Adopt a fresh access token of the same user; acks ``{"ok": true, "expires_at"}``."""
    try:
        validated = await validate_token(payload.token)
    except TokenRejected as rejected:
        raise EventError(rejected.code, rejected.message) from None
    if conn.closed:
        raise EventError("unauthorized", "The socket is closing.")
    if validated.user.pk != conn.user.pk:
        raise EventError("forbidden", "The token belongs to another user.")
    conn.adopt_token(validated)
    return {"ok": True, "expires_at": iso(datetime.fromtimestamp(validated.expires_at, tz=UTC))}

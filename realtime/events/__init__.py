"""Client → server Socket.IO events: one handler per event, each with a payload schema.

``HANDLERS`` is the explicit registry (event name → schema + coroutine), built here from the
families listed in ``FAMILIES`` (one module per family: ``auth``, ``chat``, ``notes``,
``documents``); a test pins it to the event table in docs/protocol.md, both ways. The consumer
never looks a handler up by a name a client chose in any other way. ``dispatch`` validates the
first event argument against the schema (``bad_request`` on failure: nothing happens), runs
the handler and returns the ack payload. A refusal raises ``EventError(code, message)``;
codes: bad_request, unauthorized, forbidden, not_found, rate_limited, too_large, conflict
(``auth:renew`` also refuses with a token's own code: docs/protocol.md §6).

Identity fields a client sends (``user_id``, ``user_name`` …) are ignored for authorization:
handlers act as ``conn.user``, the user the socket authenticated as.
Module map: docs/realtime.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from realtime import metrics
from realtime.events import auth, chat, documents, notes
from realtime.events.registry import Entry, EventError, collect, describe

FAMILIES = (auth, chat, notes, documents)
HANDLERS: dict[str, Entry] = collect(*FAMILIES)
metrics.register_event_names(HANDLERS)  # counted by name; any other name as "other"


async def dispatch(conn, name: str, args: list) -> Any:
    """Run event ``name`` for ``conn``; returns the ack payload or raises ``EventError``."""
    entry = HANDLERS.get(name)
    if entry is None:
        raise EventError("bad_request", f"Unknown event {name[:64]!r}.")
    raw = args[0] if args else {}
    try:
        payload = entry.schema.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        raise EventError("bad_request", describe(error)) from None
    return await entry.handler(conn, payload)

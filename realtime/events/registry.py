"""The pieces every event family uses: ``on`` marks a handler with its event name and payload
schema, ``collect`` builds the registry from a list of families (``realtime.events``),
``Payload`` is the schema base, ``EventError`` the refusal, ``revalidate`` the token re-check
an event's optional ``auth`` asks for. Module map: docs/realtime.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accounts.tokens import TokenRejected
from realtime.db import validate_token


class EventError(Exception):
    """A refused event; acked as ``{"error": {"code", "message", **details}}``."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_ack(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class Payload(BaseModel):
    """Base schema: unknown fields are ignored (clients send extras such as ``user_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Auth(Payload):
    token: str = Field(min_length=1, max_length=4096)


Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Entry:
    schema: type[Payload]
    handler: Handler


def describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"Invalid payload: {where}: {first['msg']}"


async def revalidate(conn, auth: Auth | None) -> None:
    """Re-check the token a client presents again; it must be the socket's own user's."""
    if auth is None:
        return
    try:
        validated = await validate_token(auth.token)
    except TokenRejected as rejected:
        code = "forbidden" if rejected.status == 403 else "unauthorized"
        raise EventError(code, rejected.message) from None
    if validated.user.pk != conn.user.pk:
        raise EventError("forbidden", "The token belongs to another user.")
    conn.adopt_token(validated)


def on(name: str, schema: type[Payload]) -> Callable[[Handler], Handler]:
    """Mark ``handler`` as the handler of event ``name`` with payload ``schema``. Marking
    registers nothing: ``collect`` reads the marks of the families it is given."""

    def mark(handler: Handler) -> Handler:
        handler.chorus_event = (name, Entry(schema, handler))  # type: ignore[attr-defined]
        return handler

    return mark


def collect(*families: ModuleType) -> dict[str, Entry]:
    """``{event name: Entry}`` of every handler marked with ``on`` in ``families``; two
    handlers for one name raise ``RuntimeError``."""
    handlers: dict[str, Entry] = {}
    for family in families:
        for value in vars(family).values():
            marked = getattr(value, "chorus_event", None)
            if marked is None:
                continue
            name, entry = marked
            if handlers.setdefault(name, entry) is not entry:
                raise RuntimeError(f"Event {name!r} has two handlers")
    return handlers

"""Client → server Socket.IO events: one handler per event, each with a payload schema.

``HANDLERS`` is the explicit registry (event name → schema + coroutine); the consumer never
looks a handler up by a name a client chose in any other way. ``dispatch`` validates the
first event argument against the schema (``bad_request`` on failure: nothing happens), runs
the handler and returns the ack payload. A refusal raises ``EventError(code, message)``;
codes: bad_request, unauthorized, forbidden, not_found, rate_limited, too_large, conflict.

Identity fields a client sends (``user_id``, ``user_name`` …) are ignored for authorization:
handlers act as ``conn.user``, the user the socket authenticated as.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.db.models import Q
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accounts.tokens import TokenRejected
from config.formats import iso
from realtime import push
from realtime.conf import realtime_settings
from realtime.db import orm, validate_token
from realtime.hub import get_hub


class EventError(Exception):
    """A refused event; acked as ``{"error": {"code", "message", **details}}``."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_ack(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


# --- schemas ----------------------------------------------------------------------------------


class Payload(BaseModel):
    """Base schema: unknown fields are ignored (clients send extras such as ``user_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Auth(Payload):
    token: str = Field(min_length=1, max_length=4096)


class UserJoin(Payload):
    auth: Auth | None = None


class Heartbeat(Payload):
    pass


class JoinChannels(Payload):
    auth: Auth | None = None


class JoinNote(Payload):
    note_id: uuid.UUID
    auth: Auth | None = None


class TypingData(Payload):
    typing: bool


class ChannelEventData(Payload):
    type: Literal["typing", "last_read_at"]
    data: TypingData | None = None


class ChannelEvent(Payload):
    channel_id: uuid.UUID
    message_id: uuid.UUID | None = None
    data: ChannelEventData


# --- registry ---------------------------------------------------------------------------------

Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Entry:
    schema: type[Payload]
    handler: Handler


HANDLERS: dict[str, Entry] = {}


def on(name: str, schema: type[Payload]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = Entry(schema, handler)
        return handler

    return register


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"Invalid payload: {where}: {first['msg']}"


async def dispatch(conn, name: str, args: list) -> Any:
    """Run event ``name`` for ``conn``; returns the ack payload or raises ``EventError``."""
    entry = HANDLERS.get(name)
    if entry is None:
        raise EventError("bad_request", f"Unknown event {name[:64]!r}.")
    raw = args[0] if args else {}
    try:
        payload = entry.schema.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        raise EventError("bad_request", _describe(error)) from None
    return await entry.handler(conn, payload)


# --- helpers ----------------------------------------------------------------------------------


async def _revalidate(conn, auth: Auth | None) -> None:
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


@orm
def _member_channel_ids(user_id) -> list[str]:
    from channels_app.access import open_channel_ids

    return open_channel_ids(user_id)


@orm
def _is_member(user_id, channel_id) -> bool:
    from channels_app.access import is_open_channel_member

    return is_open_channel_member(user_id, channel_id)


class TypingGate:
    """Per process: a user's typing state in a channel is relayed at most once per
    ``TYPING_MIN_INTERVAL``; a change of state (start ↔ stop) always passes."""

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[bool, float]] = {}

    def allow(self, user_id: str, channel_id: str, typing: bool) -> bool:
        now = time.monotonic()
        interval = realtime_settings.TYPING_MIN_INTERVAL
        previous = self._last.get((user_id, channel_id))
        if previous is not None and previous[0] == typing and now - previous[1] < interval:
            return False
        if len(self._last) >= self.MAX_ENTRIES:
            self._last = {k: v for k, v in self._last.items() if now - v[1] < interval}
        self._last[(user_id, channel_id)] = (typing, now)
        return True


typing_gate = TypingGate()


async def _join_channels(conn) -> list[str]:
    channel_ids = await _member_channel_ids(conn.user.pk)
    for channel_id in channel_ids:
        await conn.join(push.channel_room(channel_id))
    if channel_ids:
        # A removal (or archive, or delete) that commits while we read sends its leave to
        # this socket's hub, which may handle it before the joins above and find nothing to
        # leave. Re-read after joining and leave what is no longer ours: the socket never
        # stays in the room of a channel it lost.
        current = set(await _member_channel_ids(conn.user.pk))
        for channel_id in channel_ids:
            if channel_id not in current:
                conn.leave(push.channel_room(channel_id))
        channel_ids = [channel_id for channel_id in channel_ids if channel_id in current]
    return channel_ids


async def _require_member(conn, channel_id: uuid.UUID) -> str:
    cid = str(channel_id)
    if push.channel_room(cid) not in conn.rooms and not await _is_member(conn.user.pk, cid):
        raise EventError("forbidden", "You are not a member of this channel.")
    return cid


# --- handlers ---------------------------------------------------------------------------------


@on("user-join", UserJoin)
async def user_join(conn, payload: UserJoin) -> dict:
    """(Re)join the user's room and every channel room; returns the public profile."""
    await _revalidate(conn, payload.auth)
    await conn.join(push.user_room(conn.user.pk))
    await _join_channels(conn)
    return conn.user.public_profile()


class LastActiveGate:
    """Per process: a user's ``last_active_at`` write is attempted at most once per
    ``LAST_ACTIVE_WRITE_INTERVAL``, so most heartbeats never leave memory."""

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    def due(self, user_id: str) -> bool:
        now = time.monotonic()
        if self._next.get(user_id, 0.0) > now:
            return False
        if len(self._next) >= self.MAX_ENTRIES:
            self._next = {k: v for k, v in self._next.items() if v > now}
        self._next[user_id] = now + realtime_settings.LAST_ACTIVE_WRITE_INTERVAL
        return True


last_active_gate = LastActiveGate()


@orm
def _write_last_active(user_id: str) -> bool:
    """Write ``last_active_at`` unless the stored value is within the interval. The condition
    is part of the UPDATE, so across all instances a user gets at most one write per
    interval (the database decides; no lock, no extra round trip)."""
    from accounts.models import User

    now = timezone.now()
    cutoff = now - timedelta(seconds=realtime_settings.LAST_ACTIVE_WRITE_INTERVAL)
    stale = Q(last_active_at__isnull=True) | Q(last_active_at__lte=cutoff)
    return bool(User.objects.filter(stale, pk=user_id).update(last_active_at=now))


@on("heartbeat", Heartbeat)
async def heartbeat(conn, payload: Heartbeat) -> dict:
    conn.last_seen = time.time()
    user_id = str(conn.user.pk)
    if last_active_gate.due(user_id):
        await _write_last_active(user_id)
    return {}


@on("join-channels", JoinChannels)
async def join_channels(conn, payload: JoinChannels) -> dict:
    await _revalidate(conn, payload.auth)
    return {"channels": await _join_channels(conn)}


@orm
def note_access(user, note_id) -> str | None:
    """``"write"``, ``"read"`` or None for ``user`` on the note — None also when there is no
    such note: callers answer a missing and an unreadable note alike (as REST's 404 does)."""
    from notes.models import Note

    note = Note.objects.filter(pk=note_id).first()
    return None if note is None else note.access_for(user)


@orm
def access_by_user(note_id: str, user_ids: set[str]) -> dict[str, str | None]:
    """``{user id: "write" | "read" | None}`` for one note (None for all if it is gone)."""
    from accounts.models import User
    from notes.models import Note

    note = Note.objects.filter(pk=note_id).first()
    if note is None:
        return {}
    return {str(user.pk): note.access_for(user) for user in User.objects.filter(pk__in=user_ids)}


async def recheck_note_room(message: dict) -> None:
    """A note's grants changed (``push.document_access_changed``, a ``chorus.note_access``
    hub message to ``note.<id>``): this process's sockets in the room whose user can no
    longer read the note leave it, each told with ``note-events`` ``{"id", "access": null}``
    — the ``everyone`` grant included, whose users no query could list in advance."""
    hub = get_hub()
    note_id = str(message.get("note_id", ""))
    room = push.note_room(note_id)
    conns = [conn for conn in tuple(hub.rooms.get(room, ())) if conn.user is not None]
    if not conns:
        return
    access = await access_by_user(note_id, {str(conn.user.pk) for conn in conns})
    notice = push.event_frame("note-events", {"id": note_id, "access": None})
    for conn in conns:
        if conn.user is not None and room in conn.rooms and access.get(str(conn.user.pk)) is None:
            hub.leave(conn, room)
            await conn.send_frame(notice)
            await conn.on_room_left(room)


def no_such_note() -> EventError:
    """The refusal for a note that does not exist or that the user may not read (the two
    are not told apart)."""
    return EventError("not_found", "No such note.")


@on("join-note", JoinNote)
async def join_note(conn, payload: JoinNote) -> dict:
    await _revalidate(conn, payload.auth)
    if await note_access(conn.user, payload.note_id) is None:
        raise no_such_note()
    get_hub().on_message("chorus.note_access", recheck_note_room)
    room = push.note_room(payload.note_id)
    await conn.join(room)
    # A grant change published between the check and the join did not see this socket.
    if await note_access(conn.user, payload.note_id) is None:
        conn.leave(room)
        raise no_such_note()
    return {"note_id": str(payload.note_id)}


@orm
def _mark_read(user_id, channel_id) -> datetime:
    from channels_app.access import memberships_of

    now = timezone.now()
    updated = memberships_of(user_id).filter(channel=channel_id).update(last_read_at=now)
    if not updated:
        raise EventError("forbidden", "You are not a member of this channel.")
    return now


@on("events:channel", ChannelEvent)
async def channel_event(conn, payload: ChannelEvent) -> dict:
    kind = payload.data.type
    if kind == "last_read_at":
        return {"last_read_at": iso(await _mark_read(conn.user.pk, payload.channel_id))}
    if payload.data.data is None:
        raise EventError("bad_request", "Invalid payload: data.data: typing is required")
    channel_id = await _require_member(conn, payload.channel_id)
    typing = payload.data.data.typing
    if typing_gate.allow(str(conn.user.pk), channel_id, typing):
        relayed: dict = {"channel_id": channel_id}
        if payload.message_id is not None:  # typing in a thread
            relayed["message_id"] = str(payload.message_id)
        relayed["data"] = {"type": "typing", "data": {"typing": typing}}
        relayed["user"] = conn.user.ref()
        # Typing is ephemeral: the ack does not wait for the layer (no Redis round trip).
        push.emit_soon(push.channel_room(channel_id), "events:channel", relayed, skip_sid=conn.sid)
    return {}

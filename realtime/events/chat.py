"""Chat events: ``user-join``, ``heartbeat``, ``join-channels``, ``events:channel`` (typing,
read receipts). Membership is asked of ``channels_app.access``; docs/protocol.md §6.
Module map: docs/realtime.md."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Literal

from django.db.models import Q
from django.utils import timezone

from config.formats import iso
from realtime import metrics, push, rooms
from realtime.access import channel_ids_of, is_channel_member
from realtime.conf import realtime_settings
from realtime.db import orm
from realtime.events.registry import Auth, EventError, Payload, on, revalidate


class UserJoin(Payload):
    auth: Auth | None = None


class Heartbeat(Payload):
    pass


class JoinChannels(Payload):
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
    channel_ids = await channel_ids_of(conn.user.pk)
    for channel_id in channel_ids:
        await conn.join(rooms.channel_room(channel_id))
    if channel_ids:
        # A removal (or archive, or delete) that commits while we read sends its leave to
        # this socket's hub, which may handle it before the joins above and find nothing to
        # leave. Re-read after joining and leave what is no longer ours: the socket never
        # stays in the room of a channel it lost.
        current = set(await channel_ids_of(conn.user.pk))
        for channel_id in channel_ids:
            if channel_id not in current:
                conn.leave(rooms.channel_room(channel_id))
        channel_ids = [channel_id for channel_id in channel_ids if channel_id in current]
    return channel_ids


async def _require_member(conn, channel_id: uuid.UUID) -> str:
    cid = str(channel_id)
    if rooms.channel_room(cid) not in conn.rooms and not await is_channel_member(conn.user.pk, cid):
        raise EventError("forbidden", "You are not a member of this channel.")
    return cid


@on("user-join", UserJoin)
async def user_join(conn, payload: UserJoin) -> dict:
    """(Re)join the user's room and every channel room; returns the public profile."""
    await revalidate(conn, payload.auth)
    await conn.join(rooms.user_room(conn.user.pk))
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
    if last_active_gate.due(user_id) and await _write_last_active(user_id):
        metrics.HEARTBEAT_WRITES.inc()
    return {}


@on("join-channels", JoinChannels)
async def join_channels(conn, payload: JoinChannels) -> dict:
    await revalidate(conn, payload.auth)
    return {"channels": await _join_channels(conn)}


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
        push.emit_soon(rooms.channel_room(channel_id), "events:channel", relayed, skip_sid=conn.sid)
    return {}

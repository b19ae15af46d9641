"""Presence announcements: ``events:channel`` type ``presence`` to each of the user's channels
when their first session anywhere opens and when their last one closes or expires.

The payload is public only: user id, name, status, ``last_active_at``.

Sockets and the hub's session sweep queue their changes on the hub (``Hub.presence``, a
``PresenceQueue``); one task per hub announces everything queued so far with one database
round trip for the whole batch, after the socket's CONNECT reply has gone out. A connect storm
of N users costs a handful of queries, not N, and no socket waits for its own announcement.
Changes are announced in the order they were queued.

An announcement goes only to rooms a socket can hear (``Hub.may_reach``): with the in-memory
layer (one process) a channel room no local socket is in is skipped, and while no socket is in
any channel room the batch needs no query at all — sockets that connect before they
``user-join`` (a reconnect storm) cost no presence work. Across processes every room may have
listeners elsewhere, so every channel is announced. Announcements are live deltas: a socket
that joins a channel room after one was sent reads the current state from the presence
endpoint (docs/channels.md), as it would for any change made before it joined.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from realtime.db import orm
from realtime.protocol.frames import event_frame
from realtime.rooms import CHANNEL_ROOMS, channel_room
from realtime.sessions import Change

logger = logging.getLogger("chorus.realtime.presence")


class Reach(Protocol):
    """Which rooms this process's sockets can hear, and the way to send to them (the process
    hub implements it, checked by mypy; the hub owns the ``PresenceQueue``, so presence does
    not import it)."""

    def may_reach(self, room: str) -> bool: ...

    def may_reach_kind(self, kind: str) -> bool: ...

    async def emit(self, room: str, frame: str, skip: str | None = None) -> None: ...


@orm
def _audience(user_ids: list[str]) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """Each user's channels (active memberships of channels not archived), and the stored
    ``last_active_at`` (ISO 8601 or None) of each user who has any."""
    from channels_app.access import active_memberships

    channels: dict[str, list[str]] = {}
    last_active: dict[str, str | None] = {}
    for user_id, channel_id, seen in active_memberships(user_ids):
        channels.setdefault(user_id, []).append(channel_id)
        last_active[user_id] = seen.isoformat() if seen else None
    return channels, last_active


async def announce(changes: list[Change], hub: Reach) -> None:
    """Tell each affected user's channels that the user came online or went offline (those
    channels whose room a socket can hear: see the module docstring)."""
    if not changes or not hub.may_reach_kind(CHANNEL_ROOMS):
        return
    channels, last_active = await _audience(list({change.user_id for change in changes}))
    for change in changes:
        user = change.record.user
        for channel_id in channels.get(change.user_id, ()):
            room = channel_room(channel_id)
            if not hub.may_reach(room):
                continue
            frame = event_frame(
                "events:channel",
                {
                    "channel_id": channel_id,
                    "data": {
                        "type": "presence",
                        "data": {
                            "user_id": change.user_id,
                            "status": "online" if change.online else "offline",
                            "last_active_at": last_active.get(change.user_id),
                        },
                    },
                    "user": {"id": user.get("id"), "name": user.get("name")},
                },
            )
            await hub.emit(room, frame, change.record.sid)  # not to the socket that came online


class PresenceQueue:
    """Presence changes waiting to be announced, and the task announcing them in batches.
    The process hub owns one (``Hub.presence``); call ``add`` from its event loop."""

    def __init__(self, hub: Reach) -> None:
        self.hub = hub
        self.queue: list[Change] = []
        self.task: asyncio.Task | None = None

    def add(self, changes: list[Change]) -> None:
        self.queue.extend(changes)
        if self.queue and (self.task is None or self.task.done()):
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                await announce(batch, self.hub)
            except Exception:
                logger.exception("announcing %d presence changes failed", len(batch))

"""Session upkeep: the task that keeps one process's sessions alive and finds dead ones.

Owns ``SessionKeeper``. Each round (every ``min(SESSION_SWEEP_INTERVAL, SESSION_TTL / 3)``):
closes sockets whose client stopped reading (``Connection.check_stalled``), pushes the deadlines
of the hub's local sockets forward (re-adding any a sweep removed meanwhile), sweeps expired
sessions of any instance, refreshes the document groups (``doc.*`` rooms) of local sockets,
queues the presence changes on the hub, and has the hub re-add its layer subscriptions before
the layer's ``group_expiry`` can lapse them. The hub starts and stops it with itself.
Architecture: docs/realtime.md ("Sessions and presence").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from realtime.conf import realtime_settings
from realtime.rooms import DOC_ROOMS
from realtime.sessions.base import Change, SessionRecord
from realtime.sessions.current import get_registry

logger = logging.getLogger("chorus.realtime.keeper")


class KeptConnection(Protocol):
    """What the keeper needs of a socket (the hub's ``Connection`` has it)."""

    sid: str
    rooms: set[str]

    def check_stalled(self, now: float) -> None: ...

    def session_record(self) -> SessionRecord: ...


class Changes(Protocol):
    """Where the keeper queues presence changes (the hub's ``PresenceQueue``)."""

    def add(self, changes: list[Change]) -> None: ...


class KeptProcess(Protocol):
    """What the keeper needs of the process it keeps (the process hub implements it; mypy
    checks that it does): its sockets, its presence queue, its channel layer, and its room
    subscriptions. The keeper only reads them (read-only here, so the hub's narrower types
    fit)."""

    @property
    def connections(self) -> Mapping[str, KeptConnection]: ...

    @property
    def presence(self) -> Changes: ...

    @property
    def layer(self) -> Any: ...

    async def resubscribe(self) -> None: ...


class SessionKeeper:
    """The upkeep of one hub's sessions: ``run`` loops until cancelled, ``keep`` is one round."""

    def __init__(self, hub: KeptProcess) -> None:
        self.hub = hub
        self._last_group_refresh = time.monotonic()

    async def run(self) -> None:
        """Run a round every interval, forever; a failed round is logged, never fatal."""
        while True:
            interval = min(
                realtime_settings.SESSION_SWEEP_INTERVAL, realtime_settings.SESSION_TTL / 3
            )
            await asyncio.sleep(interval)
            try:
                await self.keep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("session upkeep failed")

    async def keep(self) -> None:
        """One upkeep round: refresh local sessions, sweep expired ones, refresh groups."""
        hub, registry = self.hub, get_registry()
        now = time.monotonic()
        for conn in tuple(hub.connections.values()):
            conn.check_stalled(now)
        records = [conn.session_record() for conn in hub.connections.values()]
        changes = await registry.refresh(records) if records else []
        # A socket that closed while the refresh was on its way was removed before the refresh
        # re-added it (Redis runs them in that order): remove it again, announcing nothing (its
        # close announced what there was to announce).
        closed = {r.sid: r for r in records if r.sid not in hub.connections}
        if closed:
            changes = [change for change in changes if change.record.sid not in closed]
            for record in closed.values():
                await registry.remove(record.sid, record.user_id)
        changes += await registry.sweep()
        groups: dict[str, list[str]] = {}
        for conn in hub.connections.values():
            for room in conn.rooms:
                if room.startswith(DOC_ROOMS):
                    groups.setdefault(room, []).append(conn.sid)
        for group, sids in groups.items():
            await registry.join_group(group, sids)
        hub.presence.add(changes)
        # Re-add subscriptions before group_expiry lapses them, and often enough that a Redis
        # restart (which forgets groups) heals quickly.
        expiry = getattr(hub.layer, "group_expiry", 86400)
        every = min(expiry / 2, realtime_settings.GROUP_REFRESH_INTERVAL)
        if time.monotonic() - self._last_group_refresh > every:
            self._last_group_refresh = time.monotonic()
            await hub.resubscribe()

"""Session upkeep: the task that keeps one process's sessions alive and finds dead ones.

Owns ``SessionKeeper``. Each round (every ``min(SESSION_SWEEP_INTERVAL, SESSION_TTL / 3)``):
closes sockets whose client stopped reading (``Connection.check_stalled``), pushes the deadlines
of the hub's local sockets forward (re-adding any a sweep removed meanwhile), sweeps expired
sessions of any instance, refreshes (every quarter of ``SESSION_TTL``) the registry's lists of the
members of listed rooms (``realtime.rooms.LISTED_KINDS``) for local sockets,
queues the presence changes on the hub, has the hub re-add its layer subscriptions before
the layer's ``group_expiry`` can lapse them, and has it heal after a layer failure
(``Hub.heal``). The hub starts and stops it with itself.
Architecture: docs/realtime.md ("Sessions and presence").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from realtime.conf import realtime_settings
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

    async def heal(self) -> None: ...

    def listed_memberships(self) -> dict[str, list[str]]: ...


class SessionKeeper:
    """The upkeep of one hub's sessions: ``run`` loops until cancelled, ``keep`` is one round."""

    def __init__(self, hub: KeptProcess) -> None:
        self.hub = hub
        self._last_group_refresh = time.monotonic()
        #: When (registry clock) listed memberships were last refreshed.
        self._last_listing: float | None = None

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
        # Listed memberships last one SESSION_TTL: refreshed at least three times in it, in one
        # round trip (joins and leaves themselves are written as they happen, by the hub).
        # The registry's clock: what their deadlines are measured in.
        wall = registry.clock()
        if self._last_listing is None or wall - self._last_listing >= (
            realtime_settings.SESSION_TTL / 4
        ):
            self._last_listing = wall
            await registry.join_groups(hub.listed_memberships())
        hub.presence.add(changes)
        # Re-add subscriptions before group_expiry lapses them, and often enough that a Redis
        # restart (which forgets groups) heals quickly.
        expiry = getattr(hub.layer, "group_expiry", 86400)
        every = min(expiry / 2, realtime_settings.GROUP_REFRESH_INTERVAL)
        if time.monotonic() - self._last_group_refresh > every:
            self._last_group_refresh = time.monotonic()
            await hub.resubscribe()
        # After a layer failure (Redis restarted or failed over): subscriptions and the
        # document edits whose relay was lost (the registry answers again: so does Redis).
        await hub.heal()

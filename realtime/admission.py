"""Sockets not yet authenticated, counted per client address in this process.

A socket is *unauthenticated* from its accept until its token validates (the Socket.IO CONNECT,
the y-websocket accept) or it closes. Such a socket can hold little (it may send only a CONNECT,
within ``CONNECT_TIMEOUT``), but a client could open thousands: at most
``MAX_UNAUTHENTICATED_PER_ADDRESS`` per client address (``config.proxies``: the socket peer
unless it is a trusted proxy) are admitted at once; the next is closed with 4429.
Module map: docs/realtime.md.
"""

from __future__ import annotations

from realtime.conf import realtime_settings


class Unauthenticated:
    """Per-address counts of this process's unauthenticated sockets (one event loop's
    callers; no locking needed)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count one more socket from ``address``; False (nothing counted) at the cap."""
        count = self._counts.get(address, 0)
        if count >= realtime_settings.MAX_UNAUTHENTICATED_PER_ADDRESS:
            return False
        self._counts[address] = count + 1
        return True

    def release(self, address: str) -> None:
        """One socket of ``address`` authenticated or closed (call once per ``admit``)."""
        count = self._counts.get(address, 0) - 1
        if count > 0:
            self._counts[address] = count
        else:
            self._counts.pop(address, None)

    def count(self, address: str) -> int:
        return self._counts.get(address, 0)


unauthenticated = Unauthenticated()

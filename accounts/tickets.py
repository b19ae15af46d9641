"""Single-use connection tickets: ``POST /api/auth/ws-ticket/`` hands one out, a WebSocket
handshake's ``?ticket=`` spends it (docs/protocol.md §4.2).

Why: a browser cannot set headers on a WebSocket, so a token would travel in the URL, which
browser consoles (a failed handshake prints it) and proxies' access logs record. A ticket is
worth one connection within ``WS_TICKET_TTL`` seconds: whatever leaks is spent or expired.

- ``issue(validated)`` makes a random ticket for the caller's access token. Only its SHA-256
  is stored, with the token's claims (user, ``jti``, ``iat``, ``exp``: a ``Grant``), never the
  token, for ``WS_TICKET_TTL`` seconds.
- ``take_grants(tickets)`` removes and returns each ticket's grant atomically (Redis
  ``GETDEL``; in memory a dict pop under a lock): of two redemptions of one ticket, however
  concurrent and on whichever instances, exactly one gets the grant. Unknown, spent, expired
  or malformed: None.
- A ticket is then validated as the token it stands for (``accounts.tokens``: the token's
  expiry, its revocation, a revoke-all after it, its user's state), and the result is that
  token's ``ValidatedToken`` — so a socket opened with a ticket expires at the token's ``exp``
  and is kicked by the token's logout or a revoke-all like any other. ``redeem(ticket)`` is
  that in one call (sync); async code passes a ``Ticket`` to ``realtime.db.validate_token``
  (the same function, batched on the ORM thread).
- ``Ticket`` is a ticket as a credential (``scope["credentials"]``); its repr hides it. No
  ticket is ever logged.

One interface, two backends (``TicketStore``), chosen by ``get_store``: ``MemoryTicketStore``
without ``REDIS_URL`` (one process), ``RedisTicketStore`` with it (every instance shares it).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from django.conf import settings

from config.redis import sync_pool

if TYPE_CHECKING:
    from .tokens import ValidatedToken

#: What a ticket looks like (``secrets.token_urlsafe(32)``: 43 characters); anything else is
#: refused without a store lookup.
_SHAPE = re.compile(r"\A[A-Za-z0-9_-]{16,128}\Z")


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket presented by a client, as a credential. Never printed (``repr`` hides it)."""

    raw: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a ticket stands for: the claims of the access token it was issued against."""

    user_id: str
    jti: str
    issued_at: int
    expires_at: int

    def to_json(self) -> str:
        data = [self.user_id, self.jti, self.issued_at, self.expires_at]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Grant:
        user_id, jti, issued_at, expires_at = json.loads(raw)
        return cls(user_id, jti, int(issued_at), int(expires_at))


def digest(raw: str) -> str:
    """The stored form of a ticket (tickets are 256 random bits: no salt needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


class TicketStore(ABC):
    """Tickets by digest, each taken at most once (module docstring)."""

    @abstractmethod
    def put(self, key: str, grant: Grant, ttl: float) -> None:
        """Keep ``grant`` under ``key`` for ``ttl`` seconds."""

    @abstractmethod
    def take(self, keys: Sequence[str]) -> list[Grant | None]:
        """For each key, its grant, removed — or None (unknown, taken already, expired). One
        key twice: the first gets the grant."""


class MemoryTicketStore(TicketStore):
    """One process's tickets; thread-safe. ``clock`` (monotonic seconds) times them."""

    #: Tickets kept at most: past it, expired ones are dropped, then the oldest.
    MAX_TICKETS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tickets: dict[str, tuple[float, Grant]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, grant: Grant, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            if len(self._tickets) >= self.MAX_TICKETS:
                self._tickets = {k: v for k, v in self._tickets.items() if v[0] > now}
                while len(self._tickets) >= self.MAX_TICKETS:
                    del self._tickets[next(iter(self._tickets))]
            self._tickets[key] = (now + ttl, grant)

    def take(self, keys: Sequence[str]) -> list[Grant | None]:
        with self._lock:
            now = self._clock()
            found = [self._tickets.pop(key, None) for key in keys]
        return [entry[1] if entry is not None and entry[0] > now else None for entry in found]


class RedisTicketStore(TicketStore):
    """Tickets in Redis, one key each (``chorus:ticket:<digest>``) expiring by itself; a
    ``GETDEL`` per ticket, all of a batch in one round trip. Its own blocking pool
    (``REDIS_MAX_CONNECTIONS``, ``REDIS_POOL_TIMEOUT``): used from the request threads and the
    realtime ORM thread, never from an event loop."""

    PREFIX = "chorus:ticket:"

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        pool = sync_pool(url)  # plain Redis or through Redis Sentinel (config.redis)
        self.client = redis.Redis(connection_pool=pool)

    def put(self, key: str, grant: Grant, ttl: float) -> None:
        self.client.set(self.prefix + key, grant.to_json(), px=max(1, int(ttl * 1000)))

    def take(self, keys: Sequence[str]) -> list[Grant | None]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.getdel(self.prefix + key)
        return [None if raw is None else Grant.from_json(raw) for raw in pipe.execute()]

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()


_memory_store = MemoryTicketStore()
_redis_stores: dict[str, RedisTicketStore] = {}
_redis_lock = threading.Lock()


def get_store() -> TicketStore:
    """The store of this process: Redis when ``REDIS_URL`` is set, else in memory."""
    url = settings.REDIS_URL
    if not url:
        return _memory_store
    store = _redis_stores.get(url)
    if store is None:
        with _redis_lock:
            store = _redis_stores.get(url)
            if store is None:
                store = _redis_stores[url] = RedisTicketStore(url)
    return store


def issue(validated: ValidatedToken) -> dict:
    """A new ticket for the access token ``validated``: ``{"ticket", "expires_in"}`` (seconds,
    ``WS_TICKET_TTL``)."""
    raw = secrets.token_urlsafe(32)
    ttl = settings.WS_TICKET_TTL
    grant = Grant(str(validated.user.pk), validated.jti, validated.issued_at, validated.expires_at)
    get_store().put(digest(raw), grant, ttl)
    return {"ticket": raw, "expires_in": int(ttl) if float(ttl).is_integer() else ttl}


def take_grants(tickets: Sequence[Ticket]) -> list[Grant | None]:
    """Spend ``tickets``: each one's grant, or None (module docstring). A malformed ticket is
    None without a store lookup."""
    wanted = [
        (index, digest(ticket.raw))
        for index, ticket in enumerate(tickets)
        if isinstance(ticket.raw, str) and _SHAPE.match(ticket.raw)
    ]
    grants: list[Grant | None] = [None] * len(tickets)
    if wanted:
        taken = get_store().take([key for _, key in wanted])
        for (index, _), grant in zip(wanted, taken, strict=True):
            grants[index] = grant
    return grants


def redeem(raw: str) -> ValidatedToken:
    """Spend the ticket ``raw`` and validate the token it stands for (sync; it queries the
    database). Raises ``TokenRejected``: ``ticket_invalid`` for a ticket unknown, spent or
    expired, else the token's own code (``token_expired``, ``token_revoked``, ``forbidden``)."""
    from .tokens import validate_access_token  # tokens imports this module

    return validate_access_token(Ticket(raw))


def reset_memory_store() -> None:
    """Forget every in-process ticket (tests)."""
    global _memory_store
    _memory_store = MemoryTicketStore()

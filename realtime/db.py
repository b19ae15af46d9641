"""How realtime code reaches the ORM: ``@orm`` functions run on one worker thread that keeps
one database connection open.

Why not ``channels.db.database_sync_to_async``: it runs each call in a copy of the calling
task's context, and Django's connections are context-local, so every socket got its own
connection, which ``CONN_MAX_AGE = 0`` then closed after each call. On SQLite that meant a
new file open, the WAL pragma and Django's function registrations for every query — a
quarter of the server's profile while sockets connect (docs/benchmarks.md). Here every call
runs in the same dedicated context on the same thread, so there is one connection per
process, opened once:

- calls run one at a time, in order (a single worker thread, as Channels' own);
- after each call a connection that saw an error and is no longer usable, or was left in a
  transaction or with the wrong autocommit, is closed; the next call opens a fresh one;
- on PostgreSQL the connection is one checkout from the pool, held while the process runs;
- ``close_connections()`` closes it (tests call it between tests, so databases can be
  flushed and dropped).

An ``@orm`` function must not call the sync push API (``realtime.push.emit_to_*``): that
hands work to ``async_to_sync``, which from this thread would not reach the server's loop.
Async callers push after the call returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import connections

from accounts.tokens import validate_access_token

P = ParamSpec("P")
R = TypeVar("R")

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chorus-orm")
#: The one context every call runs in: Django's connection handler finds the same
#: connection objects here on every call.
_context = contextvars.Context()


def _tidy() -> None:
    """Keep the open connection unless it is unusable or was left mid-transaction."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.in_atomic_block or (
            connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]
        ):
            connection.close()
        elif connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()


def _call(function: Callable[..., R], args: tuple, kwargs: dict) -> R:
    try:
        return function(*args, **kwargs)
    finally:
        _tidy()


def orm(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``function`` (sync, may use the ORM) on the realtime ORM thread; awaitable."""

    @functools.wraps(function)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor, _context.run, _call, function, args, kwargs)

    return run


validate_token = orm(validate_access_token)


def close_connections() -> None:
    """Close the ORM thread's connections and wait for it (sync callers: tests between tests,
    a process about to exit). The next ``@orm`` call opens a fresh one."""
    _executor.submit(_context.run, connections.close_all).result()

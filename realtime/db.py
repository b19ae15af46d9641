"""How realtime code reaches the ORM: ``@orm`` functions run on one worker thread that keeps
one database connection open.

Why not ``channels.db.database_sync_to_async``: it calls ``close_old_connections()`` before
and after every call, and with ``CONN_MAX_AGE = 0`` (which HTTP needs under ASGI) that closes
the connection every time. On SQLite that meant a new file open, the WAL pragma and Django's
function registrations for every query — a quarter of the server's profile while sockets
connect (docs/benchmarks.md). Django's connections are per thread, so here one thread keeps
one connection per process:

- calls run one at a time, in order (a single worker thread, as Channels' own);
- after a call, a connection that saw an error and is no longer usable, or was left in a
  transaction or with the wrong autocommit, is closed (and, if it was left inside an atomic
  block, replaced); the next call opens a fresh one;
- before a call, a connection idle for more than ``IDLE_CHECK_SECONDS`` is checked
  (``is_usable``) and replaced if the server dropped it (a restart, an idle timeout);
- on PostgreSQL the connection is one checkout from the pool, held while the process runs;
- ``close_connections()`` closes it (tests call it between tests, so databases can be
  flushed and dropped);
- on PostgreSQL the collaborative update log has a second such thread (``LOG_EXECUTOR``, its
  own connection): acknowledgements wait on its writes, so they never queue behind a save or
  a token check on the first. On SQLite (one writer) it is the same thread, where log writes
  go first (``OrmThread``: an urgent queue).

An ``@orm`` function must not call the sync push API (``realtime.push.emit_to_*``): that
hands work to ``async_to_sync``, which from this thread would not reach the server's loop.
Async callers push after the call returns.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connections

from accounts.tokens import validate_access_tokens
from realtime import metrics

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

logger = logging.getLogger("chorus.realtime.db")


class _Lane(Executor):
    """One of ``OrmThread``'s two queues, as an ``Executor`` (``loop.run_in_executor``)."""

    def __init__(self, thread: OrmThread, urgent: bool) -> None:
        self._thread, self._urgent = thread, urgent

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._thread.submit(self._urgent, fn, args, kwargs)


class OrmThread:
    """One worker thread (one database connection) serving two queues: ``urgent`` calls run
    before any ``normal`` one still waiting — a call already running is never interrupted.

    On SQLite the update log's writes (acknowledgements wait on them) share the ORM thread
    with saves: when many documents save at once (after a restart every room loads at the
    same moment, so their save ceilings fall together), a log write queued behind them would
    wait for all of them; urgent, it waits for the one running (docs/benchmarks.md)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queues: tuple[collections.deque, collections.deque] = (
            collections.deque(),
            collections.deque(),
        )
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.normal, self.urgent = _Lane(self, urgent=False), _Lane(self, urgent=True)

    def submit(self, urgent: bool, fn: Callable, args: tuple, kwargs: dict) -> Future:
        future: Future = Future()
        with self._ready:
            self._queues[0 if urgent else 1].append((future, fn, args, kwargs))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not (self._queues[0] or self._queues[1]):
                    self._ready.wait()
                queue = self._queues[0] if self._queues[0] else self._queues[1]
                future, fn, args, kwargs = queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # handed to the caller, as an executor does
                future.set_exception(error)
            else:
                future.set_result(result)


_orm_thread = OrmThread("chorus-orm")
_executor = _orm_thread.normal


def _log_executor() -> Executor:
    """The update log's executor (``orm_batched(..., LOG_EXECUTOR)``). On PostgreSQL a thread
    and connection of its own: acknowledgements wait on its writes, so saves and token
    checks never delay them. On SQLite the ORM thread's urgent queue: the database has one
    writer, and a second connection would wait for a save's write lock in SQLite's busy
    handler, which sleeps in steps of up to 100 ms (docs/benchmarks.md); urgent, a log write
    waits for the call running at most, never for the calls queued before it."""
    if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
        return _orm_thread.urgent
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="chorus-orm-log")


LOG_EXECUTOR = _log_executor()

#: A connection unused for longer than this is checked before its next query.
IDLE_CHECK_SECONDS = 30.0
#: When each ORM thread last ran a call (its connection's idle time).
_last_call = threading.local()


def _drop(connection) -> None:
    """Close ``connection``; if it was inside an atomic block, also forget the wrapper (its
    transaction state would otherwise outlive the closed connection and fail every call)."""
    wedged = connection.in_atomic_block
    connection.close()
    if wedged:
        logger.error("an ORM call left a transaction open; its connection was replaced")
        del connections[connection.alias]


def _tidy() -> None:
    """Keep the open connection unless it is unusable or was left mid-transaction."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.in_atomic_block or (
            connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]
        ):
            _drop(connection)
        elif connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                _drop(connection)


def _check_idle() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            logger.info("the ORM thread's idle database connection was dropped; reconnecting")
            _drop(connection)


def _call(function: Callable[..., R], args: tuple, kwargs: dict) -> R:
    now = time.monotonic()
    if now - getattr(_last_call, "at", 0.0) > IDLE_CHECK_SECONDS:
        _check_idle()
    _last_call.at = now
    try:
        return function(*args, **kwargs)
    except DatabaseError:
        metrics.DATABASE_ERRORS.inc()
        raise
    finally:
        try:
            _tidy()
        except Exception:  # never replace the call's own result or error
            logger.exception("tidying the ORM thread's connection failed")


def orm(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``function`` (sync, may use the ORM) on the realtime ORM thread; awaitable."""

    @functools.wraps(function)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor, _call, function, args, kwargs)

    return run


class _Batch:
    """The calls waiting for one batched function on one event loop."""

    __slots__ = ("pending", "task")

    def __init__(self) -> None:
        self.pending: list[tuple[object, asyncio.Future]] = []
        self.task: asyncio.Task | None = None


def orm_batched(
    function: Callable[[list[T]], Sequence[R | BaseException]],
    executor: Executor = _executor,
) -> Callable[[T], Awaitable[R]]:
    """Run ``function`` (sync, may use the ORM; items in, one result or exception per item out,
    in order) on the ORM thread (or ``executor``, a one-thread pool) for every call that
    arrives while the previous batch runs: N concurrent calls cost one thread hop and
    ``function``'s queries once, not N times. Awaiting the returned function gives the item's
    result or raises its exception."""
    batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = (
        weakref.WeakKeyDictionary()
    )

    async def drain(loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        try:
            while batch.pending:
                calls, batch.pending = batch.pending, []
                items = [item for item, _ in calls]
                try:
                    results = await loop.run_in_executor(executor, _call, function, (items,), {})
                except Exception as error:  # the whole batch failed: every caller hears it
                    results = [error] * len(calls)
                for (_, future), result in zip(calls, results, strict=True):
                    if future.done():  # the caller went away
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            batch.task = None

    @functools.wraps(function)
    async def call(item: T) -> R:
        loop = asyncio.get_running_loop()
        batch = batches.get(loop)
        if batch is None:
            batch = batches[loop] = _Batch()
        future = loop.create_future()
        batch.pending.append((item, future))
        if batch.task is None:
            batch.task = loop.create_task(drain(loop, batch))
        return await future

    return call


#: Token validation for sockets: every CONNECT waiting at the moment goes in one batch. A
#: connection ticket (``accounts.tickets.Ticket``) is spent and validated here too.
validate_token = orm_batched(validate_access_tokens)


def close_connections() -> None:
    """Close the ORM thread's connections and wait for it (sync callers: tests between tests,
    a process about to exit). The next ``@orm`` call opens a fresh one."""
    _executor.submit(connections.close_all).result()
    if LOG_EXECUTOR is not _executor:
        LOG_EXECUTOR.submit(connections.close_all).result()

"""``realtime.db.orm_batched``: concurrent calls share one call on the ORM thread, and every
caller gets its own item's answer."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from realtime.db import orm_batched


def recording(answer):
    """A batch function that records each batch it was given and answers item by item."""
    batches: list[list] = []

    def function(items: list) -> list:
        batches.append(list(items))
        return [answer(item) for item in items]

    return function, batches


async def test_concurrent_calls_run_as_one_batch_with_answers_in_place():
    function, batches = recording(lambda item: item * 10)
    double = orm_batched(function)
    assert await asyncio.gather(*(double(i) for i in range(8))) == [i * 10 for i in range(8)]
    assert batches == [list(range(8))]


async def test_an_items_exception_reaches_only_its_caller():
    function, _ = recording(lambda item: ValueError(f"bad {item}") if item % 2 else item)
    check = orm_batched(function)
    results = await asyncio.gather(*(check(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[2] == 2
    assert [str(results[1]), str(results[3])] == ["bad 1", "bad 3"]


async def test_a_failing_batch_fails_every_caller_and_the_next_batch_runs():
    calls = []

    def function(items: list) -> list:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return items

    echo = orm_batched(function)
    results = await asyncio.gather(echo("a"), echo("b"), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert await echo("c") == "c"


async def test_calls_made_while_a_batch_runs_form_the_next_batch():
    release = threading.Event()

    def function(items: list) -> list:
        if items == ["first"]:
            assert release.wait(5)
        batches.append(list(items))
        return items

    batches: list[list] = []
    echo = orm_batched(function)
    first = asyncio.ensure_future(echo("first"))
    await asyncio.sleep(0.05)  # the first batch is on the ORM thread, waiting
    later = [asyncio.ensure_future(echo(n)) for n in ("x", "y", "z")]
    await asyncio.sleep(0.05)
    release.set()
    assert await first == "first"
    assert await asyncio.gather(*later) == ["x", "y", "z"]
    assert batches == [["first"], ["x", "y", "z"]]


async def test_a_caller_that_went_away_does_not_disturb_the_others():
    release = threading.Event()

    def function(items: list) -> list:
        assert release.wait(5)
        return items

    echo = orm_batched(function)
    gone, kept = asyncio.ensure_future(echo(1)), asyncio.ensure_future(echo(2))
    await asyncio.sleep(0.05)
    gone.cancel()
    release.set()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await gone


def test_urgent_calls_run_before_normal_calls_still_waiting():
    """``OrmThread``: with a call running and normal calls queued, an urgent call runs next;
    each queue keeps its order; an error reaches its own caller only."""
    from realtime.db import OrmThread

    thread = OrmThread("test-orm")
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def step(name: str) -> str:
        order.append(name)
        if name == "bad":
            raise ValueError("bad")
        return name

    def first() -> str:
        started.set()
        release.wait(5)
        return step("running")

    running = thread.normal.submit(first)
    assert started.wait(5)  # the worker is busy from here on
    normal = [thread.normal.submit(step, f"normal{i}") for i in range(3)]
    bad = thread.urgent.submit(step, "bad")
    urgent = [thread.urgent.submit(step, f"urgent{i}") for i in range(2)]
    release.set()
    assert [future.result(5) for future in normal + urgent] == [
        "normal0",
        "normal1",
        "normal2",
        "urgent0",
        "urgent1",
    ]
    assert running.result(5) == "running"
    with pytest.raises(ValueError, match="bad"):
        bad.result(5)
    assert order == ["running", "bad", "urgent0", "urgent1", "normal0", "normal1", "normal2"]


def test_the_log_writes_go_first_or_on_a_thread_of_their_own(settings):
    """The update log's executor: on SQLite the ORM thread's urgent queue (one writer, no
    busy-handler waits, never behind queued saves); on PostgreSQL a thread of its own."""
    from realtime import db

    assert db._executor is db._orm_thread.normal
    if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
        assert db.LOG_EXECUTOR is db._orm_thread.urgent
    else:
        assert isinstance(db.LOG_EXECUTOR, ThreadPoolExecutor)
        assert (
            db.LOG_EXECUTOR.submit(threading.current_thread)
            .result(5)
            .name.startswith("chorus-orm-log")
        )

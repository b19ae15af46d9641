"""The error counters of ``realtime.metrics`` move when the real thing fails: a database error
in an ORM call (``chorus_database_errors_total``), a Redis server that does not answer
(``chorus_redis_errors_total``, through ``realtime.layers.counting_pool``, which the channel
layer and the session registry use). The counters the socket and document paths move are
proven end to end in tests/live/test_metrics_live.py."""

from __future__ import annotations

import socket

import pytest
import redis.asyncio as aioredis
from django.db import DatabaseError, connection
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime import metrics
from realtime.db import orm
from realtime.layers import RedisLayer, counting_pool


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@orm
def _broken_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM chorus_no_such_table")


@orm
def _fine_query() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
async def test_a_database_error_in_an_orm_call_is_counted():
    before = sample("chorus_database_errors_total")
    assert await _fine_query() == 1
    assert sample("chorus_database_errors_total") == before
    with pytest.raises(DatabaseError):
        await _broken_query()
    assert sample("chorus_database_errors_total") == before + 1
    assert await _fine_query() == 1  # the ORM thread goes on


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_redis_connection_failure_is_counted():
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    client = aioredis.Redis(connection_pool=counting_pool(url, max_connections=2, timeout=1))
    before = sample("chorus_redis_errors_total")
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    finally:
        await client.aclose()
    assert sample("chorus_redis_errors_total") > before


def test_the_layer_and_registry_pools_count():
    layer = RedisLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}], prefix="chorus:x:")
    pool = layer.create_pool(0)
    assert pool.connection_class.__name__ == "CountingConnection"
    tls = counting_pool("rediss://127.0.0.1:1/0")
    assert tls.connection_class.__name__ == "CountingSSLConnection"


def test_event_names_are_bounded():
    assert metrics.event_name_of('42["events:channel",{"a":1}]') == "events:channel"
    assert metrics.event_name_of("430[{}]") == ""
    before = sample("chorus_events_received_total", event="other")
    metrics.event_received("some-name-a-client-made-up")
    metrics.event_received(["not", "a", "string"])
    assert sample("chorus_events_received_total", event="other") == before + 2
    names = {
        sample.labels["event"]
        for family in metrics.EVENTS_IN.collect()
        for sample in family.samples
    }
    assert "some-name-a-client-made-up" not in names

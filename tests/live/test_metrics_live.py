"""``GET /metrics`` on a real daphne (docs/operations.md, "Metrics"): who may scrape it, and
that the counters move by exactly what the test drives — sockets on both transports and both
endpoints, a refused CONNECT, events in by name (unregistered names as ``other``), a
heartbeat's ``last_active_at`` write, a broadcast and its delivery, a document edit's update-log
write and its save.

Deltas are taken between two scrapes of the same process, so what earlier tests did to it (or
the Python runtime's own metrics) does not matter; before the first scrape every presence
announcement the setup causes has arrived (the test waits for it), so nothing else moves the
counters meanwhile.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from channels.db import database_sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from tests.live.doc_peers import YPeer, append_text, create_note, text_of, until_stored
from tests.live.harness import (
    DaphneServer,
    access,
    eventually,
    presence_event,
    typing_event,
    typing_payload,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TOKEN = "metrics-scrape-token-for-tests"
Samples = dict[tuple[str, frozenset], float]


def get(
    server: DaphneServer, path: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, str, dict]:
    request = urllib.request.Request(server.url + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def scrape(server: DaphneServer, token: str = TOKEN) -> Samples:
    status, text, headers = get(server, "/metrics", {"Authorization": f"Bearer {token}"})
    assert status == 200, (status, text)
    assert headers["Content-Type"].startswith("text/plain; version="), headers
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_scrape_refused_without_the_token_and_off_without_settings(servers):
    guarded = servers("guarded", METRICS_TOKEN=TOKEN)
    off = servers("off")  # neither METRICS_TOKEN nor METRICS_ALLOWED_ADDRESSES: no endpoint
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, text, answer = get(guarded, "/metrics", headers)
        assert status == 401, (headers, status, text)
        assert '"code": "unauthorized"' in text, text
        assert answer["WWW-Authenticate"].startswith("Bearer"), answer
        assert "chorus_" not in text
    status, text, _ = get(off, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 404 and '"code": "not_found"' in text, (status, text)
    status, text, _ = get(guarded, "/metrics", {"Authorization": f"Bearer {TOKEN}"}, "POST")
    assert status == 405 and '"code": "method_not_allowed"' in text, (status, text)
    assert (
        "chorus_sockets_open" in get(guarded, "/metrics", {"Authorization": f"Bearer {TOKEN}"})[1]
    )


async def test_address_allowlist(servers):
    # The test's address is 127.0.0.1: outside 10.0.0.0/8, inside 127.0.0.0/8.
    outside = servers("outside", METRICS_ALLOWED_ADDRESSES="10.0.0.0/8")
    inside = servers("inside", METRICS_ALLOWED_ADDRESSES="127.0.0.0/8,::1")
    status, text, _ = get(outside, "/metrics", {})
    assert status == 403 and '"code": "forbidden"' in text, (status, text)
    status, text, _ = get(inside, "/metrics", {})
    assert status == 200 and "chorus_events_received_total" in text, (status, text)


async def test_counters_move_with_sockets_events_and_documents(
    servers, clients, alice, bob, carol, group_channel
):
    server = servers("daphne", METRICS_TOKEN=TOKEN, DOC_SAVE_DEBOUNCE=0.2, DOC_SAVE_MAX_WAIT=1)
    channel = await group_channel(alice, bob)
    note = await database_sync_to_async(create_note)(alice, [bob])

    # --- sockets: alice on a WebSocket, bob on polling, a refused CONNECT -------------------
    start = scrape(server)
    one = await clients(server, "alice").connect(await access(alice))
    await one.join()
    two = await clients(server, "bob", ("polling",)).connect(await access(bob))
    await two.join()
    await one.wait_for("events:channel", presence_event(bob.pk, "online"))
    refused = await clients(server, "stranger").refused("not-a-token")
    assert refused["data"]["code"] == "invalid_token"
    connected = scrape(server)
    ws, poll = ("socket.io", "websocket"), ("socket.io", "polling")
    for endpoint, transport in (ws, poll):
        labels = {"endpoint": endpoint, "transport": transport}
        assert delta(start, connected, "chorus_sockets_open", **labels) == 1, labels
    assert delta(start, connected, "chorus_socket_connects_total", endpoint="socket.io") == 2
    assert (
        delta(
            start,
            connected,
            "chorus_socket_refusals_total",
            endpoint="socket.io",
            code="invalid_token",
        )
        == 1
    )
    # Two user-joins (their acks came back before the scrape).
    assert delta(start, connected, "chorus_events_received_total", event="user-join") == 2

    # --- events in, a heartbeat's write, a broadcast and its one delivery ---------------------
    before = scrape(server)
    assert await one.call("heartbeat") == {}  # alice's first: last_active_at is written
    assert await one.call("heartbeat") == {}  # within the interval: no write
    assert "error" in await one.call("no-such-event")
    await one.emit("events:channel", typing_payload(channel.id))
    await two.wait_for("events:channel", typing_event(channel.id, alice.pk))
    after = scrape(server)
    assert delta(before, after, "chorus_events_received_total", event="heartbeat") == 2
    assert delta(before, after, "chorus_events_received_total", event="other") == 1
    assert delta(before, after, "chorus_events_received_total", event="events:channel") == 1
    assert delta(before, after, "chorus_heartbeat_writes_total") == 1
    assert delta(before, after, "chorus_events_sent_total", event="events:channel") == 1
    assert delta(before, after, "chorus_broadcast_deliveries_total") == 1  # bob (not alice)
    assert value(after, "chorus_outbox_depth") == 0
    assert delta(before, after, "chorus_outbox_dropped_total") == 0

    # --- Engine.IO's upgrade: a socket that starts on polling ends counted on websocket ------
    before = scrape(server)
    three = await clients(server, "carol", ("polling", "websocket")).connect(await access(carol))

    def upgraded():
        now = scrape(server)
        moved = delta(
            before, now, "chorus_sockets_open", endpoint="socket.io", transport="websocket"
        )
        return now if moved == 1 else None

    after = await eventually(upgraded)
    assert three.sio.transport() == "websocket"
    assert (
        delta(before, after, "chorus_sockets_open", endpoint="socket.io", transport="polling") == 0
    )
    assert delta(before, after, "chorus_socket_connects_total", endpoint="socket.io") == 1
    await three.disconnect()

    # --- a document: a y-websocket editor, one edit logged and saved -------------------------
    before = scrape(server)
    peer = await YPeer(server, note.id, await access(alice), name="editor").start()
    try:
        opened = scrape(server)
        assert delta(before, opened, "chorus_documents_open") == 1
        labels = {"endpoint": "y-websocket", "transport": "websocket"}
        assert delta(before, opened, "chorus_sockets_open", **labels) == 1
        append_text(peer.doc, "metered")
        await peer.barrier()
        await until_stored(note.id, lambda doc: "metered" in text_of(doc))
        saved = await eventually(
            lambda: (
                (s := scrape(server)) and delta(before, s, "chorus_document_saves_total") >= 1 and s
            )
        )
        assert delta(before, saved, "chorus_document_saves_total") == 1
        assert delta(before, saved, "chorus_document_save_failures_total") == 0
        assert delta(before, saved, "chorus_document_save_seconds_count") == 1
        assert delta(before, saved, "chorus_update_log_seconds_count") == 1
    finally:
        await peer.leave()
    closed = await eventually(
        lambda: (
            (s := scrape(server))
            and value(s, "chorus_sockets_open", endpoint="y-websocket", transport="websocket")
            == value(before, "chorus_sockets_open", endpoint="y-websocket", transport="websocket")
            and s
        )
    )
    assert delta(before, closed, "chorus_documents_open") == 0  # unloaded once idle and saved
    assert delta(start, closed, "chorus_database_errors_total") == 0
    assert delta(start, closed, "chorus_slow_consumer_closes_total") == 0

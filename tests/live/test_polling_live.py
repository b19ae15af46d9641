"""Engine.IO HTTP long-polling and its upgrade, against a real daphne (docs/protocol.md §1).

Stock python-socketio clients with their default transports (polling, then the upgrade to
WebSocket) and with polling alone; the raw protocol by hand over aiohttp (``RawPolling``) for
the refusals, the CORS answers and the switch of transports, where no packet may be lost or
sent twice.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, Text
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from notes.models import Note, NoteGrant, Permission, PrincipalType
from tests.live.harness import (
    SOCKETIO_PATH,
    Beacon,
    RawPolling,
    access,
    eventually,
    typing_event,
    typing_payload,
)
from tests.live.nodeproc import NodeProcess

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DEFAULT = None  # python-socketio's default transports: polling, then the upgrade
POLLING = ("polling",)


@database_sync_to_async
def shared_note(owner, reader) -> str:
    note = Note.objects.create(owner=owner, title="polling")
    NoteGrant.objects.create(
        note=note, principal_type=PrincipalType.USER, user=reader, permission=Permission.WRITE
    )
    return str(note.id)


# --- stock clients ---------------------------------------------------------------------------


async def test_default_transports_connect_upgrade_and_keep_events(
    server, clients, alice, bob, group_channel
):
    """socket.io's defaults: polling first, then the upgrade — events, acks and rooms hold."""
    channel = await group_channel(alice, bob)
    a = await clients(server, "alice", DEFAULT).connect(await access(alice))
    b = await clients(server, "bob").connect(await access(bob))
    assert (await a.join())["id"] == str(alice.id)
    await b.join()
    await eventually(lambda: a.sio.transport() == "websocket")
    assert await a.call("events:channel", typing_payload(channel.id, True)) == {}
    await b.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert await b.call("events:channel", typing_payload(channel.id, True)) == {}
    await a.wait_for("events:channel", typing_event(channel.id, bob.id))


async def test_polling_alone_carries_events_acks_rooms_binary_and_kicks(
    server, clients, alice, bob, group_channel
):
    channel = await group_channel(alice, bob)
    token = await access(alice)
    a = await clients(server, "alice", POLLING).connect(token)
    b = await clients(server, "bob").connect(await access(bob))
    assert (await a.join())["id"] == str(alice.id)
    await b.join()
    assert a.sio.transport() == "polling"
    # both ways through a room
    assert await a.call("events:channel", typing_payload(channel.id, True)) == {}
    await b.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert await b.call("events:channel", typing_payload(channel.id, True)) == {}
    await a.wait_for("events:channel", typing_event(channel.id, bob.id))
    # a binary attachment (a Yjs update as bytes) reaches the server whole and is relayed
    note_id = await shared_note(bob, alice)
    for client in (a, b):
        joined = await client.call("ydoc:document:join", {"document_id": f"note:{note_id}"})
        assert "error" not in joined, joined
    doc = Doc()
    before = doc.get_state()
    doc.get("t", type=Text).insert(0, "over polling")
    update = doc.get_update(before)
    ack = await a.call("ydoc:document:update", {"document_id": f"note:{note_id}", "update": update})
    assert ack == {}, ack
    relayed = await b.wait_for("ydoc:document:update")
    copy = Doc()
    copy.apply_update(bytes(relayed["update"]))
    assert str(copy.get("t", type=Text)) == "over polling"
    # a logout kicks the polling socket like a WebSocket one: error, then DISCONNECT
    status, _ = await server.arequest("POST", "/api/auth/logout/", token=token, body={})
    assert status in (200, 204), status
    await a.wait_disconnected()
    assert [e["code"] for e in a.received("error")] == ["token_revoked"]
    assert a.disconnects == ["server disconnect"]  # python-socketio: a DISCONNECT (41), final


@pytest.fixture
async def node_socket(node):
    """``node_socket(server, token, **options)`` -> a started stock socket.io-client (Node) with
    its default options plus ``options``; stopped after the test."""
    made: list[NodeProcess] = []

    async def make(server, token: str, **options) -> NodeProcess:
        options = {"path": SOCKETIO_PATH, "auth": {"token": token}, **options}
        made.append(
            await NodeProcess(node, "stock_client.cjs", server.url, json.dumps(options)).start()
        )
        return made[-1]

    yield make
    for process in made:
        await process.stop()


@pytest.mark.parametrize("transports", [DEFAULT, POLLING])
async def test_stock_node_client_defaults_and_polling_alone(
    server, clients, node_socket, alice, bob, group_channel, transports
):
    """socket.io-client 4 as shipped: polling, then the upgrade; or polling alone."""
    channel = await group_channel(alice, bob)
    options = {"transports": list(transports)} if transports else {}
    a = await node_socket(server, await access(alice), **options)
    b = await clients(server, "bob").connect(await access(bob))
    await b.join()
    (opened,) = await a.wait_for("open")
    assert opened["transport"] == "polling"
    await a.wait_for("connect")
    a.send({"n": 1, "emit": "user-join", "args": [{}]})
    (joined,) = await a.wait_for("ack", n=1)
    assert joined["args"][0]["id"] == str(alice.id)
    if transports is DEFAULT:
        await a.wait_for("upgrade", transport="websocket")
    a.send({"n": 2, "emit": "events:channel", "args": [typing_payload(channel.id, True)]})
    assert (await a.wait_for("ack", n=2))[0]["args"] == [{}]
    await b.wait_for("events:channel", typing_event(channel.id, alice.id))
    assert await b.call("events:channel", typing_payload(channel.id, True)) == {}
    await a.wait_for("event", name="events:channel")
    assert not a.found("disconnect") and not a.found("connect_error")
    if transports is not DEFAULT:
        assert not a.found("upgrade")


# --- the raw protocol: handshake, refusals, CORS --------------------------------------------------


async def test_handshake_offers_the_websocket_upgrade(server, polls):
    raw = polls(server)
    status, headers, body = await raw.request("GET", raw.url())
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    opened = json.loads(body.decode()[1:])
    assert body.startswith(b"0{")
    assert opened["upgrades"] == ["websocket"]
    assert set(opened) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}


@pytest.mark.parametrize(
    ("method", "query", "status", "code"),
    [
        ("GET", {"transport": None}, 400, 0),
        ("GET", {"transport": "carrier-pigeon"}, 400, 0),
        ("GET", {"EIO": "3"}, 400, 5),
        ("POST", {}, 400, 2),
        ("PUT", {}, 400, 2),
        ("GET", {"sid": "no-such-session"}, 400, 1),
        ("POST", {"sid": "no-such-session"}, 400, 1),
        ("GET", {"transport": "websocket"}, 400, 3),
    ],
)
async def test_bad_requests_get_engineio_json_errors_never_html(
    server, polls, method, query, status, code
):
    raw = polls(server)
    params = {"EIO": "4", "transport": "polling", **query}
    params = {k: v for k, v in params.items() if v is not None}
    url = f"{server.url}{SOCKETIO_PATH}/?{urlencode(params)}"
    got, headers, body = await raw.request(method, url, b"40" if method != "GET" else None)
    assert got == status, (got, body)
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == code and isinstance(error["message"], str), error


async def test_put_on_a_session_is_a_json_400_and_changes_nothing(server, polls, alice):
    raw = polls(server)
    await raw.connect(await access(alice))
    status, _, body = await raw.request("PUT", raw.url(raw.sid), '42["heartbeat"]')
    assert (status, json.loads(body)["code"]) == (400, 3)
    # the session is untouched: a ping round trip still works
    assert (await raw.post("3"))[0] == 200


async def test_overlapping_polls_are_refused_and_end_the_session(server, polls, alice):
    raw = polls(server)
    await raw.connect(await access(alice))
    # two GETs at once: whichever comes second is refused; the session ends, so the other
    # learns it is gone (nothing waited for it)
    answers = await asyncio.gather(*(raw.request("GET", raw.url(raw.sid)) for _ in range(2)))
    codes = sorted((status, json.loads(body)["code"]) for status, _, body in answers)
    assert codes == [(400, 1), (400, 3)], answers
    status, _, body = await raw.request("GET", raw.url(raw.sid))
    assert status == 400 and json.loads(body)["code"] == 1  # and stays gone


async def test_payload_over_the_limit_is_413_and_closes(server, polls):
    raw = polls(server)
    await raw.handshake()
    # before CONNECT a session may send 16 KiB at most, as on a WebSocket
    status, body = await raw.post("42" + json.dumps(["x", "y" * 20_000]))
    assert status == 413 and json.loads(body)["code"] == 3
    status, _, body = await raw.request("GET", raw.url(raw.sid))
    assert status == 400 and json.loads(body)["code"] == 1  # the session is over


async def test_origins_are_checked_and_allowed_ones_get_cors(servers, polls):
    server = servers(CORS_ALLOWED_ORIGINS="https://app.example")
    raw = polls(server)
    status, headers, body = await raw.request("GET", raw.url(), Origin="https://evil.example")
    assert status == 403 and json.loads(body)["code"] == 4
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = await raw.request("GET", raw.url(), Origin="https://app.example")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    status, headers, _ = await raw.request(
        "OPTIONS",
        raw.url(),
        Origin="https://app.example",
        **{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-y"},
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in headers["Access-Control-Allow-Methods"]


async def test_websocket_without_transport_parameter_is_refused(server):
    url = f"ws://127.0.0.1:{server.port}{SOCKETIO_PATH}/?EIO=4"
    async with ws_connect(url, ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


# --- the upgrade: nothing lost, nothing twice ---------------------------------------------


async def test_upgrade_switch_loses_and_repeats_nothing(server, polls, alice, bob):
    """Broadcasts flow without pause while the raw client probes and switches: every one
    arrives exactly once, in order, part over polling and the rest over the WebSocket."""
    beacon = await Beacon.create(bob, readers=(alice,))
    raw = polls(server)
    await raw.connect(await access(alice))
    join = "421" + json.dumps(["join-note", {"note_id": beacon.note_id}])
    assert (await raw.post(join))[0] == 200
    got: list[int] = []

    def collect(packets) -> bool:
        """Record the beacon numbers among ``packets``; whether the join's ack is there."""
        acked = False
        for packet in packets:
            if isinstance(packet, str) and packet.startswith('42["note-events"'):
                got.append(int(json.loads(packet[2:])[1]["title"].split()[-1]))
            acked = acked or (isinstance(packet, str) and packet.startswith("431["))
        return acked

    while not collect(await raw.get()):
        pass
    flashes = 30

    async def flash_many() -> None:
        for _ in range(flashes):
            await beacon.flash(server)

    flashing = asyncio.ensure_future(flash_many())
    polling = asyncio.ensure_future(raw.get())
    ws = await ws_connect(
        f"ws://127.0.0.1:{server.port}{SOCKETIO_PATH}/?EIO=4&transport=websocket&sid={raw.sid}",
        ping_interval=None,
    )
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
    collect(await asyncio.wait_for(polling, 5))  # released at once (a NOOP, or what waited)
    over_polling = len(got)
    # an ack queued for polling after the last GET: it must come over the WebSocket
    assert (await raw.post('422["heartbeat",{}]'))[0] == 200
    await ws.send("5")
    await flashing
    acks = 0
    while len(got) < flashes or not acks:
        frame = await asyncio.wait_for(ws.recv(), 5)
        if frame == "2":
            await ws.send("3")
        acks += isinstance(frame, str) and frame.startswith("432[")
        collect([frame])
    assert acks == 1
    assert got == list(range(got[0], got[0] + flashes)), got  # each once, in order
    assert over_polling < flashes  # (some, at least, came over the WebSocket)
    # polling is over for this session
    status, _, body = await raw.request("GET", raw.url(raw.sid))
    assert status == 400 and json.loads(body)["code"] == 3
    await ws.close()

    async def forgotten() -> bool:  # the session ended with its WebSocket: nothing kept
        status, _, body = await raw.request("GET", raw.url(raw.sid))
        return status == 400 and json.loads(body)["code"] == 1

    for _ in range(100):
        if await forgotten():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the upgraded session is still known after its WebSocket closed")


async def test_a_token_in_the_polling_url_is_never_taken(server, polls, alice):
    """Access logs print polling URLs: a ``?token=`` there does not authenticate (a header
    does)."""
    token = await access(alice)
    raw = polls(server)
    status, _, body = await raw.request("GET", raw.url(token=token))
    assert status == 200
    raw.sid = json.loads(body.decode()[1:])["sid"]
    assert (await raw.post("40"))[0] == 200
    refused = [p for p in await raw.get() if isinstance(p, str) and p.startswith("44")]
    assert refused and json.loads(refused[0][2:])["data"] == {"code": "auth_required"}
    headed = polls(server)
    await headed.handshake(Authorization=f"Bearer {token}")
    assert (await headed.post("40"))[0] == 200
    assert any(isinstance(p, str) and p.startswith("40{") for p in await headed.get())


async def test_uvicorn_serves_polling_and_the_upgrade(servers, clients, alice):
    server = servers.uvicorn()
    client = await clients(server, "alice", DEFAULT).connect(await access(alice))
    assert (await client.join())["id"] == str(alice.id)
    await eventually(lambda: client.sio.transport() == "websocket")
    assert "error" not in await client.call("heartbeat")


# --- the same rules as on a WebSocket (docs/protocol.md §2.1) ---------------------------------


async def test_polling_session_without_connect_in_time_is_closed(servers, polls):
    server = servers(CONNECT_TIMEOUT=0.5)
    raw = polls(server)
    await raw.handshake()
    while True:  # long-polls (NOOPs) until the deadline ends the session
        status, _, body = await raw.request("GET", raw.url(raw.sid))
        if status != 200:
            break
    assert status == 400 and json.loads(body)["code"] == 1


async def test_socket_cap_counts_polling_sessions(servers, clients, alice):
    server = servers(MAX_SOCKETS_PER_USER=1)
    token = await access(alice)
    await clients(server, "alice@ws").connect(token)
    error = await clients(server, "alice@polling", POLLING).refused(token)
    assert error["data"] == {"code": "too_many_connections"}


async def test_event_rate_limit_applies_over_polling(servers, clients, alice):
    server = servers(EVENT_RATE=1, EVENT_BURST=2)
    client = await clients(server, "alice", POLLING).connect(await access(alice))
    acks = [await client.call("heartbeat") for _ in range(4)]
    assert any(ack.get("error", {}).get("code") == "rate_limited" for ack in acks), acks


async def test_a_ticket_opens_one_polling_session(server, polls, alice):
    status, body = await server.arequest("POST", "/api/auth/ws-ticket/", token=await access(alice))
    assert status == 200, body
    ticket = body["ticket"]
    first = polls(server)
    first.sid = json.loads((await first.request("GET", first.url(ticket=ticket)))[2][1:])["sid"]
    assert (await first.post("40"))[0] == 200
    assert any(isinstance(p, str) and p.startswith("40{") for p in await first.get())
    again = polls(server)
    again.sid = json.loads((await again.request("GET", again.url(ticket=ticket)))[2][1:])["sid"]
    assert (await again.post("40"))[0] == 200
    refused = [p for p in await again.get() if isinstance(p, str) and p.startswith("44")]
    assert refused and json.loads(refused[0][2:])["data"] == {"code": "ticket_invalid"}


async def held_again(raw: RawPolling, via=None) -> None:
    """After an abandoned upgrade, GETs are held again: a GET sent before an event's POST
    answers with that event's ack (while a probe is under way a GET is answered at once with
    a NOOP). Repeated until seen, for the abandonment to arrive first."""
    for n in range(1, 40):
        waiting = asyncio.ensure_future(raw.get(via))
        await asyncio.sleep(0.05)  # lets the GET reach the server before the POST below
        assert (await raw.post(f'42{n}["heartbeat",{{}}]', via=via))[0] == 200
        packets = await waiting
        if any(isinstance(p, str) and p.startswith(f"43{n}[") for p in packets):
            return
        while not any(isinstance(p, str) and p.startswith(f"43{n}[") for p in packets):
            packets = await raw.get(via)  # (collect the ack before the next round)
    raise AssertionError("GETs are still answered at once after the probe was abandoned")


async def test_an_abandoned_probe_leaves_the_session_polling_as_before(server, polls, alice):
    raw = polls(server)
    await raw.connect(await access(alice))
    ws = await ws_connect(
        f"ws://127.0.0.1:{server.port}{SOCKETIO_PATH}/?EIO=4&transport=websocket&sid={raw.sid}",
        ping_interval=None,
    )
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
    await ws.close()  # no "5": the client gave the upgrade up
    await held_again(raw)


async def test_a_polling_client_that_stops_polling_is_ended_by_the_stall_rule(
    servers, polls, clients, alice, bob, group_channel
):
    """A polling client that keeps its session (it answers nothing, polls nothing) while the
    server has data for it: after SEND_STALL_TIMEOUT with none taken the session ends, as a
    WebSocket that stopped reading would (docs/protocol.md §2)."""
    server = servers(SEND_STALL_TIMEOUT=1, SESSION_SWEEP_INTERVAL=0.3)
    channel = await group_channel(alice, bob)
    raw = polls(server)
    await raw.connect(await access(alice))
    await raw.join()
    watcher = await clients(server, "bob").connect(await access(bob))
    await watcher.join()
    assert str(alice.id) in await server.online_ids(channel.id, await access(bob))
    assert await watcher.call("events:channel", typing_payload(channel.id)) == {}  # waits for alice

    async def alice_offline() -> bool:
        return str(alice.id) not in await server.online_ids(channel.id, await access(bob))

    await eventually(alice_offline, timeout=15)
    assert "took nothing" in server.log_tail(200)

"""What each document client is told, against real daphne (issue 15, points 4 and 5).

- Open WebUI's awareness form (JSON bytes of ``{"<client id>": state}``, what its
  ``Collaboration.ts`` sends) is accepted, bounded and relayed like y-protocols awareness:
  Socket.IO peers get it in that form, y-websocket peers as y-protocols entries.
- A read-only y-websocket editor that sends a change gets the y-protocols auth message
  "permission denied" (once per connection) and its change goes nowhere.
- ``ydoc:document:state.sessions`` lists every connection of the document, y-websocket ones
  (``y:<id>``) included, on every instance, until they close.

Single-instance tests run in both passes; the two-instance one needs Redis (``services``).
"""

from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from realtime.protocol import yprotocol
from tests.live.doc_peers import append_text, create_note, stored_state, yjs_url
from tests.live.harness import Client, DaphneServer, Marker, access, eventually

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: A Yjs client id as Open WebUI's ``SimpleAwareness`` uses one (its Doc's clientID).
OWUI_ID = 2816190446
Y_SID = re.compile(r"^y:[A-Za-z0-9_-]{16}$")


def owui_state(name: str, clock: int = 0) -> dict:
    """An Open WebUI local state: ``user`` and y-prosemirror's ``cursor`` (relative positions)."""
    position = {"type": {"client": 1, "clock": clock}, "tname": None, "item": None, "assoc": 0}
    return {
        "user": {"name": name, "color": "#FF6B6B", "id": "its-socket-id"},
        "cursor": {"anchor": position, "head": position},
    }


def owui_update(states: dict[int, object]) -> list[int]:
    """``Array.from(new TextEncoder().encode(JSON.stringify(states)))``, as Open WebUI sends."""
    return list(json.dumps({str(k): v for k, v in states.items()}, separators=(",", ":")).encode())


def json_states(payload: dict) -> dict[int, object]:
    """What Open WebUI's client makes of a received ``ydoc:awareness:update``."""
    return {int(k): v for k, v in json.loads(bytes(payload["update"])).items()}


@pytest.fixture
def people(alice, bob, make_user) -> SimpleNamespace:
    return SimpleNamespace(owner=alice, writer=bob, reader=make_user("reader", name="Reader"))


@pytest.fixture
def make_note(people):
    @database_sync_to_async
    def make():
        return create_note(people.owner, [people.writer], [people.reader])

    return make


async def socket_in(server: DaphneServer, clients, user, note_id, name: str) -> Client:
    """A Socket.IO client of ``user`` that joined the note's document."""
    client = await clients(server, name).connect(await access(user))
    ack = await client.call("ydoc:document:join", {"document_id": f"note:{note_id}"})
    assert "error" not in ack, ack
    return client


class RawYws:
    """A y-websocket connection that records every message the server sends."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[yprotocol.YMessage] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: DaphneServer, note_id: object, user) -> RawYws:
        ws = await ws_connect(yjs_url(server, note_id, await access(user)), ping_interval=None)
        peer = cls(ws)
        await eventually(lambda: peer.of(yprotocol.MESSAGE_SYNC))  # step 1: accepted
        return peer

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                self.messages.append(yprotocol.decode_message(frame))
        except ConnectionClosed:
            pass

    def of(self, kind: int) -> list[yprotocol.YMessage]:
        return [m for m in self.messages if m.kind == kind]

    def awareness(self) -> dict[int, tuple[int, str]]:
        """Every awareness entry received, the last per client id: ``{id: (clock, state)}``."""
        seen: dict[int, tuple[int, str]] = {}
        for message in self.of(yprotocol.MESSAGE_AWARENESS):
            for cid, clock, state in yprotocol.decode_awareness_update(message.payload):
                seen[cid] = (clock, state)
        return seen

    def denials(self) -> list[str]:
        return [
            yprotocol.decode_permission_denied(m.payload) for m in self.of(yprotocol.MESSAGE_AUTH)
        ]

    def step2s(self) -> int:
        return sum(1 for m in self.of(yprotocol.MESSAGE_SYNC) if m.subtype == yprotocol.SYNC_STEP2)

    async def barrier(self) -> None:
        """Return once the server has handled everything sent so far (its step 2 answer to
        a step 1 sent now has arrived)."""
        before = self.step2s()
        await self.send(yprotocol.encode_sync_step1(b"\x00"))
        await eventually(lambda: self.step2s() > before)

    async def send(self, message: bytes) -> None:
        await self.ws.send(message)

    async def close(self) -> None:
        await self.ws.close()
        await self._task


async def sessions(client: Client, note_id: object) -> list[str]:
    state = await client.call("ydoc:document:state", {"document_id": f"note:{note_id}"})
    assert "error" not in state, state
    return state["sessions"]


# --- 4. Open WebUI's awareness form ------------------------------------------------------------


async def test_open_webui_awareness_reaches_socketio_and_y_websocket_peers(
    servers, clients, people, make_note
):
    """Open WebUI's JSON awareness was refused (``bad_request``): no caret appeared for it.
    Now a Socket.IO peer gets it as Open WebUI reads it and a y-websocket peer as a
    y-protocols entry with a clock that grows; when the client leaves, its state is cleared
    for both (``{}`` in the JSON form: Open WebUI cannot remove a state)."""
    server = servers("daphne")
    note = await make_note()
    sender = await socket_in(server, clients, people.owner, note.id, "owui-sender")
    watcher = await socket_in(server, clients, people.writer, note.id, "owui-watcher")
    yws = await RawYws.open(server, note.id, people.reader)
    document = {"document_id": f"note:{note.id}", "user_id": "spoofed"}

    state = owui_state("Alice")
    ack = await sender.call(
        "ydoc:awareness:update", {**document, "update": owui_update({OWUI_ID: state})}
    )
    assert ack == {}, ack
    relayed = await watcher.wait_for("ydoc:awareness:update")
    assert json_states(relayed) == {OWUI_ID: state}
    assert relayed["user_id"] == str(people.owner.pk)  # the sender's account, not its claim
    await eventually(lambda: OWUI_ID in yws.awareness())
    first_clock, yws_state = yws.awareness()[OWUI_ID]
    assert json.loads(yws_state) == state and first_clock > 0

    moved = owui_state("Alice", clock=3)
    ack = await sender.call(
        "ydoc:awareness:update", {**document, "update": owui_update({OWUI_ID: moved})}
    )
    assert ack == {}
    await eventually(lambda: json.loads(yws.awareness()[OWUI_ID][1]) == moved)
    assert yws.awareness()[OWUI_ID][0] > first_clock  # a y-protocols peer takes it as newer

    await sender.disconnect()
    gone = await watcher.wait_for(
        "ydoc:awareness:update", lambda p: json_states(p) == {OWUI_ID: {}}
    )
    assert gone["user_id"] == str(people.owner.pk)
    await eventually(lambda: yws.awareness()[OWUI_ID][1] == "null")
    await yws.close()


async def test_open_webui_awareness_follows_the_ownership_and_size_rules(
    servers, clients, people, make_note, make_user
):
    """The JSON form is held to the y-protocols rules: no other user's client id (set or
    cleared), at most AWARENESS_MAX_IDS_PER_CONNECTION ids per connection, each state within
    AWARENESS_MAX_STATE_BYTES; a message over DOC_MAX_AWARENESS_BYTES is ``too_large``, one
    that is not the form ``bad_request``. Dropped entries reach nobody and are not kept."""
    server = servers(
        "daphne",
        AWARENESS_MAX_IDS_PER_CONNECTION=2,
        AWARENESS_MAX_STATE_BYTES=500,
        DOC_MAX_AWARENESS_BYTES=4000,
    )
    mallory = await database_sync_to_async(make_user)("mallory")
    note = await database_sync_to_async(create_note)(people.owner, [], [mallory])
    owner_yws = await RawYws.open(server, note.id, people.owner)
    await owner_yws.send(
        yprotocol.encode_awareness(
            yprotocol.encode_awareness_update([(1001, 1, json.dumps({"user": {"name": "Alice"}}))])
        )
    )
    watcher = await socket_in(server, clients, people.owner, note.id, "watcher")
    await watcher.wait_for("ydoc:awareness:update")  # the snapshot on join: Alice's state
    watcher.events.clear()

    spoofer = await socket_in(server, clients, mallory, note.id, "mallory")
    document = {"document_id": f"note:{note.id}"}

    async def send(states: dict[int, object]) -> dict:
        return await spoofer.call(
            "ydoc:awareness:update", {**document, "update": owui_update(states)}
        )

    assert await send({1001: {"user": {"name": "Fake Alice"}}}) == {}  # another user's id
    assert await send({1001: None}) == {}  # clearing it: refused as well
    assert await send({3000: {"pad": "x" * 600}}) == {}  # over the state size
    assert await send({2000 + i: {"user": {"name": f"bot {i}"}} for i in range(10)}) == {}
    too_large = await send({4000: {"pad": "y" * 4000}})
    assert too_large["error"]["code"] == "too_large", too_large
    for bad in (b"{not json", b'{"x":{}}', b'{"1":NaN}'):
        refused = await spoofer.call("ydoc:awareness:update", {**document, "update": list(bad)})
        assert refused["error"]["code"] == "bad_request", (bad, refused)

    # A marker: a change of one of the spoofer's own ids. Its messages are handled one after
    # another, each relayed to the room before its ack, so anything relayed of the refused
    # ones reached the watcher (and Alice's connection) before this.
    marked = {"user": {"name": "bot 0"}, "marker": True}
    assert await send({2000: marked}) == {}
    marker = Marker(
        "ydoc:awareness:update", lambda payload: json_states(payload).get(2000) == marked
    )
    await watcher.assert_no_event_before(
        "ydoc:awareness:update", marker, predicate=lambda p: set(json_states(p)) - {2000, 2001}
    )
    await eventually(lambda: json.loads(owner_yws.awareness().get(2000, (0, "null"))[1]) == marked)
    relayed: dict[int, object] = {}
    for payload in watcher.received("ydoc:awareness:update"):
        relayed.update(json_states(payload))
    assert sorted(relayed) == [2000, 2001], relayed
    assert 1001 not in owner_yws.awareness()  # no spoofed state reached the id's owner

    newcomer = await RawYws.open(server, note.id, people.owner)
    await eventually(lambda: newcomer.awareness())
    kept = newcomer.awareness()
    assert json.loads(kept[1001][1]) == {"user": {"name": "Alice"}}
    assert sorted(kept) == [1001, 2000, 2001], kept
    for peer in (owner_yws, newcomer):
        await peer.close()


async def test_a_socket_gets_awareness_in_the_form_it_sends(servers, clients, people, make_note):
    """A Socket.IO socket joining a document with live awareness is sent the known states
    (Open WebUI's JSON: the form a socket gets until it sends one); after it sends a
    y-protocols update it gets y-protocols bytes, after JSON again JSON."""
    server = servers("daphne")
    note = await make_note()
    yws = await RawYws.open(server, note.id, people.writer)

    async def yws_sets(clock: int, state: dict) -> None:
        entry = [(5, clock, json.dumps(state))]
        await yws.send(yprotocol.encode_awareness(yprotocol.encode_awareness_update(entry)))

    await yws_sets(1, {"user": {"name": "Bob"}})
    await yws.send(yprotocol.encode_query_awareness())
    await eventually(lambda: 5 in yws.awareness())  # the state is in the room
    socket = await clients(server, "socket").connect(await access(people.owner))
    ack = await socket.call("ydoc:document:join", {"document_id": f"note:{note.id}"})
    assert "error" not in ack
    snapshot = await socket.wait_for("ydoc:awareness:update")
    assert json_states(snapshot) == {5: {"user": {"name": "Bob"}}}

    document = {"document_id": f"note:{note.id}"}
    own = yprotocol.encode_awareness_update([(6, 1, json.dumps({"user": {"name": "Ann"}}))])
    assert await socket.call("ydoc:awareness:update", {**document, "update": list(own)}) == {}
    socket.events.clear()
    await yws_sets(2, {"user": {"name": "Bob", "n": 2}})
    relayed = await socket.wait_for("ydoc:awareness:update")
    assert yprotocol.decode_awareness_update(bytes(relayed["update"])) == [
        (5, 2, json.dumps({"user": {"name": "Bob", "n": 2}}))
    ]

    update = owui_update({6: {"user": {"name": "Ann", "n": 2}}})
    assert await socket.call("ydoc:awareness:update", {**document, "update": update}) == {}
    socket.events.clear()
    await yws_sets(3, {"user": {"name": "Bob", "n": 3}})
    relayed = await socket.wait_for("ydoc:awareness:update")
    assert json_states(relayed) == {5: {"user": {"name": "Bob", "n": 3}}}
    await yws.close()


# --- 5. read-only y-websocket editors are told ----------------------------------------------


async def test_a_read_only_y_websocket_editor_is_told_and_its_changes_go_nowhere(
    servers, clients, people, make_note
):
    """A reader's updates were dropped without a word (its typing silently diverged). Now the
    first change gets the y-protocols auth message "permission denied" — once per connection
    — and no change is relayed or stored. The step 2 every client sends on connect, holding
    nothing new, is dropped without a message; a step 2 with items the server lacks is not."""
    server = servers("daphne", DOC_SAVE_DEBOUNCE=0.2, DOC_SAVE_MAX_WAIT=1)
    note = await make_note()
    watcher = await socket_in(server, clients, people.writer, note.id, "watcher")
    reader = await RawYws.open(server, note.id, people.reader)

    await reader.send(yprotocol.encode_sync_step2(b"\x00\x00"))  # nothing new: no message
    mine = Doc()
    await reader.send(yprotocol.encode_sync_update(append_text(mine, "typed by a reader")))
    await eventually(lambda: reader.denials())
    assert reader.denials() == ["read-only: you may not edit this note; your changes are not saved"]
    await reader.send(yprotocol.encode_sync_update(append_text(mine, " and more")))
    await reader.barrier()
    assert len(reader.denials()) == 1  # once per connection
    await watcher.assert_no_event_before("ydoc:document:update", await awareness_marker(reader, 77))
    await reader.close()

    offline = Doc()
    append_text(offline, "written offline")
    again = await RawYws.open(server, note.id, people.reader)
    await again.send(yprotocol.encode_sync_step2(offline.get_update()))
    await eventually(lambda: again.denials())
    await watcher.assert_no_event_before("ydoc:document:update", await awareness_marker(again, 78))
    await again.close()
    await watcher.disconnect()
    await asyncio.sleep(0.5)
    assert await stored_state(note.id) in (None, b"\x00\x00")


async def awareness_marker(peer: RawYws, client_id: int) -> Marker:
    """A marker for the room's Socket.IO sockets: ``peer`` (a reader may) sets the awareness
    state of ``client_id``. A connection's messages are handled in order and each relayed to
    the room before the next, so whatever ``peer`` sent before reaches them first."""
    state = {"user": {"name": f"marker {client_id}"}}
    await peer.send(
        yprotocol.encode_awareness(
            yprotocol.encode_awareness_update([(client_id, 1, json.dumps(state))])
        )
    )
    return Marker("ydoc:awareness:update", lambda payload: client_id in json_states(payload))


async def test_a_writer_is_never_told_permission_denied(servers, clients, people, make_note):
    """The auth message goes only to read-only connections: a writer's update is relayed."""
    server = servers("daphne")
    note = await make_note()
    watcher = await socket_in(server, clients, people.owner, note.id, "watcher")
    writer = await RawYws.open(server, note.id, people.writer)
    await writer.send(yprotocol.encode_sync_update(append_text(Doc(), "fine")))
    await watcher.wait_for("ydoc:document:update")
    assert writer.denials() == []
    await writer.close()


# --- 5. sessions list every connection ------------------------------------------------------


async def test_sessions_list_y_websocket_connections_until_they_close(
    servers, clients, people, make_note
):
    """``ydoc:document:state.sessions`` listed only Socket.IO sockets. Now a y-websocket
    connection is listed as ``y:<16 characters>`` while it is open, and is gone after it
    closes — by the client, or by the server (a bad frame, close 4400)."""
    server = servers("daphne")
    note = await make_note()
    socket = await socket_in(server, clients, people.owner, note.id, "socket")
    sid = socket.sio.get_sid("/")
    assert await sessions(socket, note.id) == [sid]

    for ends in ("client closes", "server closes"):
        yws = await RawYws.open(server, note.id, people.reader)
        listed = await sessions(socket, note.id)
        others = [s for s in listed if s != sid]
        assert len(listed) == 2 and len(others) == 1 and Y_SID.match(others[0]), listed
        assert listed == sorted(listed)
        if ends == "client closes":
            await yws.close()
        else:
            await yws.ws.send(b"\x09")  # an unknown message type
            await yws._task
            assert yws.ws.close_code == 4400

        async def only_the_socket() -> bool:
            return await sessions(socket, note.id) == [sid]

        await _until(only_the_socket)


async def test_a_document_held_open_by_y_websocket_alone_counts_as_open(servers, people, make_note):
    """A REST content change without ``json`` cannot be merged into a live document (409);
    a document held open only by y-websocket clients was not seen as open (200)."""
    server = servers("daphne")
    note = await make_note()
    token = await access(people.owner)
    yws = await RawYws.open(server, note.id, people.writer)
    body = {"data": {"content": {"md": "from REST"}}}
    status, answer = await server.arequest(
        "PATCH", f"/api/notes/{note.id}/", token=token, body=body
    )
    assert status == 409, answer
    await yws.close()

    async def accepted() -> bool:
        status, _ = await server.arequest("PATCH", f"/api/notes/{note.id}/", token=token, body=body)
        return status == 200

    await _until(accepted)


async def _until(check, timeout: float = 5.0) -> None:
    """Wait until the coroutine function ``check`` returns True."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{check.__name__} never held within {timeout}s")
        await asyncio.sleep(0.1)


# --- two instances on Redis -----------------------------------------------------------------


@pytest.mark.services
async def test_sessions_and_open_webui_awareness_across_instances(
    servers, clients, clean_redis, people, make_note
):
    """On two instances sharing Redis: a y-websocket connection on B is listed in the
    sessions a socket on A sees, and is gone after it closes; Open WebUI's awareness sent on
    B reaches a Socket.IO peer on A in its JSON form and y-websocket peers on both as
    y-protocols entries with the same clock."""
    a, b = servers.many(["instance-A", "instance-B"], clean_redis)
    note = await make_note()
    on_a = await socket_in(a, clients, people.owner, note.id, "socket@A")
    sid = on_a.sio.get_sid("/")
    yws_b = await RawYws.open(b, note.id, people.reader)
    yws_a = await RawYws.open(a, note.id, people.writer)

    async def listed() -> list[str]:
        return [s for s in await sessions(on_a, note.id) if s != sid]

    async def both_listed() -> bool:
        return len(await listed()) == 2

    await _until(both_listed)
    assert all(Y_SID.match(s) for s in await listed())

    owui_b = await socket_in(b, clients, people.writer, note.id, "owui@B")
    state = owui_state("Bob")
    update = owui_update({OWUI_ID: state})
    ack = await owui_b.call(
        "ydoc:awareness:update", {"document_id": f"note:{note.id}", "update": update}
    )
    assert ack == {}
    relayed = await on_a.wait_for("ydoc:awareness:update")
    assert json_states(relayed) == {OWUI_ID: state}
    assert relayed["user_id"] == str(people.writer.pk)
    await eventually(lambda: OWUI_ID in yws_a.awareness() and OWUI_ID in yws_b.awareness())
    assert yws_a.awareness()[OWUI_ID] == yws_b.awareness()[OWUI_ID]
    assert json.loads(yws_a.awareness()[OWUI_ID][1]) == state

    await yws_b.close()
    await yws_a.close()

    async def none_listed() -> bool:
        return await listed() == [owui_b.sio.get_sid("/")]

    await _until(none_listed)

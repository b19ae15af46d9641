"""Redis Sentinel: two daphne instances on a primary + replica + three sentinels; the primary
is killed (SIGKILL) under chat and editing load (docs/operations.md, "Redis Sentinel").

The Redis processes are the test's own (``tests/live/sentinel.py``: loopback ports, a temp
dir, killed afterwards; ``redis-server`` from Debian, installed on first use where possible,
else skipped — failed under ``CI=true``). The instances know only the sentinels
(``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``); the database is the test database.

What must hold: after the failover every client works again within ``RECOVERY_BOUND``
seconds of the kill (a message posted then reaches the member on the other instance live),
no message whose POST was answered 201 and no edit the server acknowledged is lost (the
database and fresh clients on either instance have them all, and the two editors
converge), presence is right, and a new socket (with a connection ticket) connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from channels.db import database_sync_to_async

from channels_app.models import Message
from tests.live.conftest import unavailable
from tests.live.doc_peers import append_text, converged, create_note, durable_doc, text_of
from tests.live.harness import eventually
from tests.live.sentinel import MASTER, SentinelCluster, redis_server_binary
from tests.live.test_channels_live import EVENT, People, create_channel, of_type, online, rest

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]

KNOBS = {
    "WEBSOCKET_PING_INTERVAL": 0.5,
    "WEBSOCKET_PING_TIMEOUT": 0.5,
    "SESSION_TTL": 3,
    "SESSION_SWEEP_INTERVAL": 0.3,
    "DOC_SAVE_DEBOUNCE": 0.2,
    "DOC_SAVE_MAX_WAIT": 1,
}
#: Seconds from the kill by which clients work again: the sentinels' detection and failover
#: (``DOWN_AFTER_MS``, 6 s — longer than the hub's publish retries, so relays are lost — plus
#: the vote, 1-2 s), the hub's receive backoff (up to 5 s) and a keeper round
#: (docs/operations.md, "Redis Sentinel").
RECOVERY_BOUND = 20.0


@pytest.fixture
def sentinel_cluster(tmp_path):
    binary = redis_server_binary()
    if binary is None:
        unavailable("redis-server (Debian package) is needed for the Redis Sentinel test")
    cluster = SentinelCluster(tmp_path / "redis", binary)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def people(make_user) -> People:
    return People(make_user)


class ChatLoad:
    """Posts messages through both instances until stopped, each retried until answered 201
    (as a client would); ``acked`` are the messages answered 201."""

    def __init__(self, instances, authors, cid: str) -> None:
        self.instances, self.authors, self.cid = instances, authors, cid
        self.acked: list[dict] = []
        self.failures = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        n = 0
        while not self._stop.is_set():
            server, who = self.instances[n % 2], self.authors[n % 2]
            status, body = await server.arequest(
                "POST",
                f"/api/channels/{self.cid}/messages/",
                token=who.token,
                body={"content": f"load {n}"},
            )
            if status == 201:
                self.acked.append(body)
                n += 1
            else:
                self.failures += 1
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


async def test_primary_killed_clients_recover_nothing_acked_is_lost(
    sentinel_cluster, servers, clients, ypeers, people
):
    cluster: SentinelCluster = sentinel_cluster
    a, b = servers.many(
        ["instance-A", "instance-B"],
        f"redis://{MASTER}/0",
        REDIS_SENTINELS=cluster.sentinels_setting,
        REDIS_SENTINEL_MASTER=MASTER,
        **KNOBS,
    )
    alice, bob, carol = await people("Alice"), await people("Bob"), await people("Carol")
    cid = (await create_channel(a, alice, bob, carol))["id"]
    alice_a = await online(clients, a, alice, "Alice@A")
    bob_b = await online(clients, b, bob, "Bob@B")
    note = await database_sync_to_async(create_note)(alice.user, [bob.user])
    y_a = await ypeers(a, note.id, alice.token, name="alice@A").start()
    y_b = await ypeers(b, note.id, bob.token, name="bob@B").start()

    chat = ChatLoad((a, b), (alice, bob), cid)
    load = asyncio.create_task(chat.run())
    edits: list[str] = []

    async def edit(n: int, peers=((y_a, "a"), (y_b, "b"))) -> None:
        for peer, who in peers:
            edits.append(f"{who}{n};")
            append_text(peer.doc, edits[-1])
            await peer.barrier(timeout=RECOVERY_BOUND)  # the server has it: acknowledged

    try:
        await eventually(lambda: len(chat.acked) >= 5, timeout=10)
        for n in range(3):
            await edit(n)

        killed_at = time.monotonic()
        cluster.kill_primary()
        # Edits go on through the outage, from A's editor only: B's document gets no edit of
        # its own to save (a save would bring in what the database holds), yet must get them.
        for n in range(3, 8):
            await edit(n, ((y_a, "a"),))
            await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.wait_failover)

        # Recovered: a message posted now through A reaches bob on B live.
        async def posted() -> dict:
            while True:
                status, body = await a.arequest(
                    "POST",
                    f"/api/channels/{cid}/messages/",
                    token=alice.token,
                    body={"content": "after failover"},
                )
                if status == 201:
                    return body
                await asyncio.sleep(0.1)

        left = RECOVERY_BOUND - (time.monotonic() - killed_at)
        after = await asyncio.wait_for(posted(), timeout=left)
        left = RECOVERY_BOUND - (time.monotonic() - killed_at)
        await bob_b.wait_for(EVENT, of_type("message", cid, after["id"]), timeout=max(left, 0.1))
    finally:
        chat.stop()
        with contextlib.suppress(Exception):
            await load

    # No acked message lost: in PostgreSQL, and in a fresh client's history on either instance.
    acked_ids = {m["id"] for m in chat.acked} | {after["id"]}

    @database_sync_to_async
    def stored_ids() -> set[str]:
        return {
            str(pk) for pk in Message.objects.filter(channel_id=cid).values_list("id", flat=True)
        }

    assert acked_ids <= await stored_ids()
    for server in (a, b):
        seen: set[str] = set()
        page = await rest(server, carol, "GET", f"/api/channels/{cid}/messages/?limit=100")
        seen |= {m["id"] for m in page["messages"]}
        assert acked_ids <= seen, f"{server.name}: acked messages missing from the history"

    # No acked edit lost: the two editors converge on every edit, so do fresh peers on each
    # instance, and the database has them all.
    view = await converged(y_a, y_b, timeout=RECOVERY_BOUND)
    assert sorted(view["text"].split(";")[:-1]) == sorted(e[:-1] for e in edits)
    for server, who in ((a, alice), (b, bob)):
        fresh = await ypeers(server, note.id, who.token, name=f"fresh@{server.name}").start()
        assert sorted(text_of(fresh.doc).split(";")[:-1]) == sorted(e[:-1] for e in edits)

    async def all_stored() -> bool:
        return sorted(text_of(await durable_doc(note.id)).split(";")[:-1]) == sorted(
            e[:-1] for e in edits
        )

    await eventually(all_stored, timeout=10)

    # Presence is right: alice and bob online (their sockets never closed), carol not; the
    # sessions written to the old primary are in the new one (replicated, or re-added by the
    # keepers).
    async def presence_is(expected: set[str]) -> bool:
        return all([await server.online_ids(cid, carol.token) == expected for server in (a, b)])

    await eventually(lambda: presence_is({alice.id, bob.id}), timeout=RECOVERY_BOUND)
    assert alice_a.connected and bob_b.connected
    # New connections work through the new master: a ticket issued by A (the tickets' own
    # pool) opens a socket on B, and carol is online on both instances.
    status, body = await a.arequest("POST", "/api/auth/ws-ticket/", token=carol.token)
    assert status == 200, (status, body)
    await clients(b, "Carol@B").connect(query={"ticket": body["ticket"]})
    await eventually(lambda: presence_is({alice.id, bob.id, carol.id}), timeout=5)

"""The process hub: per-process fan-out of room broadcasts, and the outbox.

Why: plain Channels puts every socket's channel into every group, so a broadcast to a room of
N sockets costs N channel-layer messages and N consumer dispatches (measured ~2,700
deliveries/s for N=1,000). Here each process subscribes ONE channel to a room while it has a
local socket in it. A broadcast crosses the layer once per process, carries the frame already
encoded by the sender (encoded once), and the hub writes that text to every local socket.

The hub starts and stops the process's session keeper (``realtime.sessions.keeper``) with
itself: it pushes session deadlines forward for local sockets, sweeps expired sessions (any
instance's), has the hub re-add its group subscriptions (``resubscribe``) before the layer's
``group_expiry`` can lapse them, and reports presence changes.

Layer messages the hub understands (all carry ``room``):
- ``chorus.emit``  {frame, skip}: write ``frame`` to local sockets in ``room`` except sid ``skip``.
  ``chorus.emit``, ``chorus.join`` and ``chorus.leave`` may carry ``offset`` (logged for
  connection state recovery, ``realtime.recovery``): their frame is sent with it appended.
- ``chorus.kick``  {code, message, jti}: disconnect local sockets in ``room`` (matching ``jti``).
- ``chorus.join``  {target, frame}: local sockets in ``room`` join room ``target`` (and then
  get ``frame`` if given: a notice that cannot be lost to the join's race).
- ``chorus.leave`` {target, frame}: they leave ``target`` (and get ``frame`` if given).
- ``chorus.sid``   {sid, op, …} (sent to one hub, the socket's: ``to_sid``): act on that one
  socket — ``emit`` {frame}, ``join`` / ``leave`` {target}, ``kick`` {code, message}, ``call``
  {call_id, reply_to, args, timeout}.
- ``chorus.call_result`` {call_id, code, args} (to the caller's hub): a call's answer (``code``
  None) or why it has none.
- ``chorus.doc``   {kind, payload, origin, …}: a collaborative-document message, handed to the
  handler registered with ``on_message`` (``realtime.documents``) unless ``origin`` is this
  hub (the sender already applied it locally).

The hub also has the session registry list the members of rooms of the kinds
``realtime.rooms.LISTED_KINDS`` (``push.aonline``): joins and leaves are written in batches, off
the path of the join itself, and the session keeper refreshes them.

Besides sockets, a room subscription can be held by a ``pin`` (a live document keeps its
room subscribed while it has y-websocket clients, which are not Socket.IO connections).

One hub per event loop; ``get_hub()`` returns it, starting it on first use.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

from realtime import calls, metrics, recovery
from realtime.presence import PresenceQueue
from realtime.protocol.socketio import add_offset
from realtime.protocol.wsframe import SharedFrame
from realtime.rooms import listed, recoverable, room_kind
from realtime.sessions import KeptConnection, SessionKeeper, get_registry

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger("chorus.realtime.hub")

#: Every hub's layer channel starts so (``realtime.consumers.forwarding`` checks it).
CHANNEL_PREFIX = "chorus.hub."


class Connection(KeptConnection, Protocol):
    """What the hub needs of a socket: its sid, token id (kicks), rooms and offset choice, the
    ways to write to it, and what the session keeper needs (``KeptConnection``: the stall
    check, the session record). Both consumers implement it (``realtime.consumers``; mypy
    checks that they do)."""

    sid: str
    #: The authenticated user (None before CONNECT and after the session closed); the
    #: handlers that act on a room's sockets read it (``realtime.events.notes``).
    user: User | None
    jti: str
    rooms: set[str]
    #: Whether logged broadcasts reach it with their recovery offset (``realtime.recovery``).
    offsets: bool
    #: Whether it takes Socket.IO events (and calls, and app rooms): a y-websocket one does not.
    takes_events: bool

    async def send_frame(self, frame: str) -> None:
        """Send a frame to this socket alone (a join / leave notice); never waits."""
        ...

    def deliver(self, shared: SharedFrame) -> None:
        """Send a broadcast frame (built once for the whole room); never waits."""
        ...

    async def kick(self, code: str, message: str) -> None:
        """Tell the client why (``code``, ``message``) and close the socket."""
        ...

    async def on_room_left(self, room: str) -> None:
        """Called after a membership change made elsewhere took the socket out of ``room``."""
        ...

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket with ``code`` after what is queued (the drain: 1001); idempotent."""
        ...

    async def start_call(self, args: list, timeout: float, answer: calls.Answer) -> None:
        """Send event ``args`` (name, then data) with an ack id; the client's ack, or why there
        is none, goes to ``answer``. Raises ``calls.CallError`` when it cannot be sent."""
        ...


@dataclass(frozen=True, slots=True)
class Coalesce:
    """How queued peer messages may be merged (``Hub.publish_to_peers``): messages with the
    same room and ``key`` still waiting in the outbox become ``combine(messages)``."""

    key: Hashable
    combine: Callable[[list[dict]], dict]


@dataclass(slots=True)
class _Queued:
    """One outbox entry: a message, or several that coalesce into one when published."""

    room: str
    messages: list[dict]
    droppable: bool
    coalesce: Coalesce | None

    def message(self) -> dict:
        if len(self.messages) == 1 or self.coalesce is None:
            return self.messages[0]
        return self.coalesce.combine(self.messages)


class Hub:
    def __init__(self) -> None:
        #: The channel layer (channels' in-memory one, ours or channels_redis'); typed loosely:
        #: the stubs' ``BaseChannelLayer`` lacks the channel-name prefix ``new_channel`` takes.
        self.layer: Any = get_channel_layer()
        self.channel_name: str | None = None
        self.rooms: dict[str, set[Connection]] = {}
        #: How many of ``rooms`` there are of each kind (``room_kind``: "channel.", "user."…).
        self._kind_counts: collections.Counter[str] = collections.Counter()
        self.connections: dict[str, Connection] = {}
        #: Presence changes of this process, announced in order, in batches.
        self.presence = PresenceQueue(self)
        self._subscribed: set[str] = set()
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._pins: dict[str, int] = {}
        self._message_handlers: dict[str, Callable[[dict], Awaitable[None]]] = {}
        #: Unique per hub: lets a process recognise (and skip) its own published messages.
        self.token = uuid.uuid4().hex
        self.dropped_sends = 0
        #: Messages waiting to be published (``publish_soon``, ``publish_to_peers``), oldest
        #: first.
        self._outbox: collections.deque[_Queued] = collections.deque()
        #: (room, coalesce key) -> the queued entry later messages with that key join.
        self._coalescing: dict[tuple[str, Hashable], _Queued] = {}
        self._outbox_ready = asyncio.Event()
        self._outbox_room = asyncio.Event()
        self._outbox_task: asyncio.Task | None = None
        self.dropped_publishes = 0
        #: True on a process-local layer (in-memory): no other process can receive anything,
        #: so messages meant only for other instances are not sent at all.
        self.single_process = isinstance(self.layer, InMemoryChannelLayer)
        #: Session upkeep (``realtime.sessions.keeper``), run while the hub runs.
        self.keeper = SessionKeeper(self)
        #: Calls this hub's callers wait on (``call``), by call id.
        self._calls: dict[str, asyncio.Future] = {}
        #: Listed-room memberships to write to the registry: (room, sid) -> joined (True) or
        #: left (False); the last change of each wins.
        self._ledger: dict[tuple[str, str], bool] = {}
        self._ledger_task: asyncio.Task | None = None
        metrics.watch_outbox(self, lambda hub: len(hub._outbox))
        #: Set when the layer failed (a receive, or a publish dropped after its retries: a
        #: Redis restart or failover); the keeper's next round then runs ``heal``.
        self.layer_failed = False
        self._heal_hooks: list[Callable[[], Awaitable[None]]] = []

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._start_lock:
            if self.channel_name is not None:
                return
            self.channel_name = await self.layer.new_channel(CHANNEL_PREFIX)
            self._tasks += [
                asyncio.create_task(self._receive_loop(), name="chorus-hub-receive"),
                asyncio.create_task(self.keeper.run(), name="chorus-hub-keeper"),
            ]

    async def stop(self) -> None:
        if self._ledger_task is not None:
            self._tasks.append(self._ledger_task)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # --- local membership -------------------------------------------------------------------

    async def register(self, conn: Connection) -> None:
        await self.start()
        self.connections[conn.sid] = conn

    async def unregister(self, conn: Connection) -> None:
        if self.connections.get(conn.sid) is conn:  # a resumed socket may hold the sid now
            self.connections.pop(conn.sid)
        for room in list(conn.rooms):
            self._leave_local(conn, room)

    async def join(self, conn: Connection, room: str) -> None:
        """Add ``conn`` to ``room``; once this returns, broadcasts to the room reach it."""
        conn.rooms.add(room)
        members = self.rooms.get(room)
        if members is None:
            members = self.rooms[room] = set()
            self._kind_counts[room_kind(room)] += 1
        members.add(conn)
        if listed(room):
            self._note_membership(room, conn.sid, True)
        await self._subscribe(room)

    async def pin(self, room: str) -> None:
        """Keep ``room`` subscribed without a socket in it (counted; undo with ``unpin``)."""
        await self.start()
        self._pins[room] = self._pins.get(room, 0) + 1
        await self._subscribe(room)

    def unpin(self, room: str) -> None:
        count = self._pins.get(room, 0) - 1
        if count > 0:
            self._pins[room] = count
            return
        self._pins.pop(room, None)
        if not self.rooms.get(room):
            asyncio.get_running_loop().create_task(self._unsubscribe_if_empty(room))

    def on_message(self, kind: str, handler: Callable[[dict], Awaitable[None]]) -> None:
        """Route layer messages of type ``kind`` to ``handler``."""
        self._message_handlers[kind] = handler

    def on_layer_healed(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` in ``heal``: after a layer failure, catch up what may have been lost."""
        self._heal_hooks.append(hook)

    async def heal(self) -> None:
        """After a layer failure (``layer_failed``): re-add every room subscription (a Redis
        that restarted or failed over may have lost them) and run the ``on_layer_healed``
        hooks (open documents take in the edits whose relay was lost). Nothing without a
        failure; a heal that fails leaves the flag set for the keeper's next round."""
        if not self.layer_failed:
            return
        self.layer_failed = False
        try:
            await self.resubscribe()
            for hook in tuple(self._heal_hooks):
                await hook()
        except BaseException:
            self.layer_failed = True
            raise

    async def _subscribe(self, room: str) -> None:
        if self.channel_name is None:
            await self.start()
        if room not in self._subscribed:
            lock = self._room_locks.setdefault(room, asyncio.Lock())
            async with lock:
                if room not in self._subscribed:
                    await self.layer.group_add(room, self.channel_name)
                    self._subscribed.add(room)

    def leave(self, conn: Connection, room: str) -> None:
        self._leave_local(conn, room)

    def _leave_local(self, conn: Connection, room: str) -> None:
        conn.rooms.discard(room)
        members = self.rooms.get(room)
        if members is None:
            return
        members.discard(conn)
        if listed(room):
            self._note_membership(room, conn.sid, False)
        if not members:
            del self.rooms[room]
            self._kind_counts[room_kind(room)] -= 1
            asyncio.get_running_loop().create_task(self._unsubscribe_if_empty(room))

    async def _unsubscribe_if_empty(self, room: str) -> None:
        lock = self._room_locks.setdefault(room, asyncio.Lock())
        async with lock:
            if self.rooms.get(room) or self._pins.get(room) or room not in self._subscribed:
                return
            self._subscribed.discard(room)
            try:
                await self.layer.group_discard(room, self.channel_name)
            except Exception:  # the group expires on its own; never fail a disconnect
                logger.warning("group_discard failed for a room", exc_info=True)
        if not self.rooms.get(room) and not self._pins.get(room) and not lock.locked():
            self._room_locks.pop(room, None)

    def _note_membership(self, room: str, sid: str, joined: bool) -> None:
        self._ledger[(room, sid)] = joined
        if self._ledger_task is None or self._ledger_task.done():
            self._ledger_task = asyncio.get_running_loop().create_task(
                self._write_memberships(), name="chorus-hub-ledger"
            )

    async def _write_memberships(self) -> None:
        """Write the noted listed-room joins and leaves to the registry, in batches: one
        round trip for everything noted while the previous batch was written; the task ends
        when nothing is left. A failed write is logged: the keeper's next refresh records the
        joins again, and a membership that was not taken out expires with its deadline."""
        while self._ledger:
            batch, self._ledger = self._ledger, {}
            joins: dict[str, list[str]] = {}
            leaves = []
            for (room, sid), joined in batch.items():
                if joined:
                    joins.setdefault(room, []).append(sid)
                else:
                    leaves.append((room, sid))
            try:
                registry = get_registry()
                if joins:
                    await registry.join_groups(joins)
                if leaves:
                    await registry.leave_groups(leaves)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("writing %d room memberships failed", len(batch), exc_info=True)

    def listed_memberships(self) -> dict[str, list[str]]:
        """The listed rooms of this process's sockets with their sids (the keeper refreshes
        them)."""
        groups: dict[str, list[str]] = {}
        for room, members in self.rooms.items():
            if listed(room):
                groups[room] = [conn.sid for conn in members]
        return groups

    def may_reach(self, room: str) -> bool:
        """Whether a message published to ``room`` can reach a socket. Across processes,
        always: the rooms of other instances are not known here. On a process-local layer
        only when a socket of this process is in the room, or a resumable session was (what
        is published now is logged for it: ``realtime.recovery``)."""
        if not self.single_process or room in self.rooms:
            return True
        store = recovery.memory_store()
        return store is not None and recovery.enabled() and store.holds(room)

    def may_reach_kind(self, kind: str) -> bool:
        """``may_reach`` for every room of one kind at once (``room_kind``, e.g. "channel.")."""
        if not self.single_process or self._kind_counts[kind] > 0:
            return True
        store = recovery.memory_store()
        return store is not None and recovery.enabled() and store.kinds[kind] > 0

    # --- sending ----------------------------------------------------------------------------

    # The one way out to the channel layer: ``publish`` (a room, every instance),
    # ``publish_logged`` (the same, logged first for connection state recovery), ``emit`` (an
    # event frame, logged), ``reply`` (one instance's hub), and the outbox (``publish_soon``,
    # ``publish_to_peers``), which publishes through ``publish``.

    async def publish(self, room: str, message: dict) -> None:
        """Send a hub message to every process with a socket in ``room``."""
        await self.layer.group_send(room, {**message, "room": room})

    async def publish_logged(
        self,
        room: str,
        message: dict,
        kind: str,
        frame: str | None = None,
        skip: str | None = None,
        target: str | None = None,
    ) -> None:
        """``publish``, the message first logged for connection state recovery (when it is on
        and ``room`` is of a kind a resumed socket gets back): the message then carries
        ``offset``. One process publishes its logged messages in the order of their offsets."""
        if not recovery.enabled() or not recoverable(room):
            await self.publish(room, message)
            return
        store = recovery.get_store()
        async with store.lock():
            offset = await store.append(room, kind, frame, skip, target)
            await self.publish(room, {**message, "offset": offset})

    async def emit(self, room: str, frame: str, skip: str | None = None) -> None:
        """Send an event ``frame`` to every socket in ``room`` except ``skip`` (logged)."""
        await self.publish_logged(
            room, {"type": "chorus.emit", "frame": frame, "skip": skip}, "emit", frame, skip
        )

    async def reply(self, channel: str, message: dict) -> None:
        """Send a hub message to one instance's hub (its ``channel_name``)."""
        await self.layer.send(channel, message)

    # --- one socket, wherever it is ---------------------------------------------------------

    async def to_sid(self, sid: str, message: dict) -> bool:
        """Have the hub that has socket ``sid`` act on it (a ``chorus.sid`` message: ``op`` and
        its fields). False when no session has that sid: none in the registry, or — for any
        op but ``kick`` — one whose socket does not take events (y-websocket). The registry
        names the socket's hub; a local socket is acted on at once."""
        message = {**message, "type": "chorus.sid", "sid": sid}
        events = message.get("op") != "kick"  # a kick reaches a y-websocket connection too
        if sid in self.connections:
            if events and not self.connections[sid].takes_events:
                return False
            await self._on_sid(message)
            return True
        records = await get_registry().get([sid])
        if not records or not records[0].hub or (events and sid.startswith("y:")):
            return False
        await self.reply(records[0].hub, message)
        return True

    async def call(self, sid: str, args: list, timeout: float) -> Any:
        """Send event ``args`` to socket ``sid`` with an ack id and return the client's answer
        (``calls.result_of``). Raises ``calls.CallTimeout`` after ``timeout`` seconds,
        ``calls.SessionNotFound`` for an unknown sid, ``calls.SessionClosed`` when the socket
        closes first, ``calls.TooManyCalls`` when it has too many calls waiting."""
        await self.start()
        call_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            message = {
                "op": "call",
                "call_id": call_id,
                "reply_to": self.channel_name,
                "args": args,
                "timeout": timeout,
            }
            if not await self.to_sid(sid, message):
                raise calls.SessionNotFound()
            code, answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise calls.CallTimeout() from None
        finally:
            self._calls.pop(call_id, None)
        if code is not None:
            raise calls.ERRORS.get(code, calls.CallError)(code=code)
        return calls.result_of(answer)

    async def _on_sid(self, message: dict) -> None:
        conn, op = self.connections.get(message["sid"]), message.get("op")
        if op == "call":
            await self._start_call(conn, message)
        elif conn is None:
            return  # gone meanwhile (closed, or resumed on another instance): nothing to do
        elif op == "emit":
            metrics.event_sent(metrics.event_name_of(message["frame"]))
            await conn.send_frame(message["frame"])
        elif op == "join":
            await self.join(conn, message["target"])
        elif op == "leave":
            if message["target"] in conn.rooms:
                self.leave(conn, message["target"])
                await conn.on_room_left(message["target"])
        elif op == "kick":
            await conn.kick(message["code"], message["message"])

    async def _start_call(self, conn: Connection | None, message: dict) -> None:
        call_id, reply_to = message["call_id"], message["reply_to"]

        def answer(error: calls.CallError | None, args: list | None) -> None:
            result = {"call_id": call_id, "code": error.code if error else None, "args": args}
            if reply_to == self.channel_name:
                self._on_call_result(result)
            else:
                task = asyncio.get_running_loop().create_task(
                    self.reply(reply_to, {"type": "chorus.call_result", **result})
                )
                task.add_done_callback(_log_failure)

        if conn is None or not conn.takes_events:
            answer(calls.SessionNotFound(), None)
            return
        try:
            await conn.start_call(message["args"], float(message["timeout"]), answer)
        except calls.CallError as error:
            answer(error, None)

    def _on_call_result(self, message: dict) -> None:
        future = self._calls.get(message["call_id"])
        if future is not None and not future.done():
            future.set_result((message.get("code"), message.get("args") or []))

    #: Ephemeral messages that may wait in the outbox; beyond this they are dropped (counted).
    OUTBOX_SIZE = 10_000

    def publish_soon(self, room: str, message: dict) -> None:
        """Queue a hub message for publishing without waiting for the layer — for ephemeral
        events (typing) whose sender must not pay a layer round trip. One task publishes the
        outbox in order, so a socket's messages keep their order. When the outbox is full the
        message is dropped, counted in ``dropped_publishes`` and logged."""
        if len(self._outbox) >= self.OUTBOX_SIZE:
            self.dropped_publishes += 1
            metrics.OUTBOX_DROPS.inc()
            if self.dropped_publishes % 1000 == 1:
                logger.warning(
                    "hub outbox full: %d ephemeral messages dropped so far", self.dropped_publishes
                )
            return
        self._enqueue(room, message, droppable=True)

    #: Delays before the retries of a failed publish that may not be dropped.
    PEER_RETRY_DELAYS = (0.1, 0.5, 2.0)

    #: Messages one coalesced entry may gather before a new entry starts.
    COALESCE_MAX = 1_000

    async def publish_to_peers(
        self, room: str, message: dict, coalesce: Coalesce | None = None
    ) -> None:
        """Queue a message that only OTHER processes' hubs act on (a document update they
        relay to their own editors): published in order through the outbox, never dropped
        for space (a failing layer is retried, then the message is dropped and logged), and
        not sent at all on a single-process layer. Returns at once unless the outbox holds
        more than ``OUTBOX_SIZE`` entries: then the caller waits for room (backpressure when
        the layer is slower than the editors).

        With ``coalesce``, a message joins the entry still waiting in the outbox for the same
        room and ``coalesce.key``, and the entry is published as ``coalesce.combine(messages)``
        — one layer message for everything an editor sent while the outbox was busy (document
        updates merge into one update; order within the key is kept, and the entry keeps the
        place of its first message)."""
        if self.single_process:
            return
        self._enqueue(room, message, droppable=False, coalesce=coalesce)
        while len(self._outbox) > self.OUTBOX_SIZE:
            self._outbox_room.clear()
            await self._outbox_room.wait()

    def _enqueue(
        self, room: str, message: dict, droppable: bool, coalesce: Coalesce | None = None
    ) -> None:
        if self._outbox_task is None or self._outbox_task.done():
            self._outbox_task = asyncio.create_task(self._drain_outbox(), name="chorus-outbox")
            self._tasks.append(self._outbox_task)
        if coalesce is not None:
            waiting = self._coalescing.get((room, coalesce.key))
            if waiting is not None and len(waiting.messages) < self.COALESCE_MAX:
                waiting.messages.append(message)
                return
            entry = _Queued(room, [message], droppable, coalesce)
            self._coalescing[(room, coalesce.key)] = entry
        else:
            entry = _Queued(room, [message], droppable, None)
        self._outbox.append(entry)
        self._outbox_ready.set()

    def _take(self) -> _Queued:
        """The oldest entry, out of the outbox (no later message joins it any more)."""
        entry = self._outbox.popleft()
        if entry.coalesce is not None:
            key = (entry.room, entry.coalesce.key)
            if self._coalescing.get(key) is entry:
                del self._coalescing[key]
        return entry

    async def _drain_outbox(self) -> None:
        """Publish what is queued, oldest first, one message after another."""
        while True:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            entry = self._take()
            if len(self._outbox) <= self.OUTBOX_SIZE:
                self._outbox_room.set()
            for message in self._combined(entry):
                await self._publish_queued(entry.room, message, entry.droppable)

    @staticmethod
    def _combined(entry: _Queued) -> list[dict]:
        """The entry's message(s) to publish: the coalesced one, or (if combining failed,
        which must never lose them) each message as it was queued."""
        try:
            return [entry.message()]
        except Exception:
            logger.exception("coalescing %d queued messages failed", len(entry.messages))
            return list(entry.messages)

    async def _publish_queued(self, room: str, message: dict, droppable: bool) -> None:
        delays = () if droppable else self.PEER_RETRY_DELAYS
        for attempt in range(len(delays) + 1):
            try:
                await self.publish(room, message)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt < len(delays):
                    await asyncio.sleep(delays[attempt])
                    continue
                self.dropped_publishes += 1
                metrics.OUTBOX_DROPS.inc()
                self.layer_failed = True
                if self.dropped_publishes % 100 == 1:  # a dead layer must not flood the log
                    logger.log(
                        logging.WARNING if droppable else logging.ERROR,
                        "publishing a %s failed (%d dropped so far)",
                        message.get("type"),
                        self.dropped_publishes,
                        exc_info=True,
                    )

    async def deliver(
        self, room: str, frame: str, skip: str | None = None, offset: str | None = None
    ) -> None:
        """Write ``frame`` (with ``offset`` appended, if given) to the local sockets of ``room``
        (except sid ``skip``)."""
        shared = SharedFrame(frame)  # framed once, for every local socket that can take bytes
        # With an offset: a second frame, built once, for the sockets that take offsets.
        marked = SharedFrame(add_offset(frame, offset)) if offset is not None else shared
        delivered = 0
        for conn in tuple(self.rooms.get(room, ())):
            if conn.sid == skip:
                continue
            try:
                conn.deliver(marked if conn.offsets else shared)
                delivered += 1
            except Exception:  # one broken socket never stops the room
                self.dropped_sends += 1
                logger.debug("send to a socket failed", exc_info=True)
        if delivered:
            metrics.event_sent(metrics.event_name_of(frame))
            metrics.DELIVERIES.inc(delivered)

    async def _handle(self, message: dict) -> None:
        kind, room = message.get("type"), message.get("room", "")
        if kind == "chorus.emit":
            await self.deliver(room, message["frame"], message.get("skip"), message.get("offset"))
        elif kind == "chorus.kick":
            jti = message.get("jti")
            for conn in tuple(self.rooms.get(room, ())):
                if jti is None or conn.jti == jti:
                    await conn.kick(message["code"], message["message"])
        elif kind == "chorus.join":
            plain, marked = message.get("frame"), _notice(message)
            for conn in tuple(self.rooms.get(room, ())):
                await self.join(conn, message["target"])
                if plain:
                    await conn.send_frame((marked or plain) if conn.offsets else plain)
        elif kind == "chorus.leave":
            target = message["target"]
            plain, marked = message.get("frame"), _notice(message)
            for conn in tuple(self.rooms.get(room, ())):
                if target in conn.rooms:
                    self.leave(conn, target)
                    if plain:
                        await conn.send_frame((marked or plain) if conn.offsets else plain)
                    await conn.on_room_left(target)
        elif kind == "chorus.sid":
            await self._on_sid(message)
        elif kind == "chorus.call_result":
            self._on_call_result(message)
        elif kind in self._message_handlers and message.get("origin") != self.token:
            await self._message_handlers[kind](message)

    async def _receive_loop(self) -> None:
        backoff = 0.1
        while True:
            received = False
            try:
                message = await self.layer.receive(self.channel_name)
                received = True
                backoff = 0.1
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not received:  # the layer itself failed (not a handler): heal after it
                    self.layer_failed = True
                logger.exception("hub receive failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def resubscribe(self) -> None:
        """Re-add every room subscription to the layer (the keeper calls it before the layer's
        ``group_expiry`` can lapse them; it also heals a Redis restart, which forgets groups)."""
        for room in tuple(self._subscribed):
            await self.layer.group_add(room, self.channel_name)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("sending a call's answer failed", exc_info=task.exception())


def _notice(message: dict) -> str | None:
    """The notice frame of a join / leave message, with its offset if it has one."""
    frame, offset = message.get("frame"), message.get("offset")
    return add_offset(frame, offset) if frame and offset is not None else frame


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop (created on first use; call ``start`` to run it)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub

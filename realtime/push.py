"""Server-side push API: the one way server code reaches sockets — a room, a user, one socket
by sid, every socket — puts them in rooms, calls one and awaits its answer (``acall``), and asks
who is there (``aonline``, ``presence``, ``document_is_open``). The apps (``accounts``,
``channels_app``, ``notes``) use ``realtime`` through this module only (and the settings,
``realtime.conf``): an import-linter contract (``.importlinter``).

Views, signals, admin actions and commands call the sync functions; they run after the
current database transaction commits (``transaction.on_commit``), so a change that rolls back
is never announced. Async code calls the ``a``-prefixed coroutines, which send at once.

Every function reaches the sockets on every instance: it publishes one hub message to a room
(see ``realtime.hub``); the frame is encoded here, once, and written as-is to each socket.

Broadcasts to the rooms a resumed socket gets back (``realtime.recovery``) are logged as they
are published: the layer message carries the entry's ``offset``, which every recipient's frame
ends with (docs/protocol.md §4.1). Ephemeral ones (``emit_soon``: typing) are not logged.

A socket is reached by sid wherever it is: the session registry names its instance's hub
(``Hub.to_sid``). Apps name rooms of their own with ``app_room``; a socket is put in one by
sid, or all of a user's sockets at once; ``aonline`` lists a room's sockets on every instance.

With the in-memory channel layer (no ``REDIS_URL``) only the current process is reached: a
management command cannot kick the sockets of a running server. Use Redis for that.
Module map: docs/realtime.md.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from realtime import rooms
from realtime.calls import CallError, CallTimeout, SessionClosed, SessionNotFound, TooManyCalls
from realtime.hub import get_hub
from realtime.protocol.frames import event_frame
from realtime.rooms import (
    CHANNEL_ROOMS,
    EVERYONE_ROOM,
    USER_ROOMS,
    addressable,
    app_room,
    channel_room,
    doc_room,
    note_room,
    user_room,
)
from realtime.sessions import Presence, SessionRecord, get_registry, presence_of

__all__ = [  # what server code names (realtime.rooms, the call errors, records), event_frame
    "CHANNEL_ROOMS",
    "EVERYONE_ROOM",
    "CallError",
    "CallTimeout",
    "SessionClosed",
    "SessionNotFound",
    "SessionRecord",
    "TooManyCalls",
    "addressable",
    "app_room",
    "channel_room",
    "doc_room",
    "event_frame",
    "note_room",
    "user_room",
]


# --- async, immediate -------------------------------------------------------------------------


async def apublish(room: str, message: dict) -> None:
    """Publish a hub message to ``room`` on every instance (``Hub.publish``)."""
    await get_hub().publish(room, message)


async def aemit(room: str, event: str, data: Any, *, skip_sid: str | None = None) -> None:
    """Send event ``event`` with ``data`` to every socket in ``room`` except ``skip_sid``."""
    await get_hub().emit(room, event_frame(event, data), skip_sid)


def emit_soon(room: str, event: str, data: Any, *, skip_sid: str | None = None) -> None:
    """Like ``aemit`` but without waiting for the channel layer (call from the event loop):
    for ephemeral events such as typing. Best effort: see ``Hub.publish_soon``."""
    from realtime.hub import get_hub

    frame = event_frame(event, data)
    get_hub().publish_soon(room, {"type": "chorus.emit", "frame": frame, "skip": skip_sid})


async def aemit_to_user(user_id: object, event: str, data: Any) -> None:
    await aemit(user_room(user_id), event, data)


async def aemit_to_channel(channel_id: object, event: str, data: Any) -> None:
    await aemit(channel_room(channel_id), event, data)


async def aemit_to_note(note_id: object, event: str, data: Any) -> None:
    await aemit(note_room(note_id), event, data)


async def abroadcast(event: str, data: Any) -> None:
    """Send event ``event`` with ``data`` to every Socket.IO socket on every instance."""
    await aemit(EVERYONE_ROOM, event, data)


async def aemit_to_sid(sid: str, event: str, data: Any) -> bool:
    """Send event ``event`` with ``data`` to the one socket ``sid`` (the sid of the Socket.IO
    CONNECT reply), on whichever instance it is. False when no Socket.IO session has that sid.
    Not logged for connection state recovery: a socket that is resuming misses it (emit to
    the user to reach a resumed socket)."""
    return await get_hub().to_sid(sid, {"op": "emit", "frame": event_frame(event, data)})


async def adisconnect_sid(
    sid: str, code: str = "disconnected", message: str = "Disconnected by the server."
) -> bool:
    """Disconnect one socket: a Socket.IO one gets event ``error`` with ``code`` and
    ``message``, then DISCONNECT; a y-websocket one (sid ``y:…``, from ``asessions`` or
    ``aonline``) is closed with 4401 and ``code``. False when no session has that sid."""
    return await get_hub().to_sid(sid, {"op": "kick", "code": code, "message": message})


async def aadd_sid_to_room(sid: str, room: str) -> bool:
    """Put socket ``sid`` into ``room`` (``addressable``: e.g. ``app_room(name)``); False when
    no Socket.IO session has that sid. ``ValueError`` for a room that is not addressable."""
    _check_addressable(room)
    return await get_hub().to_sid(sid, {"op": "join", "target": room})


async def aremove_sid_from_room(sid: str, room: str) -> bool:
    """Take socket ``sid`` out of ``room``; False when no Socket.IO session has that sid."""
    _check_addressable(room)
    return await get_hub().to_sid(sid, {"op": "leave", "target": room})


async def acall(sid: str, event: str, data: Any = None, timeout: float = 30.0) -> Any:
    """Send event ``event`` with ``data`` to socket ``sid`` with an ack id, and return the
    client's answer: the one value it acked with (None for none, a list for several).

    Raises (all ``CallError``, each with its ``code``): ``CallTimeout`` when no answer came
    within ``timeout`` seconds, ``SessionNotFound`` when no Socket.IO session has that sid,
    ``SessionClosed`` when the socket closed first, ``TooManyCalls`` when it already has
    ``CALL_MAX_PENDING`` calls waiting. Works from any instance: the answer comes back to the
    instance that called."""
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    return await get_hub().call(sid, [event] if data is None else [event, data], timeout)


async def aonline(room: str) -> list[SessionRecord]:
    """The sessions in ``room`` on every instance, by sid: a user room's are the user's
    sessions; a listed room's (``realtime.rooms.LISTED_KINDS``: channel, note, document, app
    rooms and ``EVERYONE_ROOM``) are its members, written by each instance as they join and
    leave (a join shows up a moment after it). Each record has the public profile only. At
    most ``MAX_LISTED_SESSIONS`` (the first by sid): ``everyone.`` may hold every socket.
    ``ValueError`` for a room of another kind."""
    if room.startswith(USER_ROOMS):
        return await get_registry().sessions_of(room.removeprefix(USER_ROOMS))
    if not rooms.listed(room):
        raise ValueError(f"the members of {room!r} are not listed")
    registry = get_registry()
    return await registry.get((await registry.group_members(room))[:MAX_LISTED_SESSIONS])


def _check_addressable(room: str) -> None:
    if not addressable(room):
        raise ValueError(f"not a room server code can address: {room!r}")


async def adisconnect_user(
    user_id: object, code: str = "token_revoked", message: str = "Session revoked."
) -> None:
    """Disconnect every socket of the user on every instance."""
    await apublish(
        user_room(user_id), {"type": "chorus.kick", "code": code, "message": message, "jti": None}
    )


async def adisconnect_token(
    user_id: object, jti: str, code: str = "token_revoked", message: str = "Token revoked."
) -> None:
    """Disconnect the sockets opened with one token (by its ``jti``)."""
    await apublish(
        user_room(user_id), {"type": "chorus.kick", "code": code, "message": message, "jti": jti}
    )


async def aadd_user_to_room(
    user_id: object, room: str, notice: tuple[str, Any] | None = None
) -> None:
    """Put every live socket of the user into ``room`` on every instance; each then gets
    event ``notice`` if given. Use the notice (not a room emit) to tell the joining user: a
    room emit published right after may reach an instance before its join completes."""
    frame = event_frame(*notice) if notice else None
    message = {"type": "chorus.join", "target": room, "frame": frame}
    await get_hub().publish_logged(user_room(user_id), message, "join", frame, target=room)


async def aremove_user_from_room(
    user_id: object, room: str, notice: tuple[str, Any] | None = None
) -> None:
    """Take the user's live sockets out of ``room``; each gets event ``notice`` if given."""
    frame = event_frame(*notice) if notice else None
    message = {"type": "chorus.leave", "target": room, "frame": frame}
    await get_hub().publish_logged(user_room(user_id), message, "leave", frame, target=room)


async def apublish_document_update(note_id: object, update: bytes, user_id: object = None) -> None:
    """Apply a Yjs ``update`` made by the server (e.g. a REST content change) to the note's
    live document on every instance, which relays it to its editors like any other edit."""
    await apublish(
        doc_room(note_id),
        {
            "type": "chorus.doc",
            "kind": "update",
            "payload": bytes(update),
            "origin": "",
            "sid": None,
            "user_id": str(user_id) if user_id else None,
            "note_id": str(note_id),
        },
    )


async def apublish_document_access_changed(note_id: object) -> None:
    """Grants (or the note itself) changed: on every instance, sockets whose user can no
    longer read the note leave ``note.<id>`` (``realtime.events.notes.recheck_note_room``), and the
    access of the note's live editors is re-checked — write becomes read, lost access
    disconnects the editor from the document."""
    await apublish(note_room(note_id), {"type": "chorus.note_access", "note_id": str(note_id)})
    await apublish(
        doc_room(note_id),
        {
            "type": "chorus.doc",
            "kind": "access",
            "payload": b"",
            "origin": "",
            "sid": None,
            "user_id": None,
            "note_id": str(note_id),
        },
    )


# --- who is there ------------------------------------------------------------------------------


async def apresence(user_ids: list[str]) -> dict[str, Presence]:
    """Each user's presence across every instance (``realtime.sessions``)."""
    return await presence_of(user_ids)


async def adocument_is_open(note_id: object) -> bool:
    """Whether any editor — a Socket.IO socket or a y-websocket connection — has the note's
    live document open on any instance (the session registry's ``doc.note.<id>`` members)."""
    return bool(await get_registry().group_members(doc_room(note_id)))


#: Most sessions ``asessions`` returns, and most documents ``aopen_documents`` lists.
MAX_LISTED_SESSIONS = 1000
MAX_LISTED_DOCUMENTS = 200


async def asessions(limit: int = MAX_LISTED_SESSIONS) -> list[SessionRecord]:
    """Every live session (Socket.IO and y-websocket) on every instance, at most ``limit``
    (at most ``MAX_LISTED_SESSIONS``), oldest deadline first. The records carry the client
    address: for operators (the live admin), never for other users."""
    return await get_registry().all_sessions(min(limit, MAX_LISTED_SESSIONS))


async def aopen_documents(limit: int = MAX_LISTED_DOCUMENTS) -> dict[str, list[SessionRecord]]:
    """The notes whose live document is open on some instance (note id → its editors'
    records: Socket.IO and y-websocket), at most ``limit`` (at most ``MAX_LISTED_DOCUMENTS``)."""
    registry, prefix = get_registry(), doc_room("")
    groups = await registry.groups(prefix, min(limit, MAX_LISTED_DOCUMENTS))
    open_documents = {}
    for group in groups:
        editors = await registry.members(group)
        if editors:
            open_documents[group.removeprefix(prefix)] = editors
    return open_documents


def sessions(limit: int = MAX_LISTED_SESSIONS) -> list[SessionRecord]:
    """``asessions`` for sync code (at once)."""
    return async_to_sync(asessions)(limit)


def open_documents(limit: int = MAX_LISTED_DOCUMENTS) -> dict[str, list[SessionRecord]]:
    """``aopen_documents`` for sync code (at once)."""
    return async_to_sync(aopen_documents)(limit)


def online(room: str) -> list[SessionRecord]:
    """``aonline`` for sync code (at once)."""
    return async_to_sync(aonline)(room)


def presence(user_ids: list[str]) -> dict[str, Presence]:
    """``apresence`` for sync code (at once: a read, not an announcement)."""
    return async_to_sync(apresence)(user_ids)


def document_is_open(note_id: object) -> bool:
    """``adocument_is_open`` for sync code (at once)."""
    return async_to_sync(adocument_is_open)(note_id)


# --- sync, after commit -----------------------------------------------------------------------


def _after_commit(coroutine_function, *args, **kwargs) -> None:
    transaction.on_commit(lambda: async_to_sync(coroutine_function)(*args, **kwargs))


def emit_to_user(user_id: object, event: str, data: Any) -> None:
    _after_commit(aemit_to_user, user_id, event, data)


def emit_to_channel(channel_id: object, event: str, data: Any) -> None:
    _after_commit(aemit_to_channel, channel_id, event, data)


def emit_to_note(note_id: object, event: str, data: Any) -> None:
    _after_commit(aemit_to_note, note_id, event, data)


def emit_to_sid(sid: str, event: str, data: Any) -> None:
    _after_commit(aemit_to_sid, sid, event, data)


def broadcast(event: str, data: Any) -> None:
    _after_commit(abroadcast, event, data)


def disconnect_sid(
    sid: str, code: str = "disconnected", message: str = "Disconnected by the server."
) -> None:
    _after_commit(adisconnect_sid, sid, code, message)


def add_sid_to_room(sid: str, room: str) -> None:
    _check_addressable(room)
    _after_commit(aadd_sid_to_room, sid, room)


def remove_sid_from_room(sid: str, room: str) -> None:
    _check_addressable(room)
    _after_commit(aremove_sid_from_room, sid, room)


def disconnect_user(
    user_id: object, code: str = "token_revoked", message: str = "Session revoked."
) -> None:
    _after_commit(adisconnect_user, user_id, code, message)


def disconnect_token(
    user_id: object, jti: str, code: str = "token_revoked", message: str = "Token revoked."
) -> None:
    _after_commit(adisconnect_token, user_id, jti, code, message)


def add_user_to_room(user_id: object, room: str, notice: tuple[str, Any] | None = None) -> None:
    _after_commit(aadd_user_to_room, user_id, room, notice)


def remove_user_from_room(
    user_id: object, room: str, notice: tuple[str, Any] | None = None
) -> None:
    _after_commit(aremove_user_from_room, user_id, room, notice)


def publish_document_update(note_id: object, update: bytes, user_id: object = None) -> None:
    _after_commit(apublish_document_update, note_id, update, user_id)


def document_access_changed(note_id: object) -> None:
    _after_commit(apublish_document_access_changed, note_id)

"""Server-side push API: the one way server code reaches sockets, and asks who is there
(``presence``, ``document_is_open``). The apps (``accounts``, ``channels_app``, ``notes``) use
``realtime`` through this module only (and the settings, ``realtime.conf``): an import-linter
contract (``.importlinter``).

Views, signals, admin actions and commands call the sync functions; they run after the
current database transaction commits (``transaction.on_commit``), so a change that rolls back
is never announced. Async code calls the ``a``-prefixed coroutines, which send at once.

Every function reaches the sockets on every instance: it publishes one hub message to a room
(see ``realtime.hub``); the frame is encoded here, once, and written as-is to each socket.

Broadcasts to the rooms a resumed socket gets back (``realtime.recovery``) are logged as they
are published: the layer message carries the entry's ``offset``, which every recipient's frame
ends with (docs/protocol.md §4.1). Ephemeral ones (``emit_soon``: typing) are not logged.

With the in-memory channel layer (no ``REDIS_URL``) only the current process is reached: a
management command cannot kick the sockets of a running server. Use Redis for that.
Module map: docs/realtime.md.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from realtime.hub import get_hub
from realtime.protocol.frames import event_frame
from realtime.rooms import CHANNEL_ROOMS, channel_room, doc_room, note_room, user_room
from realtime.sessions import Presence, get_registry, presence_of

__all__ = [  # the room names server code addresses (realtime.rooms), and event_frame
    "CHANNEL_ROOMS",
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

"""Note events: ``join-note`` (a note's REST events room), and what follows a change of a
note's grants (``recheck_note_room``). The read checks are ``realtime.access``'s.
Module map: docs/realtime.md."""

from __future__ import annotations

import uuid

from realtime import rooms
from realtime.access import access_by_user, note_access
from realtime.events.registry import Auth, EventError, Payload, on, revalidate
from realtime.hub import get_hub
from realtime.protocol.frames import event_frame


class JoinNote(Payload):
    note_id: uuid.UUID
    auth: Auth | None = None


async def recheck_note_room(message: dict) -> None:
    """A note's grants changed (``push.document_access_changed``, a ``chorus.note_access``
    hub message to ``note.<id>``): this process's sockets in the room whose user can no
    longer read the note leave it, each told with ``note-events`` ``{"id", "access": null}``
    — the ``everyone`` grant included, whose users no query could list in advance."""
    hub = get_hub()
    note_id = str(message.get("note_id", ""))
    room = rooms.note_room(note_id)
    conns = [conn for conn in tuple(hub.rooms.get(room, ())) if conn.user is not None]
    if not conns:
        return
    user_ids = {str(user.pk) for conn in conns if (user := conn.user) is not None}
    access = await access_by_user(note_id, user_ids)
    notice = event_frame("note-events", {"id": note_id, "access": None})
    for conn in conns:
        if conn.user is not None and room in conn.rooms and access.get(str(conn.user.pk)) is None:
            hub.leave(conn, room)
            await conn.send_frame(notice)
            await conn.on_room_left(room)


def no_such_note() -> EventError:
    """The refusal for a note that does not exist or that the user may not read (the two
    are not told apart)."""
    return EventError("not_found", "No such note.")


@on("join-note", JoinNote)
async def join_note(conn, payload: JoinNote) -> dict:
    await revalidate(conn, payload.auth)
    if await note_access(conn.user, payload.note_id) is None:
        raise no_such_note()
    get_hub().on_message("chorus.note_access", recheck_note_room)
    room = rooms.note_room(payload.note_id)
    await conn.join(room)
    # A grant change published between the check and the join did not see this socket.
    if await note_access(conn.user, payload.note_id) is None:
        conn.leave(room)
        raise no_such_note()
    return {"note_id": str(payload.note_id)}

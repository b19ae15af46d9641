"""Socket.IO ``ydoc:*`` events: collaborative documents over the event socket.

Read access to join, write access to update; an update is applied to the server ``Doc``
before anything is relayed (see ``realtime.documents``). Updates and awareness payloads are
accepted as int lists (what Open WebUI's client sends) or binary attachments. The user id
and name relayed to others are the authenticated user's, never the client's.

Awareness comes in two forms, told apart by the first byte: Open WebUI's JSON
(``realtime.protocol.jsonawareness``: ``{"<client id>": state}``) or a y-protocols awareness update.
Both go through the same rules (``DocumentRoom.apply_awareness``). A socket receives awareness
in the form it last sent, Open WebUI's JSON until it has sent any; on join it is sent the
states the document already has.

``ydoc:document:state.sessions``: the session ids of every connection in the document on
every instance, sorted — a Socket.IO socket's ``sid`` (its CONNECT ack, ``socket.id``), a
y-websocket connection's ``y:<id>`` (a ``:`` never occurs in a Socket.IO sid), read from the
session registry's ``doc.note.<id>`` group.

Refusals: ``bad_request`` (bad id / payload / update / ``data.content``, or an operation on a
document the socket has not joined), ``forbidden`` (no read access to join, no write access to
update), ``not_found`` (no such note), ``too_large`` (update / awareness / document /
``data.content`` size limits). An update whose ``data.content`` is refused is not applied; a
valid one is ignored (the server renders the stored content from the document on save).
Module map: docs/realtime.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from notes.content import ContentError, ContentTooLarge, check_content
from realtime import push, rooms
from realtime.access import note_access
from realtime.conf import realtime_settings
from realtime.documents import (
    SIO,
    DocClient,
    DocError,
    DocumentRoom,
    get_manager,
    parse_document_id,
)
from realtime.events.notes import no_such_note
from realtime.events.registry import EventError, Payload, on
from realtime.protocol import jsonawareness
from realtime.protocol.frames import event_frame
from realtime.protocol.socketio import RawJSON
from realtime.sessions import get_registry


def _as_bytes(value: Any) -> bytes:
    """An update given as bytes (binary attachment) or a list of ints 0..255."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        try:
            return bytes(value)
        except (TypeError, ValueError):
            raise ValueError("must be a list of integers 0..255") from None
    raise ValueError("must be bytes or a list of integers 0..255")


UpdateBytes = Annotated[bytes, BeforeValidator(_as_bytes)]


class DocumentRef(Payload):
    document_id: str = Field(max_length=200)


class DocumentJoin(DocumentRef):
    user_color: str | None = Field(default=None, max_length=32)


class RenderedContent(Payload):
    md: str | None = None
    html: str | None = None
    json_: dict | None = Field(default=None, alias="json")


class UpdateData(Payload):
    content: RenderedContent | None = None


class DocumentUpdate(DocumentRef):
    update: UpdateBytes
    data: UpdateData | None = None


class AwarenessUpdate(DocumentRef):
    update: UpdateBytes


def _joined(conn, document_id: str) -> tuple[str, DocumentRoom]:
    try:
        note_id = str(parse_document_id(document_id))
    except DocError as error:
        raise EventError(error.code, error.message) from None
    room = get_manager().member(note_id, conn.sid)
    if room is None:
        raise EventError("bad_request", "Join the document first (ydoc:document:join).")
    return note_id, room


def _one_state_at_a_time(conn) -> None:
    """Refuse a request for a document state while the last one sent to this socket has not
    been taken by the client (``rate_limited``): a client that asks again and again without
    reading would otherwise pile up copies of the document in the server's memory."""
    if conn.out.reply_pending():
        raise EventError("rate_limited", "The last document state has not been read yet.")


async def _state(conn, room: DocumentRoom) -> RawJSON:
    """Send the state (event ``ydoc:document:state``) and return it for the ack: one reply
    (``Outbound.begin_reply``; the consumer ends it after the ack), encoded once."""
    sessions = await get_registry().group_members(room.group)
    state = room.state_payload(await room.durable_state(), sessions)
    conn.out.begin_reply()
    await conn.send_frame(event_frame("ydoc:document:state", state))
    return state


@on("ydoc:document:join", DocumentJoin)
async def document_join(conn, payload: DocumentJoin) -> RawJSON:
    _one_state_at_a_time(conn)
    try:
        note_id = parse_document_id(payload.document_id)
        access = await note_access(conn.user, note_id)
        if access is None:
            raise no_such_note()
        room = await get_manager().open(note_id)
    except DocError as error:
        raise EventError(error.code, error.message) from None

    async def revoke() -> None:
        """Access to the note is gone: say so, then leave the document."""
        await conn.send_frame(
            event_frame(
                "error",
                {
                    "code": "forbidden",
                    "message": "Your access to this note was removed.",
                    "document_id": room.document_id,
                },
            )
        )
        await leave_document(conn, str(note_id))

    client = DocClient(
        key=conn.sid,
        kind=SIO,
        user_id=str(conn.user.pk),
        user_name=conn.user.display_name,
        writable=access == "write",
        deliver=conn.deliver,
        revoke=revoke,
        awareness_json=True,  # Open WebUI's form until the socket sends y-protocols
    )
    await get_manager().join(room, client, conn)
    # A grant change published while the check and the load ran found no editor here to
    # re-check: now that this one is in the room, read its access once more.
    access = await note_access(conn.user, note_id)
    if access is None:
        await leave_document(conn, str(note_id))
        raise no_such_note()
    client.writable = access == "write"
    state = await _state(conn, room)
    known = room.awareness_entries()
    if known:  # as a y-websocket client gets them on accept
        await conn.send_frame(room.awareness_frame(known, None, as_json=True))
    await push.aemit(
        room.group,
        "ydoc:user:joined",
        {
            "document_id": room.document_id,
            "user_id": str(conn.user.pk),
            "user_name": conn.user.display_name,
            "user_color": payload.user_color,
        },
        skip_sid=conn.sid,
    )
    return state


@on("ydoc:document:state", DocumentRef)
async def document_state(conn, payload: DocumentRef) -> RawJSON:
    _, room = _joined(conn, payload.document_id)
    _one_state_at_a_time(conn)
    return await _state(conn, room)


@on("ydoc:document:update", DocumentUpdate)
async def document_update(conn, payload: DocumentUpdate) -> dict:
    _, room = _joined(conn, payload.document_id)
    if not room.clients[conn.sid].writable:
        raise EventError("forbidden", "You may not edit this note.")
    _checked_content(payload)  # checked (a bad one refuses the event), then ignored
    try:
        integrated = await room.apply(payload.update, conn.sid, str(conn.user.pk))
    except DocError as error:
        raise EventError(error.code, error.message) from None
    if not integrated:
        await _ask_for_missing(conn, room)
    return {}


async def _ask_for_missing(conn, room: DocumentRoom) -> None:
    """The update builds on changes the server does not have: the client holds state the
    server lacks (e.g. it kept editing across a server crash). Never acked as success:
    ``ydoc:document:sync`` asks for the difference (the server's state vector; the client
    answers with ``ydoc:document:update`` carrying ``Y.encodeStateAsUpdate(doc, vector)``) —
    once per state of the server's document (``DocumentRoom.should_ask``) — and the ack is
    the error ``missing_updates`` with the same vector."""
    vector = list(room.doc.get_state())
    client = room.clients.get(conn.sid)
    if client is not None and room.should_ask(client):
        await conn.send_frame(
            event_frame(
                "ydoc:document:sync", {"document_id": room.document_id, "state_vector": vector}
            )
        )
    raise EventError(
        "missing_updates",
        "The update builds on changes the server does not have; send them"
        " (Y.encodeStateAsUpdate(doc, state_vector)).",
        state_vector=vector,
    )


def _checked_content(payload: DocumentUpdate) -> dict | None:
    """The update's ``data.content`` ({md?, html?, json?}) once checked, or None if it has
    none. Checked only: nothing stores it (``notes.yjs.merge_save`` renders the content).

    Raises ``EventError`` (``too_large`` over ``DOC_MAX_CONTENT_BYTES``, else ``bad_request``)
    for content ``notes.content.check_content`` refuses: then the update is not applied
    either, so nothing of it is relayed or stored."""
    if payload.data is None or payload.data.content is None:
        return None
    content = payload.data.content.model_dump(by_alias=True, exclude_none=True)
    try:
        check_content(content, realtime_settings.DOC_MAX_CONTENT_BYTES)
    except ContentTooLarge as error:
        raise EventError("too_large", str(error)) from None
    except ContentError as error:
        raise EventError("bad_request", str(error)) from None
    return content


@on("ydoc:document:leave", DocumentRef)
async def document_leave(conn, payload: DocumentRef) -> dict:
    note_id, _ = _joined(conn, payload.document_id)
    await leave_document(conn, note_id)
    return {}


@on("ydoc:awareness:update", AwarenessUpdate)
async def awareness_update(conn, payload: AwarenessUpdate) -> dict:
    """Open WebUI's JSON form or a y-protocols update; from then on the socket receives
    awareness in the form it sent."""
    _, room = _joined(conn, payload.document_id)
    as_json = jsonawareness.is_json_form(payload.update)
    apply = room.apply_json_awareness if as_json else room.apply_awareness
    try:
        await apply(payload.update, conn.sid, str(conn.user.pk))
    except DocError as error:
        raise EventError(error.code, error.message) from None
    client = room.clients.get(conn.sid)
    if client is not None:
        client.awareness_json = as_json
    return {}


def joined_documents(conn) -> list[str]:
    """The ids of the notes whose document ``conn`` is in (from its rooms)."""
    prefix = rooms.doc_room("")
    return [room.removeprefix(prefix) for room in conn.rooms if room.startswith(prefix)]


async def leave_document(conn, note_id: str) -> None:
    """Take ``conn`` out of a document (leave event or disconnect); tell the room."""
    manager = get_manager()
    room = manager.member(note_id, conn.sid)
    if room is None:
        conn.leave(rooms.doc_room(note_id))  # whatever is left of a half-made join
        return
    await manager.leave_room(room, room.clients[conn.sid], conn)
    await push.aemit(
        room.group,
        "ydoc:user:left",
        {"document_id": room.document_id, "user_id": str(conn.user.pk)},
    )

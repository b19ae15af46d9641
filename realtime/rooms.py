"""Room names and kinds: every room a socket can be in, named here once.

A room is a channel-layer group and a hub room at once (docs/protocol.md §5 has the table).
Its *kind* is its name up to and including the first dot (``"channel.<id>"`` →
``"channel."``): the hub counts its rooms by kind, and connection state recovery gives back
the rooms of the kinds in ``RECOVERABLE_KINDS``. Pure: no imports of Chorus.
Module map: docs/realtime.md."""

from __future__ import annotations

USER_ROOMS = "user."
#: The kind of every channel room.
CHANNEL_ROOMS = "channel."
NOTE_ROOMS = "note."
DOC_ROOMS = "doc."
#: The kinds a resumed socket gets back (docs/protocol.md §4.1); a note's document room is
#: not one of them (a document is re-joined with a state sync).
RECOVERABLE_KINDS = (USER_ROOMS, CHANNEL_ROOMS, NOTE_ROOMS)


def user_room(user_id: object) -> str:
    return f"{USER_ROOMS}{user_id}"


def channel_room(channel_id: object) -> str:
    return f"{CHANNEL_ROOMS}{channel_id}"


def note_room(note_id: object) -> str:
    return f"{NOTE_ROOMS}{note_id}"


def doc_room(note_id: object) -> str:
    return f"{DOC_ROOMS}note.{note_id}"


def room_kind(room: str) -> str:
    """A room's kind: its name up to and including the first dot."""
    return room[: room.find(".") + 1]


def recoverable(room: str) -> bool:
    """Whether a resumed socket gets ``room`` back."""
    return room.startswith(RECOVERABLE_KINDS)

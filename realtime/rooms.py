"""Room names and kinds: every room a socket can be in, named here once.

A room is a channel-layer group and a hub room at once (docs/protocol.md §5 has the table).
Its *kind* is its name up to and including the first dot (``"channel.<id>"`` →
``"channel."``): the hub counts its rooms by kind, and connection state recovery gives back
the rooms of the kinds in ``RECOVERABLE_KINDS``. Pure: no imports of Chorus.
Module map: docs/realtime.md."""

from __future__ import annotations

import re

USER_ROOMS = "user."
#: The kind of every channel room.
CHANNEL_ROOMS = "channel."
NOTE_ROOMS = "note."
DOC_ROOMS = "doc."
#: Rooms an app names and puts sockets in from the server (``app.<name>``: ``push.app_room``).
APP_ROOMS = "app."
#: The one room every Socket.IO socket is in (a broadcast); its name is its kind.
EVERYONE_ROOM = "everyone."
#: The kinds a resumed socket gets back (docs/protocol.md §4.1); a note's document room is
#: not one of them (a document is re-joined with a state sync).
RECOVERABLE_KINDS = (USER_ROOMS, CHANNEL_ROOMS, NOTE_ROOMS, APP_ROOMS, EVERYONE_ROOM)
#: The kinds whose members the session registry lists (``push.aonline``); a user room's
#: members are the user's sessions, listed by the registry already.
LISTED_KINDS = (CHANNEL_ROOMS, NOTE_ROOMS, DOC_ROOMS, APP_ROOMS, EVERYONE_ROOM)
#: The kinds server code outside Chorus (the server API) may address by name.
ADDRESSABLE_KINDS = (USER_ROOMS, CHANNEL_ROOMS, NOTE_ROOMS, APP_ROOMS, EVERYONE_ROOM)
#: What may follow a kind: the channel layer's group-name alphabet, with room for the kind
#: and the layer's prefix within its 100-character limit.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,80}")


def user_room(user_id: object) -> str:
    return f"{USER_ROOMS}{user_id}"


def channel_room(channel_id: object) -> str:
    return f"{CHANNEL_ROOMS}{channel_id}"


def note_room(note_id: object) -> str:
    return f"{NOTE_ROOMS}{note_id}"


def doc_room(note_id: object) -> str:
    return f"{DOC_ROOMS}note.{note_id}"


def app_room(name: str) -> str:
    """The room of an app-named group of sockets: ``app.<name>``. ``ValueError`` unless
    ``name`` is 1 to 80 of ``A-Z a-z 0-9 _ . -``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError("a room name is 1-80 characters of A-Z a-z 0-9 _ . -")
    return f"{APP_ROOMS}{name}"


def addressable(room: str) -> bool:
    """Whether ``room`` is a room server code outside Chorus may publish to, list or put
    users in: ``user.<id>``, ``channel.<id>``, ``note.<id>``, ``app.<name>``, ``everyone.``."""
    if not isinstance(room, str):
        return False
    if room == EVERYONE_ROOM:
        return True
    kind = room_kind(room)
    return kind in ADDRESSABLE_KINDS and bool(_NAME.fullmatch(room[len(kind) :]))


def listed(room: str) -> bool:
    """Whether the session registry lists the members of ``room`` (``LISTED_KINDS``)."""
    return room.startswith(LISTED_KINDS)


def room_kind(room: str) -> str:
    """A room's kind: its name up to and including the first dot."""
    return room[: room.find(".") + 1]


def recoverable(room: str) -> bool:
    """Whether a resumed socket gets ``room`` back."""
    return room.startswith(RECOVERABLE_KINDS)

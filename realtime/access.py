"""Who may do what, for the socket layer: the one place realtime code asks, on the ORM thread.
The rules live with the data, shared with REST: ``Note.access_for`` for notes,
``channels_app.access`` for channel membership. Module map: docs/realtime.md."""

from __future__ import annotations

from realtime.db import orm


@orm
def note_access(user, note_id) -> str | None:
    """``"write"``, ``"read"`` or None for ``user`` on the note — None also when there is no
    such note: callers answer a missing and an unreadable note alike (as REST's 404 does)."""
    from notes.models import Note

    note = Note.objects.filter(pk=note_id).first()
    return None if note is None else note.access_for(user)


@orm
def access_by_user(note_id: str, user_ids: set[str]) -> dict[str, str | None]:
    """``{user id: "write" | "read" | None}`` for one note (None for all if it is gone)."""
    from accounts.models import User
    from notes.models import Note

    note = Note.objects.filter(pk=note_id).first()
    if note is None:
        return {}
    return {str(user.pk): note.access_for(user) for user in User.objects.filter(pk__in=user_ids)}


@orm
def channel_ids_of(user_id) -> list[str]:
    """The ids of the open (not archived) channels ``user_id`` is an active member of."""
    from channels_app.access import open_channel_ids

    return open_channel_ids(user_id)


@orm
def is_channel_member(user_id, channel_id) -> bool:
    """Whether ``user_id`` is an active member of the open channel ``channel_id``."""
    from channels_app.access import is_open_channel_member

    return is_open_channel_member(user_id, channel_id)

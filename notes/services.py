"""Note and grant mutations: access checks, the live-document content rule, and the events.

Contract (docs/notes.md has the tables):
- ``note_access(user, note_id)`` resolves a note the user may *read* or raises 404: a note the
  caller may not read is indistinguishable from one that does not exist. The level comes from
  ``Note.access_for`` (the one decider); ``Note.objects.readable_by`` decides the list.
- On a readable note a refused action is 403: writing needs ``write``; deleting the note and
  changing grants need the owner or an admin; seeing grants needs ``write``.
- Content: the Yjs state is the truth. ``data.content`` must pass ``notes.content.check_content``
  (schema, storable JSON, ``DOC_MAX_CONTENT_BYTES``), else 400 and nothing changes. A
  ``data.content`` with a ProseMirror ``json`` object is applied to the stored Yjs state
  (``notes.yjs.content_change_update``) and the resulting Yjs update is published to the live
  document on every instance; the stored ``data.content`` is then the server's rendering of
  the resulting document (``notes.yjs.rendered_content``: the client's md/html are not kept).
  Content without ``json`` on a note that has a Yjs state, or whose document is open in an
  editor, cannot be merged: 409 ``conflict``, nothing changes. On a note with neither it is
  simply stored.
- Every successful change of an existing note emits ``note-events`` to ``note.<id>`` (after
  commit, via ``realtime.push``): the note as the REST API shows it minus the per-caller
  ``access``, or ``{"id", "deleted": true}`` on delete. A change that rolls back announces nothing.
- Users who lose read access through a grant change are taken out of ``note.<id>`` and the live
  document on every instance (each re-checks its sockets: ``push.document_access_changed``).

Every mutation runs in one transaction holding the note's row lock, so concurrent REST changes
and live-document saves (``notes.yjs.merge_save``) serialise on the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from pycrdt import XmlFragment
from rest_framework import exceptions, status

from accounts.models import Role, User
from config.api_errors import Conflict
from realtime import push
from realtime.conf import realtime_settings

from .content import check_content
from .models import Note, NoteGrant, NoteUpdate, Permission
from .yjs import (
    FRAGMENT,
    ContentError,
    content_change_update,
    current_state,
    doc_from_state,
    fragment_to_prosemirror,
    rendered_content,
    seed_state,
)

#: The 409 message for content that cannot be merged into the collaborative document.
UNMERGEABLE_CONTENT = (
    "This note has a collaborative document: send data.content.json (ProseMirror JSON); "
    "md/html alone cannot be merged into the collaborative document."
)


class BadRequest(exceptions.APIException):
    """400 ``bad_request`` with a specific message (not a per-field validation error)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The request is not valid."
    default_code = "bad_request"


def note_queryset() -> QuerySet[Note]:
    """Notes as the API shows them: owner joined, ``yjs_state`` never loaded, plus a
    ``has_yjs_state`` flag (a stored state or any row in the update log)."""
    return (
        Note.objects.select_related("owner")
        .defer("yjs_state")
        .annotate(
            has_yjs_state=ExpressionWrapper(
                Q(yjs_state__isnull=False) | Exists(NoteUpdate.objects.filter(note=OuterRef("pk"))),
                output_field=BooleanField(),
            )
        )
    )


# --- access -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteAccess:
    """The caller, a note they may read (from ``note_queryset``) and their level on it."""

    user: User
    note: Note
    level: str

    @property
    def can_write(self) -> bool:
        return self.level == Permission.WRITE

    @property
    def can_manage(self) -> bool:
        """The owner or an admin: may delete the note and change its grants."""
        return self.user.role == Role.ADMIN or self.note.owner_id == self.user.pk

    def require_write(self) -> None:
        if not self.can_write:
            raise exceptions.PermissionDenied("You may read this note but not change it.")

    def require_manage(self) -> None:
        if not self.can_manage:
            raise exceptions.PermissionDenied("Only the note's owner or an admin may do this.")


def note_access(user: User, note_id: UUID | str) -> NoteAccess:
    """The caller's access to a note they may read; 404 for a missing or unreadable note."""
    note = note_queryset().filter(pk=note_id).first()
    level = note.access_for(user) if note is not None else None
    if note is None or level is None:
        raise exceptions.NotFound("No such note.")
    note.caller_access = level
    return NoteAccess(user=user, note=note, level=level)


def readable_notes(user: User) -> list[Note]:
    """Notes the user may read, most recently updated first, each with ``caller_access``.

    ``access_for`` answers owned notes (and every note for an admin) without a query; each
    note shared with the caller costs one grant query.
    """
    notes = list(
        note_queryset()
        .filter(pk__in=Note.objects.readable_by(user).values("pk"))
        .order_by("-updated_at", "-created_at")
    )
    for note in notes:
        note.caller_access = note.access_for(user)
    return notes


def _lock(note_id: UUID | str, *fields: str) -> Note:
    """The note's row, locked until the transaction ends (only ``fields`` loaded); 404 if it
    was deleted since the access check."""
    note = (
        Note.objects.select_for_update(no_key=True).only("id", *fields).filter(pk=note_id).first()
    )
    if note is None:
        raise exceptions.NotFound("No such note.")
    return note


def _reload(note_id: UUID | str, access: str | None = None) -> Note:
    note = note_queryset().get(pk=note_id)
    note.caller_access = access
    return note


# --- events -----------------------------------------------------------------------------------


def _announce(note: Note) -> None:
    """Emit ``note-events`` with ``note`` (loaded by ``note_queryset``) after commit."""
    from .serializers import note_event_payload

    push.emit_to_note(note.pk, "note-events", note_event_payload(note))


# --- notes ------------------------------------------------------------------------------------


def create_note(user: User, title: str, data: dict[str, Any] | None = None) -> Note:
    """Create a note owned by ``user``.

    A ``data.content.json`` document seeds the Yjs state at once, and ``data.content`` is the
    server's rendering of it (so the collaborative document and the REST copy start equal);
    JSON that is not a ProseMirror document is a 400.
    """
    data = dict(data or {})
    _check_content(data)
    pm_json = (data.get("content") or {}).get("json")
    state = None
    if isinstance(pm_json, dict):
        try:
            state = seed_state(pm_json)
        except ContentError as error:
            raise BadRequest(str(error)) from error
        data["content"] = rendered_content(state)
    created = Note.objects.create(owner=user, title=title, data=data, yjs_state=state)
    # No note-events: nobody can have joined ``note.<id>`` of a note that did not exist.
    return _reload(created.pk, Permission.WRITE)


def _check_content(data: dict[str, Any] | None) -> None:
    """400 (``BadRequest``, the rule's message) for a ``data.content`` that
    ``notes.content.check_content`` refuses: wrong schema, not storable, or larger than
    ``DOC_MAX_CONTENT_BYTES``."""
    if not data or "content" not in data:
        return
    try:
        check_content(data["content"], realtime_settings.DOC_MAX_CONTENT_BYTES)
    except ContentError as error:
        raise BadRequest(str(error)) from error


def _same_content(state: bytes | None, pm_json: dict) -> bool:
    """Whether the stored document already holds exactly ``pm_json``."""
    if not state:
        return False
    try:
        fragment = doc_from_state(state).get(FRAGMENT, type=XmlFragment)
        return fragment_to_prosemirror(fragment) == pm_json
    except Exception:  # an unreadable state is simply "different": the change replaces it
        return False


def _stored_state(note_id: UUID | str) -> bytes:
    """The note's stored Yjs state (``content_change_update`` has just written it)."""
    state = Note.objects.values_list("yjs_state", flat=True).get(pk=note_id)
    if state is None:
        raise RuntimeError(f"Note {note_id} has no stored Yjs state")
    return bytes(state)


def document_is_open(note_id: UUID | str) -> bool:
    """Whether any editor has the note's live document open on any instance."""
    return push.document_is_open(note_id)


def update_note(
    access: NoteAccess, *, title: str | None = None, data: dict[str, Any] | None = None
) -> Note:
    """Change the title and/or merge ``data`` into the note (needs write access).

    ``data`` keys are merged shallowly into ``note.data``; ``data.content`` ({md, html, json})
    replaces the stored content as a whole and follows the content rule (module docstring).
    Raises 403 (reader), 400 (content ``check_content`` refuses, e.g. json that is not a
    ProseMirror document), 409 (content without json on a note with a Yjs state or an open
    document). Nothing changes when it raises.
    """
    access.require_write()
    _check_content(data)
    note_id = access.note.pk
    update: bytes | None = None
    with transaction.atomic():
        locked = _lock(note_id, "data", "yjs_state")
        fields = ["updated_at"]
        if title is not None:
            locked.title = title
            fields.append("title")
        if data is not None:
            merged = {**(locked.data or {}), **{k: v for k, v in data.items() if k != "content"}}
            if "content" in data:
                content = data["content"]
                pm_json = content.get("json")
                state = current_state(note_id)  # the stored state and its update log
                if isinstance(pm_json, dict):
                    if not _same_content(state, pm_json):
                        try:
                            update = content_change_update(note_id, pm_json)
                        except ContentError as error:
                            raise BadRequest(str(error)) from error
                        state = _stored_state(note_id)
                    content = rendered_content(state)
                elif state or document_is_open(note_id):
                    raise Conflict(UNMERGEABLE_CONTENT)
                merged["content"] = content
            locked.data = merged
            fields.append("data")
        locked.save(update_fields=fields)
        if update is not None:
            push.publish_document_update(note_id, update, access.user.pk)
        note = _reload(note_id, access.level)
        _announce(note)
    return note


def delete_note(access: NoteAccess) -> None:
    """Delete the note (owner or admin); emits ``{"id", "deleted": true}``."""
    access.require_manage()
    note_id = access.note.pk
    with transaction.atomic():
        # The note's row first (FOR UPDATE: update-log inserts wait), then the cascade: the
        # same order as saves take (note, then its log rows), so the two never deadlock.
        Note.objects.select_for_update().filter(pk=note_id).first()
        Note.objects.filter(pk=note_id).delete()
        push.emit_to_note(note_id, "note-events", {"id": str(note_id), "deleted": True})
        push.document_access_changed(note_id)  # live editors of a deleted note are let go


# --- grants -----------------------------------------------------------------------------------


def grants_of(access: NoteAccess) -> QuerySet[NoteGrant]:
    """The note's grants, oldest first; visible to writers (owner and admins included)."""
    if not access.can_write:
        raise exceptions.PermissionDenied("Only those who may write this note see its grants.")
    return access.note.grants.select_related("user", "group").order_by("created_at", "id")


def upsert_grant(
    access: NoteAccess,
    principal_type: str,
    principal: User | Group | None,
    permission: str,
) -> tuple[NoteGrant, bool]:
    """Grant ``permission`` to a principal (owner or admin); ``(grant, created)``.

    A principal holds at most one grant per note: granting again changes its permission.
    A downgrade from write to read keeps read, so nobody is evicted here.
    """
    access.require_manage()
    note = access.note
    # The principal is of its type (``GrantCreateSerializer``): a User, a Group, or None.
    user = principal if isinstance(principal, User) else None
    group = principal if isinstance(principal, Group) else None
    if user is not None and user.pk == note.owner_id:
        raise exceptions.ValidationError(
            {"principal_id": ["The owner always has write access; no grant is needed."]}
        )
    with transaction.atomic():
        _lock(note.pk)  # one grant change per note at a time
        grant = NoteGrant.objects.filter(
            note=note, principal_type=principal_type, user=user, group=group
        ).first()
        created = grant is None
        if grant is None:
            grant = NoteGrant.objects.create(
                note=note,
                permission=permission,
                principal_type=principal_type,
                user=user,
                group=group,
            )
        elif grant.permission != permission:
            grant.permission = permission
            grant.save(update_fields=["permission", "updated_at"])
        else:
            return grant, False
        _announce(_reload(note.pk))
        push.document_access_changed(note.pk)  # sockets re-check (write may become read)
    return grant, created


def delete_grant(access: NoteAccess, grant_id: UUID | str) -> None:
    """Remove a grant (owner or admin); 404 if it is not one of this note's grants.

    Every instance then re-checks the access of its sockets in ``note.<id>`` and in the live
    document (``push.document_access_changed``): whoever lost read access — through a user,
    group or ``everyone`` grant — leaves both.
    """
    access.require_manage()
    note = access.note
    with transaction.atomic():
        _lock(note.pk)
        grant = (
            NoteGrant.objects.select_related("user", "group").filter(note=note, pk=grant_id).first()
        )
        if grant is None:
            raise exceptions.NotFound("No such grant on this note.")
        grant.delete()
        # Sockets that lost read access leave before the announcement reaches the room.
        push.document_access_changed(note.pk)  # note room and live editors re-check access
        _announce(_reload(note.pk))

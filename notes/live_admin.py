"""The live admin's open documents: which notes have a live document open on some instance,
and who edits them (Socket.IO and y-websocket editors, from the session registry:
``realtime.push.open_documents``, at most ``push.MAX_LISTED_DOCUMENTS``).

Owns the ``open_documents`` view ``NoteAdmin`` mounts at ``/admin/notes/note/open/`` (GET,
admin login, permission ``notes.view_note``). Kicking an editor is the online page's
(``accounts.live_admin``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from realtime import push

from .models import Note


def _note_ids(keys: list[str]) -> list[uuid.UUID]:
    ids = []
    for key in keys:
        try:
            ids.append(uuid.UUID(key))
        except ValueError:
            continue
    return ids


@require_GET
def open_documents(request: HttpRequest, admin_site) -> HttpResponse:
    """The table of open documents with their editors (module docstring)."""
    if not request.user.has_perm("notes.view_note"):
        raise PermissionDenied
    documents = push.open_documents()
    notes = {str(n.pk): n for n in Note.objects.filter(pk__in=_note_ids(list(documents)))}
    rows = [
        {
            "note_id": note_id,
            "note": notes.get(note_id),
            "editors": [
                {
                    "record": record,
                    "connected_at": datetime.fromtimestamp(record.connected_at, UTC),
                }
                for record in editors
            ],
        }
        for note_id, editors in sorted(documents.items())
    ]
    context = {
        **admin_site.each_context(request),
        "title": "Open documents",
        "rows": rows,
        "limit": push.MAX_LISTED_DOCUMENTS,
        "truncated": len(documents) >= push.MAX_LISTED_DOCUMENTS,
        "opts": Note._meta,
    }
    return TemplateResponse(request, "admin/notes/note/open.html", context)

"""The live admin: who is online on every instance, with kick and revoke actions.

Owns two views the ``UserAdmin`` mounts (``UserAdmin.get_urls``), both behind the admin
site's login (staff only):

- ``online`` (GET ``/admin/accounts/user/online/``, permission ``accounts.view_user``): every
  live session from the session registry (``realtime.push.sessions``: Socket.IO and
  y-websocket, at most ``push.MAX_LISTED_SESSIONS``) — user, instance, endpoint, transport,
  connected since, client address, sid.
- ``act`` (POST ``/admin/accounts/user/online/act/``, permission ``accounts.change_user``):
  ``action=kick_socket&sid=…`` closes one socket (``push.adisconnect_sid``: Socket.IO gets
  error ``kicked`` then DISCONNECT; y-websocket a 4401 close, and a stock provider
  reconnects — revoke to keep a user out), ``action=kick_user&user_id=…`` every socket of
  the user (``push.adisconnect_user``),
  ``action=revoke&user_id=…`` voids the user's tokens and kicks them
  (``accounts.tokens.revoke_all_tokens``) — each on whichever instance the sockets are
  (with Redis). Then back to the list with a message. A missing or unknown action, sid or
  user is refused with 400 ``{"error": {"code": "bad_request", …}}`` and changes nothing.

The client addresses shown are private: only these staff pages show them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from config.api_errors import error
from realtime import push

from .models import User
from .tokens import revoke_all_tokens

ACTIONS = ("kick_socket", "kick_user", "revoke")
KICKED = "Disconnected by an administrator."


def _rows(records: list[push.SessionRecord]) -> list[dict]:
    users = {
        str(user.pk): user
        for user in User.objects.filter(pk__in={r.user_id for r in records}).only(
            "username", "name"
        )
    }
    return [
        {
            "record": record,
            "user": users.get(record.user_id),
            "connected_at": datetime.fromtimestamp(record.connected_at, UTC),
        }
        for record in sorted(records, key=lambda r: (r.connected_at, r.sid))
    ]


@require_GET
def online(request: HttpRequest, admin_site) -> HttpResponse:
    """The table of live sessions (module docstring)."""
    if not request.user.has_perm("accounts.view_user"):
        raise PermissionDenied
    records = push.sessions()
    context = {
        **admin_site.each_context(request),
        "title": "Online now",
        "rows": _rows(records),
        "limit": push.MAX_LISTED_SESSIONS,
        "truncated": len(records) >= push.MAX_LISTED_SESSIONS,
        "can_act": request.user.has_perm("accounts.change_user"),
        "opts": User._meta,
    }
    return TemplateResponse(request, "admin/accounts/user/online.html", context)


def _bad(message: str) -> JsonResponse:
    return JsonResponse(error("bad_request", message), status=400)


@require_POST
def act(request: HttpRequest) -> HttpResponse:
    """Kick one socket, kick a user, or revoke a user's tokens (module docstring)."""
    if not request.user.has_perm("accounts.change_user"):
        raise PermissionDenied
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        return _bad(f"action must be one of {', '.join(ACTIONS)}")
    if action == "kick_socket":
        sid = request.POST.get("sid", "")
        if not sid or not async_to_sync(push.adisconnect_sid)(sid, "kicked", KICKED):
            return _bad("no live session has that sid")
        messages.success(request, f"Kicked socket {sid}.")
        return redirect("admin:accounts_user_online")
    user = _user(request.POST.get("user_id", ""))
    if user is None:
        return _bad("no such user")
    if action == "kick_user":
        async_to_sync(push.adisconnect_user)(user.pk, "kicked", KICKED)
        messages.success(request, f"Kicked every socket of {user.username}.")
    else:
        with transaction.atomic():
            revoke_all_tokens(user)
        messages.success(request, f"Revoked every token of {user.username} and kicked them.")
    return redirect("admin:accounts_user_online")


def _user(user_id: str) -> User | None:
    try:
        pk = uuid.UUID(user_id)
    except ValueError:
        return None
    return User.objects.filter(pk=pk).first()

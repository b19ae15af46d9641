"""The HTTP server API for backends: ``/api/server/`` (docs/server-api.md).

Async views (adrf): a call waits for a client's answer up to its timeout without holding one
of Django's worker threads. Authentication, scope and rate limit run first (``ServerApiView``);
each view then validates its body, checks that the user / session it names exists, and acts
through ``realtime.push`` — the apps' one way into the realtime layer. Every refusal is the
API's JSON error with a ``code`` (``config.api_errors``).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from adrf.views import APIView
from asgiref.sync import sync_to_async
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.tokens import revoke_all_tokens
from realtime import push

from .authentication import ApiKeyAuthentication
from .models import Scope
from .permissions import HasScope
from .serializers import (
    AnswerSerializer,
    BatchResultSerializer,
    BatchSerializer,
    CallSerializer,
    DisconnectSerializer,
    EventSerializer,
    MemberSerializer,
    OkSerializer,
    PresenceSerializer,
)
from .throttling import ApiKeyRateThrottle

logger = logging.getLogger("chorus.serverapi")

#: Longest sid or room name looked up; longer ones cannot exist.
MAX_NAME = 200


def _refusals(**descriptions: str) -> dict[int, OpenApiResponse]:
    """Error responses by status (``s400="…"``); the schema hook (``config.openapi``) points
    their body at the ``Error`` component and adds the framework's own (415 …)."""
    return {
        int(status.removeprefix("s")): OpenApiResponse(OpenApiTypes.OBJECT, description=text)
        for status, text in descriptions.items()
    }


#: What every server-API endpoint may refuse with, and the codes (docs/server-api.md).
_REFUSALS = _refusals(
    s400="The body (or a room name) is not valid: `bad_request` (messages under `fields`); "
    "a key in the query string: `key_in_query`.",
    s401="No key (`auth_required`), an unknown one (`invalid_key`) or a revoked one "
    "(`key_revoked`).",
    s403="The key lacks the endpoint's scope: `missing_scope`.",
    s413="The body is over `MAX_REQUEST_BODY_BYTES`: `too_large`.",
    s429="Over `SERVER_API_RATE_LIMIT` for this key: `rate_limited` (see `Retry-After`).",
)
_EXTRA = _refusals(
    s404="No such user (`user_not_found`) or session (`session_not_found`).",
    s502="The call ended without an answer: `session_closed` (the socket closed first).",
    s504="The client did not answer within the timeout: `call_timeout`.",
)


def _responses(ok: Any, *extra: int) -> dict:
    """The schema's answers of an endpoint: ``ok`` (200), the refusals every endpoint may
    give, and ``extra`` statuses (404, 502, 504)."""
    answers: dict[int, Any] = {200: ok, **_REFUSALS}
    for status in extra:
        answers[status] = _EXTRA[status]
    return answers


class CallTimedOut(exceptions.APIException):
    status_code = 504
    default_code = "call_timeout"
    default_detail = "The client did not answer within the timeout."


class CallFailed(exceptions.APIException):
    status_code = 502
    default_code = "call_failed"
    default_detail = "The call failed."


def _user_not_found() -> exceptions.NotFound:
    return exceptions.NotFound("No such user.", code="user_not_found")


def _session_not_found() -> exceptions.NotFound:
    return exceptions.NotFound("No such session.", code="session_not_found")


def _shown(room: str) -> str:
    """A room name as an error message quotes it (at most ``MAX_NAME`` characters)."""
    return room if len(room) <= MAX_NAME else room[:MAX_NAME] + "…"


def _room_not_addressable(room: str) -> exceptions.ValidationError:
    message = f"'{_shown(room)}' is not a room the API may address."
    return exceptions.ValidationError({"room": [message]})


def _ok() -> Response:
    return Response({"ok": True})


def _valid(serializer_class: type, request: Request) -> dict:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


def _user_pk(user_id: object) -> uuid.UUID:
    """A user id as the primary key it names; 404 ``user_not_found`` if it is not a UUID."""
    try:
        return user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        raise _user_not_found() from None


#: Users found to exist, with when (monotonic seconds) that stops being trusted: a backend
#: streaming to one user asks the database once a minute, not once per event. A user deleted
#: meanwhile gets events nobody receives for at most that long. Bounded: cleared when full.
_known_users: dict[uuid.UUID, float] = {}
KNOWN_USER_SECONDS = 60.0
KNOWN_USERS_MAX = 10_000


async def _existing_user(user_id: object) -> uuid.UUID:
    """The user's id if the user exists, else 404 ``user_not_found``."""
    pk = _user_pk(user_id)
    now = time.monotonic()
    if _known_users.get(pk, 0.0) > now:
        return pk
    if not await User.objects.filter(pk=pk).aexists():
        _known_users.pop(pk, None)
        raise _user_not_found()
    if len(_known_users) >= KNOWN_USERS_MAX:
        _known_users.clear()
    _known_users[pk] = now + KNOWN_USER_SECONDS
    return pk


def _checked_sid(sid: str) -> str:
    if len(sid) > MAX_NAME:
        raise _session_not_found()
    return sid


def _addressable(room: str) -> str:
    if len(room) > MAX_NAME or not push.addressable(room):
        raise _room_not_addressable(room)
    return room


def _app_room(room: str) -> str:
    """``room`` if it is an app room (``app.<name>``), else 400."""
    name = room.removeprefix("app.")
    try:
        if name != room and push.app_room(name) == room:
            return room
    except ValueError:
        pass
    message = f"'{_shown(room)}' is not an app room (app.<name>, name [A-Za-z0-9_.-]{{1,80}})."
    raise exceptions.ValidationError({"room": [message]})


class ServerApiView(APIView):
    """A server-API endpoint: API key (header only), the view's scope, the per-key rate."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    required_scope: str

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Django's ``Host`` check first (``ALLOWED_HOSTS``; config/handlers.py: no
        middleware asks for the host on this path), then key, scope and rate."""
        request.get_host()
        super().initial(request, *args, **kwargs)

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="server-api"'


# --- publish ----------------------------------------------------------------------------------


class RoomEventsView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=EventSerializer, responses=_responses(OkSerializer))
    async def post(self, request: Request, room: str) -> Response:
        """Send an event to every socket in a room, on every instance."""
        body = _valid(EventSerializer, request)
        await push.aemit(_addressable(room), body["event"], body["data"])
        return _ok()


class UserEventsView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=EventSerializer, responses=_responses(OkSerializer, 404))
    async def post(self, request: Request, user_id: str) -> Response:
        """Send an event to every socket of a user (every session, every instance)."""
        body = _valid(EventSerializer, request)
        await push.aemit_to_user(await _existing_user(user_id), body["event"], body["data"])
        return _ok()


class SessionEventsView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=EventSerializer, responses=_responses(OkSerializer, 404))
    async def post(self, request: Request, sid: str) -> Response:
        """Send an event to one socket (by its sid)."""
        body = _valid(EventSerializer, request)
        if not await push.aemit_to_sid(_checked_sid(sid), body["event"], body["data"]):
            raise _session_not_found()
        return _ok()


class BroadcastView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=EventSerializer, responses=_responses(OkSerializer))
    async def post(self, request: Request) -> Response:
        """Send an event to every connected socket."""
        body = _valid(EventSerializer, request)
        await push.abroadcast(body["event"], body["data"])
        return _ok()


class BatchView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=BatchSerializer, responses=_responses(BatchResultSerializer, 404))
    async def post(self, request: Request) -> Response:
        """Send up to 100 events in one request, in order, each to a user's sockets or a
        room's. The batch is checked whole first: a bad event, room or unknown user refuses
        it and sends nothing."""
        events = _valid(BatchSerializer, request)["events"]
        rooms = [
            push.user_room(await _existing_user(event["user"]))
            if "user" in event
            else _addressable(event["room"])
            for event in events
        ]
        for room, event in zip(rooms, events, strict=True):
            await push.aemit(room, event["event"], event["data"])
        return Response({"ok": True, "events": len(events)})


# --- call -------------------------------------------------------------------------------------


class SessionCallView(ServerApiView):
    required_scope = Scope.CALL

    @extend_schema(
        request=CallSerializer,
        responses={
            **_responses(AnswerSerializer, 404, 502, 504),
            **_refusals(
                s429="Over the key's rate (`rate_limited`), or the socket already has "
                "`CALL_MAX_PENDING` calls waiting (`too_many_calls`)."
            ),
        },
    )
    async def post(self, request: Request, sid: str) -> Response:
        """Send an event to one socket with an ack and return the client's answer."""
        body = CallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            answer = await push.acall(
                _checked_sid(sid), data["event"], data["data"], timeout=body.timeout_or_default()
            )
        except push.SessionNotFound:
            raise _session_not_found() from None
        except push.CallTimeout:
            raise CallTimedOut() from None
        except push.TooManyCalls as failed:
            raise exceptions.Throttled(detail=str(failed), code=failed.code) from None
        except push.CallError as failed:  # SessionClosed, or a kind added later
            raise CallFailed(str(failed), code=failed.code) from None
        return Response({"answer": answer})


# --- disconnect, revoke -----------------------------------------------------------------------


class UserDisconnectView(ServerApiView):
    required_scope = Scope.DISCONNECT

    @extend_schema(request=DisconnectSerializer, responses=_responses(OkSerializer, 404))
    async def post(self, request: Request, user_id: str) -> Response:
        """Disconnect every socket of a user, on every instance."""
        body = _valid(DisconnectSerializer, request)
        pk = await _existing_user(user_id)
        await push.adisconnect_user(pk, body["code"], body["message"])
        return _ok()


class SessionDisconnectView(ServerApiView):
    required_scope = Scope.DISCONNECT

    @extend_schema(request=DisconnectSerializer, responses=_responses(OkSerializer, 404))
    async def post(self, request: Request, sid: str) -> Response:
        """Disconnect one socket."""
        body = _valid(DisconnectSerializer, request)
        if not await push.adisconnect_sid(_checked_sid(sid), body["code"], body["message"]):
            raise _session_not_found()
        return _ok()


@sync_to_async
def _revoke_all(pk: uuid.UUID) -> bool:
    with transaction.atomic():
        user = User.objects.filter(pk=pk).first()
        if user is None:
            return False
        revoke_all_tokens(user)  # kicks the user's sockets after commit
    return True


class UserRevokeTokensView(ServerApiView):
    required_scope = Scope.DISCONNECT

    @extend_schema(request=None, responses=_responses(OkSerializer, 404))
    async def post(self, request: Request, user_id: str) -> Response:
        """Void every token of a user and disconnect all their sockets (as revoke-all)."""
        if not await _revoke_all(_user_pk(user_id)):
            raise _user_not_found()
        logger.info("server API: key %s revoked the tokens of user %s", request.auth, user_id)
        return _ok()


# --- rooms: presence, membership --------------------------------------------------------------


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


class RoomPresenceView(ServerApiView):
    required_scope = Scope.PRESENCE

    @extend_schema(responses=_responses(PresenceSerializer))
    async def get(self, request: Request, room: str) -> Response:
        """Who is in a room, on every instance: each session with its user's public profile."""
        try:
            records = await push.aonline(_addressable(room))
        except ValueError:  # a room whose members are not listed
            raise _room_not_addressable(room) from None
        sessions = [
            {
                "sid": record.sid,
                "user": {key: record.user.get(key) for key in ("id", "name", "role")},
                "instance": record.instance,
                "connected_at": _iso(record.connected_at),
            }
            for record in records
        ]
        return Response({"room": room, "sessions": sessions})


class RoomMembersView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=MemberSerializer, responses=_responses(OkSerializer, 404))
    async def post(self, request: Request, room: str) -> Response:
        """Put every live socket of a user into an app room (on every instance)."""
        target = _app_room(room)
        body = _valid(MemberSerializer, request)
        pk = await _existing_user(body["user"])
        notice = body["notice"]
        await push.aadd_user_to_room(
            pk, target, (notice["event"], notice["data"]) if notice else None
        )
        return _ok()


class RoomMemberView(ServerApiView):
    required_scope = Scope.PUBLISH

    @extend_schema(request=None, responses=_responses(OkSerializer, 404))
    async def delete(self, request: Request, room: str, user_id: str) -> Response:
        """Take a user's live sockets out of an app room."""
        target = _app_room(room)
        await push.aremove_user_from_room(await _existing_user(user_id), target)
        return _ok()

"""Channel REST endpoints (PROTOCOL §10): thin views over ``services``.

Each view resolves the channel with ``permissions.channel_access`` (404 when the caller may not
see it), validates the request with a serializer (400), calls one service (403 / 409 and the
change with its events) and answers with the output serializers. docs/channels.md describes
every endpoint.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import AuthenticatedRequest
from accounts.models import User
from config.formats import iso
from config.openapi import errors
from realtime import push

from . import services
from .access import members as channel_members
from .models import ChannelMember
from .permissions import ChannelAccess, channel_access
from .serializers import (
    ChannelCreateSerializer,
    ChannelForViewerSerializer,
    ChannelListSerializer,
    ChannelPresenceSerializer,
    ChannelUpdateSerializer,
    MemberAddSerializer,
    MemberForViewerSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    MessageCreateSerializer,
    MessageListSerializer,
    MessagePageSerializer,
    MessageSerializer,
    MessageUpdateSerializer,
    OwnMembershipSerializer,
    ReactionSerializer,
    ReadMarkSerializer,
)

#: Refusals of a change to a channel by its state (archived, a dm, a deleted message).
CONFLICT = errors(409)


def _valid(serializer_class, data, **context) -> dict:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _channel_response(access: ChannelAccess, code: int = status.HTTP_200_OK) -> Response:
    channel = services.viewed_channel(access)
    return Response(ChannelForViewerSerializer(channel).data, status=code)


def _member_response(membership: ChannelMember, viewer: User, code: int) -> Response:
    """A member; the caller's own membership also shows its private flags."""
    body = dict(MemberSerializer(membership).data)
    if membership.user_id == viewer.pk:
        body.update(OwnMembershipSerializer(membership).data)
    return Response(body, status=code)


class ChannelListView(APIView):
    """GET: my channels (``?joined=true``: only those I am a member of). POST: create."""

    @extend_schema(
        operation_id="channels_list",
        parameters=[ChannelListSerializer],
        responses={200: ChannelForViewerSerializer(many=True)},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        query = _valid(ChannelListSerializer, request.query_params)
        channels = services.list_channels(request.user, joined_only=query["joined"])
        return Response(ChannelForViewerSerializer(channels, many=True).data)

    @extend_schema(
        request=ChannelCreateSerializer,
        responses={201: ChannelForViewerSerializer, 200: ChannelForViewerSerializer},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        fields = _valid(ChannelCreateSerializer, request.data, request=request)
        channel, created = services.create_channel(request.user, **fields)
        access = channel_access(request.user, channel.pk)
        return _channel_response(access, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ChannelDetailView(APIView):
    """GET one channel; PATCH (managers) update / archive; DELETE (owner)."""

    @extend_schema(responses={200: ChannelForViewerSerializer})
    def get(self, request: AuthenticatedRequest, channel_id) -> Response:
        return _channel_response(channel_access(request.user, channel_id))

    @extend_schema(
        request=ChannelUpdateSerializer, responses={200: ChannelForViewerSerializer, **CONFLICT}
    )
    def patch(self, request: AuthenticatedRequest, channel_id) -> Response:
        access = channel_access(request.user, channel_id)
        changes = _valid(ChannelUpdateSerializer, request.data, channel=access.channel)
        services.update_channel(access, changes)
        return _channel_response(channel_access(request.user, channel_id))

    @extend_schema(responses={204: None, **CONFLICT})
    def delete(self, request: AuthenticatedRequest, channel_id) -> Response:
        services.delete_channel(channel_access(request.user, channel_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelMembersView(APIView):
    """GET the active members; POST {user_id, role?} adds one (or joins a public channel)."""

    @extend_schema(responses={200: MemberSerializer(many=True)})
    def get(self, request: AuthenticatedRequest, channel_id) -> Response:
        access = channel_access(request.user, channel_id)
        return Response(MemberSerializer(services.active_members(access), many=True).data)

    @extend_schema(
        request=MemberAddSerializer, responses={201: MemberForViewerSerializer, **CONFLICT}
    )
    def post(self, request: AuthenticatedRequest, channel_id) -> Response:
        access = channel_access(request.user, channel_id)
        fields = _valid(MemberAddSerializer, request.data)
        membership = services.add_member(access, fields["user"], fields["role"])
        return _member_response(membership, request.user, status.HTTP_201_CREATED)


class ChannelMemberView(APIView):
    """PATCH {role?, is_muted?, is_pinned?} one member; DELETE removes (or leaves)."""

    @extend_schema(
        request=MemberUpdateSerializer, responses={200: MemberForViewerSerializer, **CONFLICT}
    )
    def patch(self, request: AuthenticatedRequest, channel_id, user_id) -> Response:
        access = channel_access(request.user, channel_id)
        changes = _valid(MemberUpdateSerializer, request.data)
        membership = services.update_member(access, user_id, changes)
        return _member_response(membership, request.user, status.HTTP_200_OK)

    @extend_schema(responses={204: None, **CONFLICT})
    def delete(self, request: AuthenticatedRequest, channel_id, user_id) -> Response:
        services.remove_member(channel_access(request.user, channel_id), user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelMessagesView(APIView):
    """GET a page (``?after=&before=&limit=&parent_id=``); POST {content, parent_id?, data?}."""

    @extend_schema(
        operation_id="channels_messages_list",
        parameters=[MessagePageSerializer],
        responses={200: MessageListSerializer},
    )
    def get(self, request: AuthenticatedRequest, channel_id) -> Response:
        access = channel_access(request.user, channel_id)
        query = _valid(MessagePageSerializer, request.query_params, channel=access.channel)
        page = services.message_page(access, **query)
        return Response(
            {
                "messages": MessageSerializer(page.messages, many=True).data,
                "has_more": page.has_more,
            }
        )

    @extend_schema(request=MessageCreateSerializer, responses={201: MessageSerializer, **CONFLICT})
    def post(self, request: AuthenticatedRequest, channel_id) -> Response:
        access = channel_access(request.user, channel_id)
        fields = _valid(MessageCreateSerializer, request.data, channel=access.channel)
        message = services.post_message(access, **fields)
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class ChannelMessageView(APIView):
    """GET one message; PATCH {content?, data?} (author); DELETE (author or manager)."""

    @extend_schema(responses={200: MessageSerializer})
    def get(self, request: AuthenticatedRequest, channel_id, message_id) -> Response:
        access = channel_access(request.user, channel_id)
        return Response(MessageSerializer(services.channel_message(access, message_id)).data)

    @extend_schema(request=MessageUpdateSerializer, responses={200: MessageSerializer, **CONFLICT})
    def patch(self, request: AuthenticatedRequest, channel_id, message_id) -> Response:
        access = channel_access(request.user, channel_id)
        current = services.channel_message(access, message_id)
        changes = _valid(MessageUpdateSerializer, request.data, message=current)
        message = services.edit_message(access, message_id, changes)
        return Response(MessageSerializer(message).data)

    @extend_schema(responses={200: MessageSerializer, **CONFLICT})
    def delete(self, request: AuthenticatedRequest, channel_id, message_id) -> Response:
        access = channel_access(request.user, channel_id)
        message = services.delete_message(access, message_id)
        return Response(MessageSerializer(message).data)


class MessageReactionsView(APIView):
    """POST {name} adds my reaction (201, or 200 if already there); DELETE {name} (or
    ``?name=``) removes it (200 either way). Both answer with the message."""

    @extend_schema(
        request=ReactionSerializer,
        responses={201: MessageSerializer, 200: MessageSerializer, **CONFLICT},
    )
    def post(self, request: AuthenticatedRequest, channel_id, message_id) -> Response:
        access = channel_access(request.user, channel_id)
        name = _valid(ReactionSerializer, request.data)["name"]
        message, added = services.add_reaction(access, message_id, name)
        code = status.HTTP_201_CREATED if added else status.HTTP_200_OK
        return Response(MessageSerializer(message).data, status=code)

    @extend_schema(
        request=ReactionSerializer,
        parameters=[
            OpenApiParameter("name", str, description="The reaction, when the request has no body.")
        ],
        responses={200: MessageSerializer, **CONFLICT},
    )
    def delete(self, request: AuthenticatedRequest, channel_id, message_id) -> Response:
        access = channel_access(request.user, channel_id)
        data = request.data if request.data else request.query_params
        name = _valid(ReactionSerializer, data)["name"]
        message, _ = services.remove_reaction(access, message_id, name)
        return Response(MessageSerializer(message).data)


class ChannelReadView(APIView):
    """POST: sets my ``last_read_at`` to now (members only)."""

    @extend_schema(request=None, responses={200: ReadMarkSerializer})
    def post(self, request: AuthenticatedRequest, channel_id) -> Response:
        membership = services.mark_read(channel_access(request.user, channel_id))
        return Response(
            {
                "channel_id": str(channel_id),
                "last_read_at": iso(membership.last_read_at),
            }
        )


class ChannelPresenceView(APIView):
    """GET: the channel's members that are online now: ``{"id", "name", "sessions",
    "last_active_at"}`` each (docs/channels.md; no role, no private field)."""

    @extend_schema(responses={200: ChannelPresenceSerializer})
    def get(self, request: AuthenticatedRequest, channel_id) -> Response:
        channel = channel_access(request.user, channel_id).channel
        members = list(channel_members(channel).only("id", "name", "username", "last_active_at"))
        online = push.presence([str(m.pk) for m in members])
        return Response(
            {
                "channel_id": str(channel.pk),
                "online": [
                    {
                        **member.ref(),
                        "sessions": online[str(member.pk)].sessions,
                        "last_active_at": iso(member.last_active_at),
                    }
                    for member in members
                    if str(member.pk) in online
                ],
            }
        )

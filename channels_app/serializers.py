"""Channel API shapes: input serializers validate requests, output serializers are the contract.

Output (the same dicts go into REST responses and ``events:channel`` payloads):
- user reference: ``{"id", "name"}`` — never a private profile field.
- message: ``id, channel_id, parent_id, author, content, data, created_at, edited_at,
  deleted_at, reactions [{name, count, user_ids}], reply_count``.
- channel: ``id, type, name, description, is_private, owner, archived_at, created_at,
  updated_at, data, member_count``; REST adds the caller's ``membership`` and ``unread_count``.
- member: ``{"user": {"id", "name"}, "role", "joined_at"}``.

Timestamps are ISO 8601 in UTC with microseconds and a ``Z`` suffix. Input serializers turn
every malformed request into a DRF ``ValidationError`` (400 ``bad_request``) before anything
changes; those that need the channel take it from ``context["channel"]``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Role, User
from accounts.serializers import UserRefSerializer
from config.formats import iso

from .access import memberships_in
from .models import Channel, ChannelMember, ChannelType, MemberRole, Message

#: Longest message ``content`` accepted, in characters.
MAX_CONTENT_LENGTH = 20_000
#: Most ``member_ids`` one create request may carry.
MAX_INITIAL_MEMBERS = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: ``?parent_id=`` value that selects top-level messages only.
TOP_LEVEL = "null"


def user_ref(user: User | None) -> dict | None:
    """What a channel payload says about a user: ``{"id", "name"}`` (None for a deleted user)."""
    return user.ref() if user is not None else None


class IsoDateTimeField(serializers.DateTimeField):
    """Output only: ``config.formats.iso`` (DRF renders a null value as null without asking)."""

    def to_representation(self, value: datetime) -> str:
        return iso(value)


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON object (dict); any other JSON value is refused."""

    def to_internal_value(self, data: Any) -> dict:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        return value


def _may_sign_in(user: User) -> bool:
    return user.is_active and user.role != Role.PENDING


# --- output -----------------------------------------------------------------------------------


class ReactionSummarySerializer(serializers.Serializer):
    """Schema only: one reaction name on a message and who used it."""

    name = serializers.CharField()
    count = serializers.IntegerField()
    user_ids = serializers.ListField(child=serializers.UUIDField())


class MessageSerializer(serializers.ModelSerializer):
    """A message. Expects ``reply_count`` annotated and ``reactions`` prefetched in order
    (``services.message_queryset``); falls back to queries otherwise."""

    channel_id = serializers.UUIDField(read_only=True)
    parent_id = serializers.UUIDField(read_only=True, allow_null=True)
    author = serializers.SerializerMethodField()
    created_at = IsoDateTimeField(read_only=True)
    edited_at = IsoDateTimeField(read_only=True, allow_null=True)
    deleted_at = IsoDateTimeField(read_only=True, allow_null=True)
    reactions = serializers.SerializerMethodField()
    reply_count = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "channel_id",
            "parent_id",
            "author",
            "content",
            "data",
            "created_at",
            "edited_at",
            "deleted_at",
            "reactions",
            "reply_count",
        ]

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_author(self, message: Message) -> dict | None:
        return user_ref(message.author)

    @extend_schema_field(ReactionSummarySerializer(many=True))
    def get_reactions(self, message: Message) -> list[dict]:
        """``[{name, count, user_ids}]`` in the order each name was first used."""
        grouped: dict[str, list[str]] = {}
        for reaction in sorted(message.reactions.all(), key=lambda r: (r.created_at, r.pk)):
            grouped.setdefault(reaction.name, []).append(str(reaction.user_id))
        return [
            {"name": name, "count": len(user_ids), "user_ids": user_ids}
            for name, user_ids in grouped.items()
        ]

    def get_reply_count(self, message: Message) -> int:
        count = getattr(message, "reply_count", None)
        if count is None:
            count = message.replies.filter(deleted_at__isnull=True).count()
        return count


class ChannelSerializer(serializers.ModelSerializer):
    """A channel as everyone who may see it sees it (used in events). Expects
    ``member_count`` annotated (``services.channel_queryset``)."""

    owner = serializers.SerializerMethodField()
    archived_at = IsoDateTimeField(read_only=True, allow_null=True)
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)
    member_count = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "id",
            "type",
            "name",
            "description",
            "is_private",
            "owner",
            "archived_at",
            "created_at",
            "updated_at",
            "data",
            "member_count",
        ]

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_owner(self, channel: Channel) -> dict | None:
        return user_ref(channel.owner)

    def get_member_count(self, channel: Channel) -> int:
        count = getattr(channel, "member_count", None)
        if count is None:
            count = memberships_in(channel).count()
        return count


class OwnMembershipSerializer(serializers.ModelSerializer):
    """The caller's own membership: role and private flags."""

    last_read_at = IsoDateTimeField(read_only=True, allow_null=True)
    joined_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = ChannelMember
        fields = ["role", "is_muted", "is_pinned", "last_read_at", "joined_at"]


class ChannelForViewerSerializer(ChannelSerializer):
    """A channel for the caller (REST): adds ``membership`` (None unless an active member) and
    ``unread_count`` (messages after ``membership.last_read_at``, not by the caller, not
    deleted; None unless a member). Expects ``services.channel_queryset(viewer=...)``."""

    membership = serializers.SerializerMethodField()
    unread_count = serializers.SerializerMethodField()

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "membership", "unread_count"]

    def _membership(self, channel: Channel) -> ChannelMember | None:
        memberships = getattr(channel, "viewer_memberships", None)
        return memberships[0] if memberships else None

    @extend_schema_field(OwnMembershipSerializer(allow_null=True))
    def get_membership(self, channel: Channel) -> dict | None:
        membership = self._membership(channel)
        return OwnMembershipSerializer(membership).data if membership else None

    def get_unread_count(self, channel: Channel) -> int | None:
        if self._membership(channel) is None:
            return None
        return getattr(channel, "unread_count", 0)


class MemberSerializer(serializers.ModelSerializer):
    """A member as the channel sees them."""

    user = serializers.SerializerMethodField()
    joined_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = ChannelMember
        fields = ["user", "role", "joined_at"]

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_user(self, membership: ChannelMember) -> dict | None:
        return user_ref(membership.user)


class MemberForViewerSerializer(MemberSerializer):
    """Schema only: a member as the member endpoints answer it; the caller's own membership
    also has its private flags (``views._member_response``)."""

    is_muted = serializers.BooleanField(required=False)
    is_pinned = serializers.BooleanField(required=False)
    last_read_at = serializers.DateTimeField(required=False, allow_null=True)

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "is_muted", "is_pinned", "last_read_at"]


class MessageListSerializer(serializers.Serializer):
    """Schema only: a page of ``GET .../messages/``."""

    messages = MessageSerializer(many=True)
    has_more = serializers.BooleanField()


class ReadMarkSerializer(serializers.Serializer):
    """Schema only: ``POST .../read/``'s answer."""

    channel_id = serializers.UUIDField()
    last_read_at = serializers.DateTimeField(allow_null=True)


class OnlineMemberSerializer(UserRefSerializer):
    sessions = serializers.IntegerField(help_text="Open sessions of the user, all instances.")
    last_active_at = serializers.DateTimeField(allow_null=True)


class ChannelPresenceSerializer(serializers.Serializer):
    """Schema only: ``GET .../presence/``'s answer."""

    channel_id = serializers.UUIDField()
    online = OnlineMemberSerializer(many=True)


# --- input ------------------------------------------------------------------------------------


def _signed_in_users(ids: list, field: str) -> dict:
    """Map id → User for ``ids``; a 400 on ``field`` if any is unknown or may not sign in."""
    users = {u.pk: u for u in User.objects.filter(pk__in=ids)}
    bad = [str(i) for i in ids if i not in users or not _may_sign_in(users[i])]
    if bad:
        raise serializers.ValidationError({field: [f"No such active user: {', '.join(bad)}."]})
    return users


class ChannelCreateSerializer(serializers.Serializer):
    """POST /channels/. ``member_ids`` are added besides the caller (who becomes the owner);
    a dm needs exactly one other user (the caller's own id may also be listed)."""

    type = serializers.ChoiceField(choices=ChannelType.choices, default=ChannelType.STANDARD)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, default=""
    )
    is_private = serializers.BooleanField(required=False, default=False)
    # A declared field: DRF's metaclass takes it out of the class (Serializer.data stays).
    data = JSONObjectField(required=False, default=dict)  # type: ignore[assignment]
    member_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, max_length=MAX_INITIAL_MEMBERS
    )

    def validate(self, attrs: dict) -> dict:
        creator: User = self.context["request"].user
        ids = list(dict.fromkeys(i for i in attrs.pop("member_ids") if i != creator.pk))
        kind = attrs["type"]
        if kind == ChannelType.DM and len(ids) != 1:
            raise serializers.ValidationError(
                {"member_ids": ["A dm needs exactly one other user."]}
            )
        if kind != ChannelType.DM and not attrs["name"].strip():
            raise serializers.ValidationError({"name": ["A name is required."]})
        if kind != ChannelType.STANDARD:
            if self.initial_data.get("is_private") is False:
                raise serializers.ValidationError(
                    {"is_private": ["Group and dm channels are always private."]}
                )
            attrs["is_private"] = True
        users = _signed_in_users(ids, "member_ids")
        attrs["members"] = [users[i] for i in ids]
        return attrs


class ChannelUpdateSerializer(serializers.Serializer):
    """PATCH /channels/<id>/: any of name, description, is_private (standard only), data,
    archived (true sets ``archived_at``, false clears it)."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    is_private = serializers.BooleanField(required=False)
    # A declared field: DRF's metaclass takes it out of the class (Serializer.data stays).
    data = JSONObjectField(required=False)  # type: ignore[assignment]
    archived = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("Nothing to change.")
        channel: Channel = self.context["channel"]
        if "is_private" in attrs and channel.type != ChannelType.STANDARD:
            raise serializers.ValidationError(
                {"is_private": ["Only standard channels can be public or private."]}
            )
        if channel.type == ChannelType.DM and "name" in attrs:
            raise serializers.ValidationError({"name": ["A dm cannot be renamed."]})
        return attrs


class MemberAddSerializer(serializers.Serializer):
    """POST /channels/<id>/members/ {user_id, role?}; role is member (default) or manager."""

    user_id = serializers.UUIDField()
    role = serializers.ChoiceField(
        choices=[MemberRole.MEMBER, MemberRole.MANAGER], default=MemberRole.MEMBER
    )

    def validate(self, attrs: dict) -> dict:
        attrs["user"] = _signed_in_users([attrs.pop("user_id")], "user_id").popitem()[1]
        return attrs


class MemberUpdateSerializer(serializers.Serializer):
    """PATCH /channels/<id>/members/<user_id>/: role (member / manager), is_muted, is_pinned."""

    role = serializers.ChoiceField(choices=[MemberRole.MEMBER, MemberRole.MANAGER], required=False)
    is_muted = serializers.BooleanField(required=False)
    is_pinned = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("Nothing to change.")
        return attrs


def _has_body(content: str, data: dict) -> bool:
    return bool(content.strip()) or bool(data)


class MessageCreateSerializer(serializers.Serializer):
    """POST /channels/<id>/messages/ {content, parent_id?, data?}: content or data must be
    non-empty; ``parent_id`` must be a top-level message of this channel (threads are one
    level deep). Yields ``parent`` (a Message or None)."""

    content = serializers.CharField(
        max_length=MAX_CONTENT_LENGTH, allow_blank=True, trim_whitespace=False, default=""
    )
    parent_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    # A declared field: DRF's metaclass takes it out of the class (Serializer.data stays).
    data = JSONObjectField(required=False, default=dict)  # type: ignore[assignment]

    def validate(self, attrs: dict) -> dict:
        if not _has_body(attrs["content"], attrs["data"]):
            raise serializers.ValidationError({"content": ["A message needs content or data."]})
        parent_id = attrs.pop("parent_id")
        attrs["parent"] = None
        if parent_id is not None:
            parent = Message.objects.filter(pk=parent_id, channel=self.context["channel"]).first()
            if parent is None:
                raise serializers.ValidationError(
                    {"parent_id": ["No such message in this channel."]}
                )
            if parent.parent_id is not None:
                raise serializers.ValidationError(
                    {
                        "parent_id": [
                            "Replies cannot be nested: reply to the thread's first message."
                        ]
                    }
                )
            attrs["parent"] = parent
        return attrs


class MessageUpdateSerializer(serializers.Serializer):
    """PATCH /channels/<id>/messages/<mid>/ {content?, data?}; the result must not be empty."""

    content = serializers.CharField(
        max_length=MAX_CONTENT_LENGTH, allow_blank=True, trim_whitespace=False, required=False
    )
    # A declared field: DRF's metaclass takes it out of the class (Serializer.data stays).
    data = JSONObjectField(required=False)  # type: ignore[assignment]

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("Nothing to change.")
        message: Message = self.context["message"]
        content = attrs.get("content", message.content)
        data = attrs.get("data", message.data)
        if not _has_body(content, data):
            raise serializers.ValidationError({"content": ["A message needs content or data."]})
        return attrs


class ReactionSerializer(serializers.Serializer):
    """POST / DELETE .../reactions/ {name}: 1 to 64 characters, no whitespace."""

    name = serializers.CharField(max_length=64)

    def validate_name(self, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise serializers.ValidationError("A reaction name has no whitespace.")
        return value


class MessagePageSerializer(serializers.Serializer):
    """GET /channels/<id>/messages/ query: ``after`` / ``before`` (message ids of this channel,
    resolved to ``after`` / ``before`` Messages), ``limit`` (1 to 200, default 50) and
    ``parent_id`` (a message id: that thread's replies; ``null``: top-level only)."""

    after = serializers.UUIDField(required=False)
    before = serializers.UUIDField(required=False)
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_PAGE_SIZE, required=False, default=DEFAULT_PAGE_SIZE
    )
    parent_id = serializers.CharField(required=False)

    def _message(self, field: str, message_id: UUID | str) -> Message:
        message = Message.objects.filter(pk=message_id, channel=self.context["channel"]).first()
        if message is None:
            raise serializers.ValidationError({field: ["No such message in this channel."]})
        return message

    def validate(self, attrs: dict) -> dict:
        for field in ("after", "before"):
            if field in attrs:
                attrs[field] = self._message(field, attrs[field])
        parent = attrs.pop("parent_id", None)
        attrs["thread"] = None
        attrs["top_level"] = parent == TOP_LEVEL
        if parent is not None and parent != TOP_LEVEL:
            try:
                parent_id = serializers.UUIDField().to_internal_value(parent)
            except serializers.ValidationError as error:
                raise serializers.ValidationError({"parent_id": error.detail}) from None
            attrs["thread"] = self._message("parent_id", parent_id)
        return attrs


class ChannelListSerializer(serializers.Serializer):
    """GET /channels/ query: ``joined`` (true: only channels the caller is a member of)."""

    joined = serializers.BooleanField(required=False, default=False)

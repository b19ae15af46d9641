"""Notes API shapes: input serializers validate requests, output serializers are the contract.

Output (the same dicts go into REST responses and ``note-events`` payloads):
- user reference: ``{"id", "name"}`` — never a private profile field.
- note: ``id, title, data, owner, access, has_yjs_state, document_id, created_at,
  updated_at``; ``access`` is the caller's ("read" / "write") and is left out of
  ``note-events`` (one event reaches readers and writers alike). ``yjs_state`` itself is
  never sent: the live document is served by the socket endpoints.
- grant: ``id, principal_type, principal ({"id", "name"} of the user or group, null for
  everyone), permission, created_at, updated_at``.

Timestamps are ISO 8601 in UTC with microseconds and a ``Z`` suffix. Input serializers turn
every malformed request into a DRF ``ValidationError`` (400 ``bad_request``) before anything
changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User
from accounts.serializers import UserRefSerializer
from config.formats import iso

from .models import Note, NoteGrant, Permission, PrincipalType

#: Longest ``title`` accepted (the column's length).
MAX_TITLE_LENGTH = 500
#: Keys kept in ``data.content``; any other key is dropped.
CONTENT_KEYS = ("md", "html", "json")


def user_ref(user: User | None) -> dict | None:
    """What a note payload says about a user: ``{"id", "name"}`` of the public profile."""
    return user.ref() if user is not None else None


class IsoDateTimeField(serializers.DateTimeField):
    """Output only: ``config.formats.iso`` (DRF renders a null value as null without asking)."""

    def to_representation(self, value: datetime) -> str:
        return iso(value)


# --- output -----------------------------------------------------------------------------------


class NoteSerializer(serializers.ModelSerializer):
    """A note as the caller sees it. Expects a note from ``services.note_queryset`` with
    ``caller_access`` set (``services`` does both)."""

    owner = serializers.SerializerMethodField()
    access = serializers.CharField(source="caller_access", read_only=True, allow_null=True)
    has_yjs_state = serializers.BooleanField(read_only=True)
    document_id = serializers.CharField(read_only=True)
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = Note
        fields = [
            "id",
            "title",
            "data",
            "owner",
            "access",
            "has_yjs_state",
            "document_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_owner(self, note: Note) -> dict | None:
        return user_ref(note.owner)


def note_event_payload(note: Note) -> dict[str, Any]:
    """The ``note-events`` payload: the REST shape without the per-caller ``access``."""
    payload = dict(NoteSerializer(note).data)
    payload.pop("access", None)
    return payload


#: A grant's ``principal``: the user's reference, the group's id and name, null for everyone.
_PRINCIPAL_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {
        "id": {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "integer"}]},
        "name": {"type": "string"},
    },
    "required": ["id", "name"],
}


class GrantSerializer(serializers.ModelSerializer):
    principal = serializers.SerializerMethodField()
    created_at = IsoDateTimeField(read_only=True)
    updated_at = IsoDateTimeField(read_only=True)

    class Meta:
        model = NoteGrant
        fields = ["id", "principal_type", "principal", "permission", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(_PRINCIPAL_SCHEMA)
    def get_principal(self, grant: NoteGrant) -> dict | None:
        if grant.principal_type == PrincipalType.USER:
            return user_ref(grant.user)
        # A group grant always has its group (the model's check constraint).
        if grant.principal_type == PrincipalType.GROUP and grant.group is not None:
            return {"id": grant.group.pk, "name": grant.group.name}
        return None


# --- input ------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A string, never a number or boolean coerced into one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class NoteContentSerializer(serializers.Serializer):
    """``data.content`` as a client sends it. ``json`` is a ProseMirror document object
    (checked further when it is applied to the Yjs document; the server then stores its own
    rendering of the document, ``notes.yjs.rendered_content``); ``md`` / ``html`` are strings."""

    md = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    html = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    json = serializers.JSONField(required=False, allow_null=True)

    def validate_json(self, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("Must be a ProseMirror document object or null.")
        return value


@extend_schema_field({"type": "object", "additionalProperties": {}})
class NoteDataField(serializers.JSONField):
    """``data``: a JSON object whose ``content``, when present, is a valid content object."""

    def to_internal_value(self, value: Any) -> dict[str, Any]:
        value = super().to_internal_value(value)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        if "content" in value:
            if not isinstance(value["content"], dict):
                raise serializers.ValidationError({"content": ["Must be a JSON object."]})
            content = NoteContentSerializer(data=value["content"])
            if not content.is_valid():
                raise serializers.ValidationError({"content": content.errors})
            value = {
                **value,
                "content": {
                    k: content.validated_data[k]
                    for k in CONTENT_KEYS
                    if k in content.validated_data
                },
            }
        return value


class NoteCreateSerializer(serializers.Serializer):
    title = StrictCharField(max_length=MAX_TITLE_LENGTH)
    # A declared field: DRF's metaclass takes it out of the class (Serializer.data stays).
    data = NoteDataField(required=False)  # type: ignore[assignment]


class NoteUpdateSerializer(serializers.Serializer):
    """PATCH: ``title`` and/or ``data``; at least one of them."""

    title = StrictCharField(max_length=MAX_TITLE_LENGTH, required=False)
    # A declared field: DRF's metaclass takes it out of the class (Serializer.data stays).
    data = NoteDataField(required=False)  # type: ignore[assignment]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send title and/or data.")
        return attrs


class GrantCreateSerializer(serializers.Serializer):
    """POST a grant. ``principal_id`` is a user id (uuid) for ``user``, a group id (integer)
    for ``group``, and absent or null for ``everyone``. ``validated_data["principal"]`` is
    the resolved ``User`` / ``Group`` (None for everyone)."""

    principal_type = serializers.ChoiceField(choices=PrincipalType.choices)
    principal_id = serializers.JSONField(required=False, allow_null=True)
    permission = serializers.ChoiceField(choices=Permission.choices)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind, raw = attrs["principal_type"], attrs.get("principal_id")
        principal: User | Group | None
        if kind == PrincipalType.EVERYONE:
            if raw is not None:
                raise serializers.ValidationError(
                    {"principal_id": ["Must be absent for principal_type everyone."]}
                )
            principal = None
        elif raw is None:
            raise serializers.ValidationError(
                {"principal_id": [f"Required for principal_type {kind}."]}
            )
        elif kind == PrincipalType.USER:
            principal = self._user(raw)
        else:
            principal = self._group(raw)
        return {**attrs, "principal": principal}

    @staticmethod
    def _user(raw: Any) -> User:
        try:
            pk = serializers.UUIDField().to_internal_value(raw)
        except serializers.ValidationError:
            pk = None
        user = User.objects.filter(pk=pk).first() if pk is not None else None
        if user is None:
            raise serializers.ValidationError({"principal_id": ["No such user."]})
        return user

    @staticmethod
    def _group(raw: Any) -> Group:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raw = None
        try:
            pk = int(raw) if raw is not None else None
        except ValueError:
            pk = None
        group = Group.objects.filter(pk=pk).first() if pk is not None else None
        if group is None:
            raise serializers.ValidationError({"principal_id": ["No such group."]})
        return group

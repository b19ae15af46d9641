"""Request and response bodies of the server API (docs/server-api.md). Errors have the
project's one shape (``config.api_errors``; its schema component: ``config.openapi``)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

#: Event names Socket.IO clients reserve for themselves: a server event by one of these names
#: would be taken for the client's own lifecycle event.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
MAX_EVENT_NAME = 200
#: ``calls`` wait this long unless the body says otherwise (capped by the setting).
DEFAULT_CALL_TIMEOUT = 30.0


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's ``CharField`` turns numbers into strings)."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EventSerializer(serializers.Serializer):
    """An event for sockets: ``event`` (its name) and ``data`` (any JSON, default null)."""

    event = StrictCharField(max_length=MAX_EVENT_NAME)
    # DRF's stubs type a field named ``data`` as the serializer's own ``data`` property.
    data = serializers.JSONField(required=False, default=None)  # type: ignore[assignment]

    def validate_event(self, value: str) -> str:
        if value in RESERVED_EVENTS:
            raise serializers.ValidationError(f"'{value}' is reserved by Socket.IO clients.")
        return value


#: Events one batch may carry.
BATCH_MAX = 100


class BatchEventSerializer(EventSerializer):
    """One event of a batch, to every socket of ``user`` or to every socket in ``room``
    (exactly one of the two)."""

    user = serializers.UUIDField(required=False)
    room = StrictCharField(required=False, max_length=200)

    def validate(self, attrs: dict) -> dict:
        if ("user" in attrs) == ("room" in attrs):
            raise serializers.ValidationError("Give exactly one of 'user' and 'room'.")
        return attrs


class BatchSerializer(serializers.Serializer):
    """Up to ``BATCH_MAX`` events, sent in order."""

    # many=True takes max_length since DRF 3.14; the stubs do not know it.
    events = BatchEventSerializer(  # type: ignore[call-arg]
        many=True, allow_empty=False, max_length=BATCH_MAX
    )


class BatchResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    events = serializers.IntegerField(help_text="How many events were sent.")


class CallSerializer(EventSerializer):
    """An event to one session whose answer (the client's ack) is awaited up to ``timeout``
    seconds (default 30, at most ``SERVER_API_CALL_TIMEOUT_MAX``)."""

    timeout = serializers.FloatField(required=False, min_value=0.001)

    def validate_timeout(self, value: float) -> float:
        limit = settings.SERVER_API_CALL_TIMEOUT_MAX
        if value > limit:
            raise serializers.ValidationError(f"At most {limit:g} seconds.")
        return value

    def timeout_or_default(self) -> float:
        timeout = self.validated_data.get("timeout")
        if timeout is None:
            return min(DEFAULT_CALL_TIMEOUT, settings.SERVER_API_CALL_TIMEOUT_MAX)
        return float(timeout)


class DisconnectSerializer(serializers.Serializer):
    """Why: ``code`` (sent to the client in the disconnect) and a human ``message``."""

    code = serializers.RegexField(r"^[a-z][a-z0-9_]{0,63}$", required=False, default="disconnected")
    message = StrictCharField(max_length=200, required=False, default="Disconnected by the server.")


class MemberSerializer(serializers.Serializer):
    """A user to put into an app room, and optionally an event each of their sockets gets
    once it has joined (``notice``)."""

    user = serializers.UUIDField()
    notice = EventSerializer(required=False, default=None)


class OkSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=True)


class AnswerSerializer(serializers.Serializer):
    """The client's answer to a call: its ack's argument (several: a list; none: null)."""

    answer = serializers.JSONField(allow_null=True)


class ProfileSerializer(serializers.Serializer):
    """A user's public profile (never the private fields)."""

    id = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField()


class SessionSerializer(serializers.Serializer):
    sid = serializers.CharField()
    user = ProfileSerializer()
    instance = serializers.CharField()
    connected_at = serializers.DateTimeField()


class PresenceSerializer(serializers.Serializer):
    room = serializers.CharField()
    sessions = SessionSerializer(many=True)

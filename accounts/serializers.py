"""Request and response shapes of the auth API."""

from __future__ import annotations

from rest_framework import serializers

from .models import Role, User


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096, required=False)


class MeSerializer(serializers.ModelSerializer):
    """The caller's own account: the one place private profile fields are shown."""

    name = serializers.CharField(source="display_name", read_only=True)
    # Both may be empty (blank in the model): not an "email" / "uri" string then.
    email = serializers.CharField(read_only=True, help_text="An e-mail address, or empty.")
    profile_image_url = serializers.CharField(read_only=True, help_text="A URL, or empty.")

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "name",
            "email",
            "role",
            "last_active_at",
            "date_of_birth",
            "bio",
            "gender",
            "profile_image_url",
            "settings",
            "created_at",
        ]
        read_only_fields = fields


# --- output shapes named in the OpenAPI schema (the views build these dicts themselves) -------


class UserRefSerializer(serializers.Serializer):
    """How payloads name a user (``User.ref``): public, never a private profile field."""

    id = serializers.UUIDField()
    name = serializers.CharField()


class PublicProfileSerializer(UserRefSerializer):
    """``User.public_profile``: the reference and the role."""

    role = serializers.ChoiceField(choices=Role.choices)


class TokenPairSerializer(serializers.Serializer):
    """``accounts.tokens.issue_token_pair``: login and refresh answer this."""

    access = serializers.CharField()
    refresh = serializers.CharField()
    expires_at = serializers.DateTimeField(help_text="When the access token expires.")
    user = PublicProfileSerializer()


class RevokedSerializer(serializers.Serializer):
    revoked = serializers.BooleanField()


class TicketSerializer(serializers.Serializer):
    """``accounts.tickets.issue``: a single-use WebSocket connection ticket."""

    ticket = serializers.CharField()
    expires_in = serializers.FloatField(help_text="Seconds the ticket stays good.")

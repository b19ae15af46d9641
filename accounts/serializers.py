"""Request and response shapes of the auth API."""

from __future__ import annotations

from rest_framework import serializers

from .models import User


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

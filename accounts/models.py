"""Users and revoked access tokens.

``User`` is the project's custom user from the first migration. Its private profile fields
(``PRIVATE_FIELDS``) are never put into socket sessions, presence or anything another user
can see; ``public_profile()`` is the one shape other users get.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any, Self

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    PENDING = "pending", "Pending approval"
    USER = "user", "User"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    """A person who signs in. ``role`` gates access; ``pending`` users cannot sign in."""

    #: Fields that must never reach other users, socket sessions, presence or logs.
    PRIVATE_FIELDS = ("date_of_birth", "bio", "gender", "profile_image_url")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField("display name", max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    last_active_at = models.DateTimeField(null=True, blank=True)
    date_of_birth = models.DateField(null=True, blank=True)
    bio = models.TextField(blank=True)
    gender = models.CharField(max_length=50, blank=True)
    profile_image_url = models.URLField(max_length=1000, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    tokens_valid_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Tokens issued at or before this instant are refused (last 'revoke all').",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: ``access_state()`` as loaded (``from_db``), compared on save (``accounts.receivers``);
    #: not a field.
    _loaded_access: tuple

    class Meta:
        ordering = ["username"]

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Self:
        instance = super().from_db(db, field_names, values, **kwargs)
        # Only from loaded fields: reading a deferred one here queries, and that query's own
        # from_db would do it again (RecursionError for any .only() / .defer() of User).
        if all(name in field_names for name in ("is_active", "role", "password")):
            instance._loaded_access = instance.access_state()
        return instance

    def access_state(self) -> tuple:
        """What, when it changes, voids the user's tokens: activity, role, password."""
        return (self.is_active, self.role != Role.PENDING, self.password)

    @property
    def may_sign_in(self) -> bool:
        return self.is_active and self.role != Role.PENDING

    @property
    def display_name(self) -> str:
        return self.name or self.username

    def ref(self) -> dict:
        """How payloads name a user: ``{"id", "name"}`` (public)."""
        return {"id": str(self.id), "name": self.display_name}

    def public_profile(self) -> dict:
        """What other users (and socket sessions) may know of this user."""
        return {"id": str(self.id), "name": self.display_name, "role": self.role}


class RevokedToken(models.Model):
    """An access token's ``jti`` revoked before its expiry (logout). Purge after ``expires_at``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    jti = models.CharField(max_length=255, unique=True)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, null=True, blank=True, related_name="revoked_tokens"
    )
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.jti

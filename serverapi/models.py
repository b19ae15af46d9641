"""API keys of the HTTP server API (docs/server-api.md).

A key is ``chorus_<prefix>_<secret>``: the prefix (8 hex characters) is public and names the
key in the admin, the commands and the logs; the secret is 256 random bits. Only the SHA-256
of the whole key is stored: the key itself is shown once, when it is made, and cannot be
read back. A fast hash is enough (and a slow password hasher would cost its delay on every
request): a guess at a 256-bit random secret has no dictionary to start from, so the hash's
speed gives an attacker holding the table nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from accounts.models import User

#: Every key starts with this (so a leaked key is recognisable, e.g. by secret scanners).
KEY_PREFIX = "chorus"
#: Longest string looked at as a key; anything longer is refused before hashing.
MAX_KEY_LENGTH = 128
#: ``last_used_at`` is written at most once per this interval per key.
LAST_USED_INTERVAL = timedelta(seconds=60)


class Scope(models.TextChoices):
    """What a key may do. Each endpoint needs exactly one (docs/server-api.md has the table)."""

    PUBLISH = "publish", "publish: send events; add / remove users in app rooms"
    CALL = "call", "call: send an event to a session and await its answer"
    PRESENCE = "presence", "presence: read who is in a room"
    DISCONNECT = "disconnect", "disconnect: disconnect users and sessions, revoke tokens"


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None."""
    if len(key) > MAX_KEY_LENGTH:
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8 or not parts[2]:
        return None
    return parts[1]


class ApiKey(models.Model):
    """A backend's credential for ``/api/server/``: scoped, revocable, stored hashed."""

    name = models.CharField(max_length=100, help_text="Who uses the key (e.g. 'webui-workers').")
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="Subset of: " + ", ".join(Scope.values))
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def new_secret(self) -> str:
        """Give this (unsaved) key a fresh prefix and secret; returns the key, the only time
        it exists in clear."""
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        self.prefix, self.key_hash = prefix, hash_key(key)
        return key

    def matches(self, key: str) -> bool:
        """Whether ``key`` is this key (compared in constant time)."""
        return hmac.compare_digest(self.key_hash, hash_key(key))

    def revoke(self) -> bool:
        """Revoke the key now (refused from the next request on); False if it already was."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=self.revoked_at
        )
        return True

    @classmethod
    def issue(
        cls, name: str, scopes: list[str], created_by: User | None = None
    ) -> tuple[ApiKey, str]:
        """Create and save a key; returns it and the clear key (show it once)."""
        unknown = set(scopes) - set(Scope.values)
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {Scope.values}")
        api_key = cls(name=name, scopes=sorted(set(scopes)), created_by=created_by)
        key = api_key.new_secret()
        api_key.save()
        return api_key, key

"""Notes and who may read or write them.

Access: the owner and admins may do everything; otherwise a ``NoteGrant`` to the user, to one
of their Django auth groups, or to everyone gives read or write (write implies read).
``Note.objects.readable_by(user)`` and ``note.access_for(user)`` are the only two places that
decide it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q

from accounts.models import Role


class Permission(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


class PrincipalType(models.TextChoices):
    USER = "user", "User"
    GROUP = "group", "Group"
    EVERYONE = "everyone", "Everyone"


def _grant_q(user, prefix: str = "") -> Q:
    """Grants (under ``prefix``) that apply to ``user``."""
    return (
        Q(**{f"{prefix}principal_type": PrincipalType.EVERYONE})
        | Q(**{f"{prefix}principal_type": PrincipalType.USER, f"{prefix}user": user})
        | Q(
            **{
                f"{prefix}principal_type": PrincipalType.GROUP,
                f"{prefix}group__in": user.groups.all(),
            }
        )
    )


class NoteQuerySet(models.QuerySet):
    def readable_by(self, user) -> NoteQuerySet:
        if user.role == Role.ADMIN:
            return self.all()
        return self.filter(
            Q(owner=user) | Q(pk__in=NoteGrant.objects.filter(_grant_q(user)).values("note"))
        ).distinct()


class Note(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    #: The caller's access ("read", "write" or None), set by ``notes.services`` for the
    #: serializers; not a field.
    caller_access: str | None
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    title = models.CharField(max_length=500)
    #: ``{"content": {"md", "html", "json"}}`` as the client renders it (Open WebUI shape).
    data = models.JSONField(default=dict, blank=True)
    #: The Yjs document state (a Yjs update that rebuilds the whole document); the truth.
    yjs_state = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NoteQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def document_id(self) -> str:
        return f"note:{self.id}"

    def access_for(self, user) -> str | None:
        """``"write"``, ``"read"`` or None for ``user``."""
        if user.role == Role.ADMIN or self.owner_id == user.pk:
            return Permission.WRITE
        perms = set(self.grants.filter(_grant_q(user)).values_list("permission", flat=True))
        if Permission.WRITE in perms:
            return Permission.WRITE
        return Permission.READ if perms else None


class NoteUpdate(models.Model):
    """One accepted Yjs update of a note's live document, stored before it is acknowledged
    or relayed (the update log). A save merges the log into ``Note.yjs_state`` and deletes
    the rows it merged, in one transaction (``notes.yjs.merge_save``); a load applies the
    stored state plus the log (``notes.yjs.load_state``)."""

    id = models.BigAutoField(primary_key=True)
    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="updates")
    update = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["note", "id"], name="note_update_log")]

    def __str__(self) -> str:
        return f"update {self.pk} of {self.note_id}"


class NoteGrant(models.Model):
    """Gives a principal (a user, a group, or everyone) read or write on a note."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="grants")
    principal_type = models.CharField(max_length=16, choices=PrincipalType.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="note_grants",
    )
    group = models.ForeignKey(
        Group, on_delete=models.CASCADE, null=True, blank=True, related_name="note_grants"
    )
    permission = models.CharField(max_length=8, choices=Permission.choices, default=Permission.READ)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                name="note_grant_principal_matches_type",
                condition=(
                    Q(principal_type=PrincipalType.USER, user__isnull=False, group__isnull=True)
                    | Q(principal_type=PrincipalType.GROUP, user__isnull=True, group__isnull=False)
                    | Q(
                        principal_type=PrincipalType.EVERYONE, user__isnull=True, group__isnull=True
                    )
                ),
            ),
            models.UniqueConstraint(
                fields=["note", "user"],
                name="unique_note_user_grant",
                condition=Q(principal_type=PrincipalType.USER),
            ),
            models.UniqueConstraint(
                fields=["note", "group"],
                name="unique_note_group_grant",
                condition=Q(principal_type=PrincipalType.GROUP),
            ),
            models.UniqueConstraint(
                fields=["note"],
                name="unique_note_everyone_grant",
                condition=Q(principal_type=PrincipalType.EVERYONE),
            ),
        ]

    def __str__(self) -> str:
        who = self.user or self.group or "everyone"
        return f"{who}: {self.permission}"

"""Changes made outside the socket layer that live sockets must feel, on every instance
(through the channel layer). Connected in ``RealtimeConfig.ready``.

- Token revocations: logout kicks the sockets of that token; revoke-all, deactivation, a role
  set to pending, a password change or deletion kicks all of the user's sockets.
- Group membership: a user leaving a group (or a group losing a user, or the group being
  deleted) can lose read access to the notes shared with that group; those notes' rooms
  re-check their sockets' access (``push.document_access_changed``).
Module map: docs/realtime.md.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, pre_delete
from django.dispatch import receiver

from accounts.models import User
from accounts.signals import token_revoked, user_tokens_revoked
from realtime import push


@receiver(token_revoked, dispatch_uid="realtime.kick_token")
def kick_token(sender, user, jti: str, **kwargs) -> None:
    push.disconnect_token(user.pk, jti, "token_revoked", "Signed out.")


@receiver(user_tokens_revoked, dispatch_uid="realtime.kick_user")
def kick_user(sender, user, **kwargs) -> None:
    push.disconnect_user(user.pk, "token_revoked", "All sessions were revoked.")


def _recheck_notes_of(groups) -> None:
    from notes.models import NoteGrant, PrincipalType

    notes = NoteGrant.objects.filter(principal_type=PrincipalType.GROUP, group__in=groups)
    for note_id in notes.values_list("note_id", flat=True).distinct():
        push.document_access_changed(note_id)


@receiver(pre_delete, sender=Group, dispatch_uid="realtime.group_deleted")
def recheck_deleted_group_notes(sender, instance: Group, **kwargs) -> None:
    """A deleted group takes its grants with it (after commit, the notes re-check)."""
    _recheck_notes_of([instance.pk])


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="realtime.group_access")
def recheck_group_notes(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """After users leave groups, the notes granted to those groups re-check access."""
    if action == "pre_clear":
        # ``clear`` reports no primary keys afterwards: remember what is being cleared.
        related = instance.user_set if isinstance(instance, Group) else instance.groups
        instance._chorus_cleared = set(related.values_list("pk", flat=True))
        return
    if action == "post_clear":
        pk_set = getattr(instance, "_chorus_cleared", set())
    elif action != "post_remove":
        return
    groups = {instance.pk} if isinstance(instance, Group) else set(pk_set or ())
    if groups and pk_set:
        _recheck_notes_of(groups)

"""Void a user's tokens when their access changes: deactivation, role set to pending, a new
password, or deletion. Connected in ``AccountsConfig.ready``."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import User
from .signals import user_tokens_revoked
from .tokens import revoke_all_tokens


@receiver(post_save, sender=User, dispatch_uid="accounts.void_tokens_on_access_change")
def void_tokens_on_access_change(sender, instance: User, created: bool, **kwargs) -> None:
    before = getattr(instance, "_loaded_access", None)
    after = instance.access_state()
    instance._loaded_access = after
    if created or before is None or before == after:
        return
    was_active, was_approved, old_password = before
    is_active, is_approved, new_password = after
    lost_access = (was_active and not is_active) or (was_approved and not is_approved)
    if lost_access or old_password != new_password:
        revoke_all_tokens(instance)


@receiver(post_delete, sender=User, dispatch_uid="accounts.kick_deleted_user")
def kick_deleted_user(sender, instance: User, **kwargs) -> None:
    transaction.on_commit(lambda: user_tokens_revoked.send(sender=User, user=instance))

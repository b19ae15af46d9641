"""Token revocations reach live sockets: logout kicks the sockets of that token; revoke-all,
deactivation, a role set to pending, a password change or deletion kicks all of the user's
sockets, on every instance (through the channel layer). Connected in ``RealtimeConfig.ready``."""

from __future__ import annotations

from django.dispatch import receiver

from accounts.signals import token_revoked, user_tokens_revoked

from . import push


@receiver(token_revoked, dispatch_uid="realtime.kick_token")
def kick_token(sender, user, jti: str, **kwargs) -> None:
    push.disconnect_token(user.pk, jti, "token_revoked", "Signed out.")


@receiver(user_tokens_revoked, dispatch_uid="realtime.kick_user")
def kick_user(sender, user, **kwargs) -> None:
    push.disconnect_user(user.pk, "token_revoked", "All sessions were revoked.")

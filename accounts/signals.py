"""Signals the accounts app sends so other apps (the realtime layer) can react.

Both are sent after the database change has committed.

- ``token_revoked(sender, user, jti)``: one access token was revoked (logout).
- ``user_tokens_revoked(sender, user)``: every token of the user is void (revoke all,
  deactivation, role set to pending, deletion).
"""

from django.dispatch import Signal

token_revoked = Signal()
user_tokens_revoked = Signal()

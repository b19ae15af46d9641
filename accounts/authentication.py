"""DRF authentication by ``Authorization: Bearer <access token>``.

Delegates every check to ``accounts.tokens.validate_access_token`` (the one validation
function); a refused token becomes a 401 (or 403 for a forbidden user) with the protocol code.
``request.auth`` is the ``ValidatedToken``.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from .models import User
from .tokens import TokenRejected, ValidatedToken, validate_access_token


class AuthenticatedRequest(Request):
    """The type of a request in a view that lets only authenticated users in (the default
    permission, ``IsAuthenticated``): its ``user`` is a ``User``. For type annotations only."""

    user: User
    auth: ValidatedToken


def bearer_token(header: bytes) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return ""


class JWTAuthentication(BaseAuthentication):
    """Bearer JWT authentication; no header means anonymous (permissions then decide)."""

    www_authenticate_realm = "api"

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        raw = bearer_token(header)
        if raw is None:
            raise _as_api_error(TokenRejected("invalid_token", "Expected 'Bearer <token>'."))
        try:
            validated: ValidatedToken = validate_access_token(raw)
        except TokenRejected as rejected:
            raise _as_api_error(rejected) from None
        return validated.user, validated

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


def _as_api_error(rejected: TokenRejected) -> exceptions.APIException:
    if rejected.status == 403:
        return exceptions.PermissionDenied(rejected.message, code=rejected.code)
    return exceptions.AuthenticationFailed(rejected.message, code=rejected.code)

"""Issue, validate and revoke JWTs: the one place that decides whether a token is good.

``validate_access_token`` is the single validation function for HTTP (DRF authentication)
and sockets (the JWT middleware and the Socket.IO CONNECT) alike. It checks, in order:
presence, signature and algorithm (HS256 only; ``alg: none`` is refused), expiry, token type
``access``, the ``jti`` not revoked, the user exists, is active and is not pending, and ``iat``
after the user's last "revoke all". It returns a ``ValidatedToken`` or raises
``TokenRejected`` carrying one of the codes of docs/protocol.md §4.

A single-use connection ticket (``accounts.tickets.Ticket``) is accepted wherever a token is
given to these functions: it is spent (``ticket_invalid`` if it is unknown, spent or expired)
and then validated as the access token it was issued against, from its stored claims — the
same checks but the signature, which was checked when the ticket was issued.

Revoked ``jti`` values live in the database (``RevokedToken``) and are read through the
Django cache (Redis when ``REDIS_URL`` is set): validating a token costs one query for its
user, plus one for the revocation list when the cache has no answer for its ``jti``.
``validate_access_tokens`` validates many at once with the same two queries (the socket
server hands it every CONNECT that arrived while the previous batch ran). Both statements are
hand-written, in ``accounts.queries``.

Token timestamps are whole seconds: a token whose ``iat`` falls in the same second as (or
before) a revoke-all is refused, so issuing waits for the next second when needed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import (
    ExpiredTokenError,
    TokenBackendError,
    TokenBackendExpiredToken,
    TokenError,
)
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from . import queries
from .models import RevokedToken, Role, User
from .signals import token_revoked, user_tokens_revoked
from .tickets import Grant, Ticket, take_grants

#: Tokens longer than this are refused before any parsing.
MAX_TOKEN_LENGTH = 4096

_REVOKED_CACHE_KEY = "chorus:jti:{}"


class TokenRejected(Exception):
    """A token that may not be used. ``code`` is one of the protocol's auth codes."""

    STATUS = {
        "auth_required": 401,
        "invalid_token": 401,
        "token_expired": 401,
        "token_revoked": 401,
        "ticket_invalid": 401,
        "forbidden": 403,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return self.STATUS[self.code]


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    """A token that passed every check, with the user it belongs to."""

    user: User
    jti: str
    issued_at: int
    expires_at: int


def validate_access_token(raw: object) -> ValidatedToken:
    """Return the validated token for ``raw`` or raise ``TokenRejected`` (see module doc)."""
    result = validate_access_tokens([raw])[0]
    if isinstance(result, TokenRejected):
        raise result
    return result


def validate_access_tokens(raws: Sequence[object]) -> list[ValidatedToken | TokenRejected]:
    """``validate_access_token`` for many tokens at once: the same checks, in the same order,
    with one query for all their users and one for the revocations the cache does not know
    (and one store round trip for the tickets among them). Returns, in order, each token's
    ``ValidatedToken`` or its ``TokenRejected``."""
    tickets = [raw for raw in raws if isinstance(raw, Ticket)]
    grants = iter(take_grants(tickets) if tickets else ())  # tickets are spent here
    parsed = [_granted(next(grants)) if isinstance(raw, Ticket) else _claims(raw) for raw in raws]
    claims = [result for result in parsed if isinstance(result, _Claims)]
    if not claims:
        return [result for result in parsed if isinstance(result, TokenRejected)]  # all of them
    revoked = _revoked_jtis(claims)
    users = queries.users_by_pk([c.user_id for c in claims if c.jti not in revoked])
    return [
        _validated(result, users.get(result.user_id), revoked)
        if isinstance(result, _Claims)
        else result
        for result in parsed
    ]


@dataclass(frozen=True, slots=True)
class _Claims:
    """A token whose signature, expiry, type and claims are good; not yet checked against
    the revocation list and its user."""

    jti: str
    user_id: uuid.UUID
    issued_at: int
    expires_at: int


def _claims(raw: object) -> _Claims | TokenRejected:
    """Everything that needs no database: presence, size, signature, expiry, type, claims."""
    if not raw:
        return TokenRejected("auth_required", "Authentication credentials were not provided.")
    if not isinstance(raw, str) or len(raw) > MAX_TOKEN_LENGTH:
        return TokenRejected("invalid_token", "Token is invalid.")
    try:
        # simplejwt's backend: signature, algorithm, expiry (with its leeway) and audience.
        # ``AccessToken(raw)`` would do the same and then check the type and expiry claims
        # below through datetime objects: twice the cost on every socket CONNECT.
        # simplejwt annotates the encoded token (a str) as its ``Token`` class.
        payload = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]
    except TokenBackendExpiredToken:
        return TokenRejected("token_expired", "Token has expired.")
    except TokenBackendError:
        return TokenRejected("invalid_token", "Token is invalid.")
    if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != AccessToken.token_type:
        return TokenRejected("invalid_token", "Token is invalid.")
    jti, user_id = payload.get(jwt_settings.JTI_CLAIM), payload.get(jwt_settings.USER_ID_CLAIM)
    issued_at, expires_at = payload.get("iat"), payload.get("exp")
    if not (
        isinstance(jti, str)
        and user_id
        and isinstance(issued_at, int | float)
        and isinstance(expires_at, int | float)
    ):
        return TokenRejected("invalid_token", "Token is missing required claims.")
    try:
        user_uuid = uuid.UUID(str(user_id))
    except ValueError:
        return TokenRejected("invalid_token", "Token is invalid.")
    return _Claims(jti, user_uuid, int(issued_at), int(expires_at))


def _granted(grant: Grant | None) -> _Claims | TokenRejected:
    """The claims a spent ticket stands for (its token was checked when it was issued: the
    expiry is what may have changed since)."""
    if grant is None:
        return TokenRejected("ticket_invalid", "Ticket is invalid, used or expired.")
    if grant.expires_at <= time.time():
        return TokenRejected("token_expired", "Token has expired.")
    try:
        user_uuid = uuid.UUID(grant.user_id)
    except ValueError:
        return TokenRejected("invalid_token", "Token is invalid.")
    return _Claims(grant.jti, user_uuid, grant.issued_at, grant.expires_at)


def _validated(
    claims: _Claims, user: User | None, revoked: set[str]
) -> ValidatedToken | TokenRejected:
    if claims.jti in revoked:
        return TokenRejected("token_revoked", "Token has been revoked.")
    try:
        checked = _check_user_state(user, claims.issued_at)
    except TokenRejected as rejected:
        return rejected
    return ValidatedToken(checked, claims.jti, claims.issued_at, claims.expires_at)


def _check_user(user_id: object, issued_at: int) -> User:
    """The user ``user_id`` if it may still use tokens issued at ``issued_at``."""
    try:
        pk = uuid.UUID(str(user_id))
    except ValueError:
        raise TokenRejected("invalid_token", "Token is invalid.") from None
    user = queries.users_by_pk([pk]).get(pk)
    return _check_user_state(user, issued_at)


def _check_user_state(user: User | None, issued_at: int) -> User:
    """``user``, if it exists and may still use tokens issued at ``issued_at``."""
    if user is None:
        raise TokenRejected("forbidden", "User no longer exists.")
    if not user.is_active:
        raise TokenRejected("forbidden", "User account is disabled.")
    if user.role == Role.PENDING:
        raise TokenRejected("forbidden", "User account is pending approval.")
    if user.tokens_valid_after and issued_at <= int(user.tokens_valid_after.timestamp()):
        raise TokenRejected("token_revoked", "Token has been revoked.")
    return user


def _revoked_jtis(claims: Sequence[_Claims]) -> set[str]:
    """The revoked ones among the tokens' ids: from the cache, and what it does not know from
    the database in one query (each answer then cached, see ``_cache_revocation``)."""
    keys = {c.jti: _REVOKED_CACHE_KEY.format(c.jti) for c in claims}
    cached = cache.get_many(keys.values())
    revoked = {jti for jti, key in keys.items() if cached.get(key)}
    unknown = [c for c in claims if keys[c.jti] not in cached]
    if unknown:
        stored = queries.revoked_jtis([c.jti for c in unknown])
        for c in unknown:
            _cache_revocation(c.jti, c.jti in stored, c.expires_at)
        revoked |= stored
    return revoked


def _cache_revocation(jti: str, revoked: bool, expires_at: float) -> bool:
    """Cache a revocation answer read from the database; returns ``revoked``."""
    key = _REVOKED_CACHE_KEY.format(jti)
    if revoked:
        cache.set(key, 1, max(1, int(expires_at - time.time())))
    else:
        # add, not set: a logout that committed after our read has written "revoked" (1)
        # already, and a stale "not revoked" must never replace it.
        cache.add(key, 0, settings.JWT_REVOCATION_CACHE_TTL)
    return revoked


# --- issuing ------------------------------------------------------------------------------------


def _wait_past_revocation(user: User) -> None:
    """Make sure a token issued now is not caught by a revoke-all made in this same second."""
    if user.tokens_valid_after is None:
        return
    boundary = int(user.tokens_valid_after.timestamp()) + 1
    delay = boundary - time.time()
    if 0 < delay <= 1:
        time.sleep(delay)


def _expiry_iso(token: AccessToken) -> str:
    return datetime.fromtimestamp(token["exp"], tz=UTC).isoformat().replace("+00:00", "Z")


def issue_token_pair(user: User) -> dict:
    """A fresh access + refresh pair in the API's response shape."""
    _wait_past_revocation(user)
    refresh = RefreshToken.for_user(user)
    access = refresh.access_token
    return {
        "access": str(access),
        "refresh": str(refresh),
        "expires_at": _expiry_iso(access),
        "user": user.public_profile(),
    }


def issue_access_token(user: User, ttl_seconds: int | None = None) -> str:
    """A single access token (for scripts and tests), optionally with its own lifetime."""
    _wait_past_revocation(user)
    token = AccessToken.for_user(user)
    if ttl_seconds is not None:
        token.set_exp(lifetime=timedelta(seconds=ttl_seconds))
    return str(token)


def refresh_token_pair(raw_refresh: str) -> dict:
    """Rotate a refresh token: the old one is blacklisted, a new pair is returned.

    A refresh token used twice (including two concurrent uses) is refused the second time.
    """
    try:
        # signature, expiry, type, blacklist; simplejwt annotates the str as its ``Token``
        refresh = RefreshToken(raw_refresh)  # type: ignore[arg-type]
    except ExpiredTokenError:
        raise TokenRejected("token_expired", "Refresh token has expired.") from None
    except TokenError:
        raise TokenRejected("invalid_token", "Refresh token is invalid or was used.") from None
    user = _check_user(refresh.get("user_id"), int(refresh.get("iat", 0)))
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=refresh["jti"],
            defaults={
                "user": user,
                "token": str(refresh),
                "expires_at": datetime.fromtimestamp(refresh["exp"], tz=UTC),
            },
        )
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise TokenRejected("token_revoked", "Refresh token was already used.")
    return issue_token_pair(user)


# --- revoking -----------------------------------------------------------------------------------


def revoke_access_token(validated: ValidatedToken) -> None:
    """Revoke one access token (logout); its sockets are kicked after commit."""
    expires = datetime.fromtimestamp(validated.expires_at, tz=UTC)
    RevokedToken.objects.get_or_create(
        jti=validated.jti, defaults={"user": validated.user, "expires_at": expires}
    )
    ttl = max(1, int(validated.expires_at - time.time()))
    cache.set(_REVOKED_CACHE_KEY.format(validated.jti), 1, ttl)
    user, jti = validated.user, validated.jti
    transaction.on_commit(lambda: token_revoked.send(sender=User, user=user, jti=jti))


def own_refresh_token(raw_refresh: str, user: User) -> RefreshToken | None:
    """The parsed refresh token if it is valid and belongs to ``user``, else None."""
    try:
        refresh = RefreshToken(raw_refresh)  # type: ignore[arg-type]  # str, as above
    except TokenError:
        return None
    return refresh if str(refresh.get("user_id")) == str(user.id) else None


def revoke_all_tokens(user: User) -> None:
    """Void every token of ``user`` issued up to now and kick all their sockets after commit."""
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(tokens_valid_after=now)
    user.tokens_valid_after = now
    outstanding = OutstandingToken.objects.filter(user=user, expires_at__gt=now).exclude(
        blacklistedtoken__isnull=False
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    transaction.on_commit(lambda: user_tokens_revoked.send(sender=User, user=user))


def purge_expired_revocations() -> int:
    """Delete revocation records whose tokens have expired anyway; returns how many."""
    deleted, _ = RevokedToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted

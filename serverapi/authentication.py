"""Who is calling the server API: an API key from ``Authorization: Bearer <key>``, nothing else.

``ApiKeyAuthentication`` refuses, in this order: a query string that carries a key or a
credential parameter (400 ``key_in_query``: daphne's access log prints URLs, so a key there
is already exposed — rotate it); a malformed header or a key that does not exist (401
``invalid_key``); a revoked key (401 ``key_revoked``). No header at all is anonymous, which
the view's permission turns into 401 ``auth_required``. ``request.auth`` is the ``ApiKey``.

The key is never logged, at any level: only its public prefix is.
"""

from __future__ import annotations

import logging
import time

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.authentication import bearer_token

from .models import KEY_PREFIX, LAST_USED_INTERVAL, ApiKey, parse_prefix

logger = logging.getLogger("chorus.serverapi")

#: Query parameter names refused whatever their value (a credential has no place in a URL).
CREDENTIAL_PARAMETERS = frozenset(
    {"key", "api_key", "apikey", "api-key", "access_token", "token", "authorization"}
)

_USED_CACHE_KEY = "chorus:serverapi:used:{}"
#: Key prefix -> when this process last asked the cache whether to write ``last_used_at``
#: (monotonic seconds); one entry per key that was used, so bounded by the keys.
_asked: dict[str, float] = {}


class KeyInQuery(exceptions.APIException):
    status_code = 400
    default_code = "key_in_query"
    default_detail = (
        "API keys are accepted only in the Authorization header (Bearer), never in the URL. "
        "A key sent in a URL may be in access logs: revoke it and make a new one."
    )


def _key_in_query(request) -> bool:
    for name, values in request.query_params.lists():
        if name.lower() in CREDENTIAL_PARAMETERS:
            return True
        if any(value.startswith(f"{KEY_PREFIX}_") for value in values):
            return True
    return False


class ApiKeyAuthentication(BaseAuthentication):
    """Bearer API-key authentication (see module doc). Runs on a worker thread (ORM)."""

    www_authenticate_realm = "server-api"

    def authenticate(self, request):
        if _key_in_query(request):
            logger.warning("server API: credential in a query string refused (%s)", request.path)
            raise KeyInQuery()
        header = get_authorization_header(request)
        if not header:
            return None
        raw = bearer_token(header)
        prefix = parse_prefix(raw) if raw else None
        api_key = ApiKey.objects.filter(prefix=prefix).first() if prefix else None
        if api_key is None or raw is None or not api_key.matches(raw):
            logger.info("server API: unknown key refused (%s)", request.path)
            raise exceptions.AuthenticationFailed("Unknown API key.", code="invalid_key")
        if not api_key.active:
            logger.info("server API: revoked key %s refused", api_key.prefix)
            raise exceptions.AuthenticationFailed("The API key is revoked.", code="key_revoked")
        logger.debug("server API: key %s, %s %s", api_key.prefix, request.method, request.path)
        _note_use(api_key)
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


def _note_use(api_key: ApiKey) -> None:
    """Write ``last_used_at`` at most once per ``LAST_USED_INTERVAL`` per key: this process
    asks at most once per interval per key (``_asked``: most requests cost nothing), the
    shared cache lets one process per interval through, and the conditional UPDATE bounds the
    writes where the cache is not shared."""
    seconds = LAST_USED_INTERVAL.total_seconds()
    moment = time.monotonic()
    if moment - _asked.get(api_key.prefix, -seconds) < seconds:
        return
    _asked[api_key.prefix] = moment
    if not cache.add(_USED_CACHE_KEY.format(api_key.prefix), 1, int(seconds)):
        return
    now = timezone.now()
    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_INTERVAL),
        pk=api_key.pk,
    ).update(last_used_at=now)

"""The server API's rate limit: ``SERVER_API_RATE_LIMIT`` requests per second per key.

A fixed one-second window counted in Django's cache, so every instance shares the count when
``REDIS_URL`` is set (the cache is Redis; ``INCR`` is atomic). Over the limit: 429
``rate_limited`` with ``Retry-After`` (1: the next window). ``0``
turns the limit off.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .models import ApiKey

#: Wall-clock seconds (tests replace it to hold the window still).
now = time.time

_WINDOW_KEY = "chorus:serverapi:rate:{}:{}"


class ApiKeyRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        limit = settings.SERVER_API_RATE_LIMIT
        api_key = request.auth
        if not limit or not isinstance(api_key, ApiKey):
            return True
        key = _WINDOW_KEY.format(api_key.prefix, int(now()))
        try:
            count = cache.incr(key)
        except ValueError:  # the window's first request (or a race with another's add)
            count = 1 if cache.add(key, 1, 2) else cache.incr(key)
        if count <= limit:
            return True
        self._wait = 1.0  # the window is one second; Retry-After is whole seconds
        return False

    def wait(self) -> float | None:
        return self._wait

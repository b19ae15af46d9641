"""A Django ASGI handler for the endpoints only backends call: the server API (``/api/server/``).

Why: under ASGI, Django runs every hook of a middleware that is not async-native through
``sync_to_async`` — a hop to a worker thread and back. Through the full ``MIDDLEWARE`` stack a
server-API request took 36 such hops (profiled with Django's async test client); on a busy
machine each hop waits for the scheduler, and one backend streaming token deltas sends one
request per delta. A backend needs none of what that stack does for browsers (CORS, sessions,
CSRF, the session user, messages, frame options), so ``BackendASGIHandler`` runs the URL's view
with ``BACKEND_MIDDLEWARE`` instead: async-native middleware only (today the request id of the
logs). What the skipped middleware would have checked that still matters is checked by the
view: the ``Host`` header (``ALLOWED_HOSTS``, ``serverapi.views.ServerApiView``).

The URLs, views, exception handling and signals are Django's own; only the chain differs.
``config/asgi.py`` sends paths under ``BACKEND_PATH_PREFIX`` here.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.utils.module_loading import import_string

#: Requests under this path go to ``BackendASGIHandler``.
BACKEND_PATH_PREFIX = "/api/server/"


class BackendASGIHandler(ASGIHandler):
    """``ASGIHandler`` whose middleware chain is ``settings.BACKEND_MIDDLEWARE``. Each entry
    must be async-capable and have only ``__call__`` (no ``process_view``,
    ``process_exception`` or ``process_template_response`` hooks): nothing is adapted, so
    nothing hops to a thread."""

    def load_middleware(self, is_async: bool = False) -> None:
        if not is_async:
            raise ImproperlyConfigured("BackendASGIHandler serves ASGI only")
        self._view_middleware: list = []
        self._template_response_middleware: list = []
        self._exception_middleware: list = []
        # Django's own last step (URL resolution, the view), private but stable since 3.1.
        handler = convert_exception_to_response(self._get_response_async)  # type: ignore[attr-defined]
        for path in reversed(settings.BACKEND_MIDDLEWARE):
            middleware = import_string(path)
            hooks = ("process_view", "process_exception", "process_template_response")
            if not getattr(middleware, "async_capable", False) or any(
                hasattr(middleware, hook) for hook in hooks
            ):
                raise ImproperlyConfigured(
                    f"{path}: BACKEND_MIDDLEWARE takes async-capable middleware without hooks"
                )
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler

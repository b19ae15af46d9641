"""ASGI entry point: HTTP through Django (health probes before it, ``config.health``),
WebSockets through the realtime routing.

Run with ``daphne config.asgi:application`` (or uvicorn).
"""

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from config.body_limit import BodyLimitMiddleware  # noqa: E402
from config.handlers import BACKEND_PATH_PREFIX, BackendASGIHandler  # noqa: E402
from config.health import health_app  # noqa: E402
from realtime import transport  # noqa: E402
from realtime.lifecycle import drain, lifespan_app, start_hub  # noqa: E402
from realtime.routing import http_application, websocket_application  # noqa: E402

django_application: ASGIHandler | BodyLimitMiddleware = django_asgi_app
if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_application = ASGIStaticFilesHandler(django_asgi_app)
# JSON 413 over MAX_REQUEST_BODY_BYTES (Engine.IO polling bounds its own bodies).
django_application = BodyLimitMiddleware(django_application)
# Endpoints only backends call (the server API): Django without the browser middleware.
backend_application = BodyLimitMiddleware(BackendASGIHandler())


async def django_or_backend(scope, receive, send) -> None:
    """HTTP for Django: the server API's paths to the backend handler, the rest to the site."""
    if scope["path"].startswith(BACKEND_PATH_PREFIX):
        await backend_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": health_app(http_application(django_or_backend)),
        "websocket": websocket_application,
        "lifespan": lifespan_app,
    }
)
transport.install(start=start_hub, stop=drain)  # the server seam, from one place

"""Routes: WebSocket routes (wrapped in the Origin check and the JWT middleware), and the
HTTP side of the Socket.IO path (Engine.IO long-polling) in front of Django.
Module map: docs/realtime.md."""

from channels.routing import URLRouter
from django.urls import path

from realtime.consumers.polling import polling_app
from realtime.consumers.socketio import SocketIOConsumer
from realtime.consumers.yjs import YjsConsumer
from realtime.middleware import JWTAuthMiddleware, OriginCheckMiddleware

# Channels' documented routing, which the two stubs do not model together: django-stubs types
# path()'s view as a Django view, types-channels wants its own pattern type in URLRouter.
websocket_urlpatterns = [
    path("ws/socket.io/", SocketIOConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/yjs/<str:document_id>", YjsConsumer.as_asgi()),  # type: ignore[arg-type]
]

websocket_application = OriginCheckMiddleware(
    JWTAuthMiddleware(URLRouter(websocket_urlpatterns))  # type: ignore[arg-type]
)

#: The Socket.IO path over HTTP (socket.io-client adds the trailing slash by default).
SOCKETIO_HTTP_PATHS = frozenset({"/ws/socket.io/", "/ws/socket.io"})


def http_application(django_application):
    """HTTP: Engine.IO long-polling on the Socket.IO path, everything else to Django."""

    async def application(scope, receive, send):
        if scope["path"] in SOCKETIO_HTTP_PATHS:
            return await polling_app(scope, receive, send)
        return await django_application(scope, receive, send)

    return application

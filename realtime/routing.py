"""WebSocket routes, wrapped in the Origin check and the JWT middleware.
Module map: docs/realtime.md."""

from channels.routing import URLRouter
from django.urls import path

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

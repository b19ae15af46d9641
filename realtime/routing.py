"""WebSocket routes, wrapped in the Origin check and the JWT middleware.
Module map: docs/realtime.md."""

from channels.routing import URLRouter
from django.urls import path

from realtime.consumers.socketio import SocketIOConsumer
from realtime.consumers.yjs import YjsConsumer
from realtime.middleware import JWTAuthMiddleware, OriginCheckMiddleware

websocket_urlpatterns = [
    path("ws/socket.io/", SocketIOConsumer.as_asgi()),
    path("ws/yjs/<str:document_id>", YjsConsumer.as_asgi()),
]

websocket_application = OriginCheckMiddleware(JWTAuthMiddleware(URLRouter(websocket_urlpatterns)))

"""WebSocket routes. The Socket.IO and y-websocket consumers are added by the realtime issue."""

from channels.routing import URLRouter

websocket_urlpatterns: list = []
websocket_application = URLRouter(websocket_urlpatterns)

"""HTTP answers on the Socket.IO path: only the WebSocket transport is served.
Module map: docs/realtime.md."""

from django.http import JsonResponse


def socketio_polling(request):
    """Engine.IO long-polling is not offered: a clear 400 in Engine.IO's error shape."""
    return JsonResponse(
        {"code": 0, "message": "Transport unknown: only transport=websocket is supported"},
        status=400,
    )

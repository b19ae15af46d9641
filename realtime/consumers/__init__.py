"""The two WebSocket endpoints: ``socketio`` (Socket.IO / Engine.IO) and ``yjs`` (y-websocket),
both on ``base.LeanConsumer``. Routes: ``realtime.routing``. Module map: docs/realtime.md."""

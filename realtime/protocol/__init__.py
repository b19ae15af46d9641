"""The pure codecs of both endpoints: Engine.IO, Socket.IO, y-protocols, Open WebUI's JSON
awareness, WebSocket framing. No I/O, no Django, nothing of Chorus but ``lib`` (an
import-linter contract). Module map: docs/realtime.md."""

"""Reference peer for the event socket: a python-socketio ``AsyncServer`` under uvicorn — the
stack Open WebUI runs — implementing the same events as Chorus, the way Open WebUI does:

- CONNECT: JWT check (PyJWT, HS256, the bench's signing key); refused → CONNECT_ERROR;
  joins ``user.<id>``;
- ``user-join``: re-checks the token, joins the user's channel rooms, acks ``{id,name,role}``;
- ``heartbeat``: records ``last_active`` (in memory — Open WebUI writes its database here);
- ``events:channel`` typing: the socket must be in the channel room; relays
  ``{channel_id, message_id, data, user}`` to the room except the sender;
- ``ydoc:document:join`` / ``ydoc:document:update``: editor check, room ``doc_<id>``, updates
  appended to an in-memory log (Open WebUI's in-memory YdocManager) and relayed to the room
  except the sender as ``{document_id, user_id, update, socket_id}``.

``--redis URL``: the same server with ``AsyncRedisManager`` (Open WebUI's multi-instance
mode); every emit goes through Redis pub/sub on the channel ``--channel`` (default: one
private to this process). A write-only ``AsyncRedisManager`` on the same URL and channel —
Open WebUI's workers, the ``server-publish`` suite's publisher — emits to this server's sockets.

Both Engine.IO transports are served (python-socketio's default): WebSocket, and HTTP
long-polling for the polling suites (what Open WebUI serves with WebSocket support off). One
process, so polling needs no sticky sessions here; python-socketio needs them with several.

Usage: python bench/peers/sio_server.py --fixture F --port P [--redis redis://…/9 [--channel C]]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import socketio
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the checkout
from bench.peers.common import Fixture, note_id_of


def build(fixture: Fixture, redis_url: str | None, channel: str = "") -> socketio.ASGIApp:
    manager = (
        socketio.AsyncRedisManager(redis_url, channel=channel or f"bench-sio-{os.getpid()}")
        if redis_url
        else None
    )
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins="*",
        transports=["polling", "websocket"],
        ping_interval=25,
        ping_timeout=20,
        max_http_buffer_size=1_000_000,
    )
    sessions: dict[str, dict] = {}
    last_active: dict[str, float] = {}
    doc_updates: dict[str, list[bytes]] = defaultdict(list)

    @sio.event
    async def connect(sid, environ, auth):
        user = fixture.user_for((auth or {}).get("token"))
        if user is None:
            raise socketio.exceptions.ConnectionRefusedError({"code": "invalid_token"})
        sessions[sid] = user
        await sio.enter_room(sid, f"user.{user['id']}")

    @sio.event
    async def disconnect(sid, reason=None):
        sessions.pop(sid, None)

    @sio.on("user-join")
    async def user_join(sid, data):
        user = fixture.user_for(((data or {}).get("auth") or {}).get("token"))
        if user is None or user["id"] != sessions.get(sid, {}).get("id"):
            return {"error": {"code": "unauthorized", "message": "bad token"}}
        await sio.enter_room(sid, f"user.{user['id']}")
        for channel_id in fixture.channels_of[user["id"]]:
            await sio.enter_room(sid, f"channel.{channel_id}")
        return {"id": user["id"], "name": user["name"], "role": user["role"]}

    @sio.on("heartbeat")
    async def heartbeat(sid, data):
        user = sessions.get(sid)
        if user is not None:
            last_active[user["id"]] = time.time()
        return {}

    @sio.on("events:channel")
    async def channel_events(sid, data):
        user = sessions.get(sid)
        channel_id = str((data or {}).get("channel_id", ""))
        room = f"channel.{channel_id}"
        if user is None or room not in sio.rooms(sid):
            return {"error": {"code": "forbidden", "message": "not a member"}}
        event = (data or {}).get("data") or {}
        if event.get("type") == "typing":
            await sio.emit(
                "events:channel",
                {
                    "channel_id": channel_id,
                    "message_id": data.get("message_id"),
                    "data": {
                        "type": "typing",
                        "data": {"typing": bool((event.get("data") or {}).get("typing"))},
                    },
                    "user": {"id": user["id"], "name": user["name"]},
                },
                room=room,
                skip_sid=sid,
            )
        return {}

    @sio.on("ydoc:document:join")
    async def document_join(sid, data):
        user = sessions.get(sid)
        note_id = note_id_of((data or {}).get("document_id"))
        if user is None or user["id"] not in fixture.editors.get(note_id, ()):
            return {"error": {"code": "forbidden", "message": "no access"}}
        await sio.enter_room(sid, f"doc_{note_id}")
        state = {
            "document_id": f"note:{note_id}",
            "state": [b for u in doc_updates[note_id] for b in u],
        }
        await sio.emit("ydoc:document:state", state, to=sid)
        await sio.emit(
            "ydoc:user:joined",
            {"document_id": f"note:{note_id}", "user_id": user["id"], "user_name": user["name"]},
            room=f"doc_{note_id}",
            skip_sid=sid,
        )
        return {"document_id": f"note:{note_id}"}

    @sio.on("ydoc:document:update")
    async def document_update(sid, data):
        user = sessions.get(sid)
        note_id = note_id_of((data or {}).get("document_id"))
        update = (data or {}).get("update")
        if user is None or user["id"] not in fixture.editors.get(note_id, ()):
            return {"error": {"code": "forbidden", "message": "no access"}}
        if not isinstance(update, list):
            return {"error": {"code": "bad_request", "message": "update must be a list"}}
        doc_updates[note_id].append(bytes(update))
        await sio.emit(
            "ydoc:document:update",
            {
                "document_id": f"note:{note_id}",
                "user_id": user["id"],
                "update": update,
                "socket_id": sid,
            },
            room=f"doc_{note_id}",
            skip_sid=sid,
        )
        return {}

    return socketio.ASGIApp(sio, socketio_path="/ws/socket.io")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="")
    parser.add_argument("--channel", default="", help="the Redis pub/sub channel (--redis)")
    args = parser.parse_args()
    app = build(Fixture(args.fixture), args.redis or None, args.channel)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()

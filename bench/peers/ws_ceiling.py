"""The ceiling: a plain ``websockets`` server, no framework, rooms as Python sets.

It speaks just enough Engine.IO / Socket.IO by hand for the bench's load generator (OPEN,
CONNECT with a JWT, EVENT with ack id, ACK) and implements the same events as the other
servers; a broadcast is one encoded frame written to every socket of the room with
``websockets.broadcast``. No Engine.IO PINGs, no validation schema, no session registry:
the upper bound of what one Python process does on this machine, not a server to ship.

Usage: python bench/peers/ws_ceiling.py --fixture F --port P
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections import defaultdict
from pathlib import Path

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the checkout
from bench.peers.common import Fixture, note_id_of

OPEN = '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


class Ceiling:
    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self.rooms: dict[str, set] = defaultdict(set)
        self.last_active: dict[str, float] = {}
        self.doc_updates: dict[str, list[bytes]] = defaultdict(list)

    def emit(self, room: str, event: str, data, skip=None) -> None:
        frame = "42" + dumps([event, data])
        members = self.rooms.get(room, ())
        broadcast([ws for ws in members if ws is not skip], frame)

    async def handler(self, ws) -> None:
        sid = secrets.token_urlsafe(15)
        user = None
        joined: set[str] = set()

        def join(room: str) -> None:
            self.rooms[room].add(ws)
            joined.add(room)

        await ws.send(OPEN % sid)
        try:
            async for frame in ws:
                if not isinstance(frame, str) or frame[:1] != "4":
                    continue
                kind = frame[1:2]
                if kind == "0" and user is None:
                    auth = json.loads(frame[2:] or "{}")
                    user = self.fixture.user_for(auth.get("token"))
                    if user is None:
                        await ws.send(
                            '44{"message":"invalid token","data":{"code":"invalid_token"}}'
                        )
                        return
                    join(f"user.{user['id']}")
                    await ws.send('40{"sid":"' + sid + '"}')
                elif kind == "2" and user is not None:
                    i = 2
                    while frame[i].isdigit():
                        i += 1
                    ack_id = frame[2:i]
                    name, *args = json.loads(frame[i:])
                    result = self.handle(ws, sid, user, joined, join, name, args[0] if args else {})
                    if ack_id:
                        await ws.send(f"43{ack_id}[{dumps(result)}]")
        except ConnectionClosed:
            pass
        finally:
            for room in joined:
                members = self.rooms.get(room)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del self.rooms[room]

    def handle(self, ws, sid, user: dict, joined, join, name, data) -> dict:
        data = data if isinstance(data, dict) else {}
        if name == "heartbeat":
            self.last_active[user["id"]] = time.time()
            return {}
        if name == "user-join":
            if self.fixture.user_for((data.get("auth") or {}).get("token")) is not user:
                return {"error": {"code": "unauthorized", "message": "bad token"}}
            for channel_id in self.fixture.channels_of[user["id"]]:
                join(f"channel.{channel_id}")
            return {"id": user["id"], "name": user["name"], "role": user["role"]}
        if name == "events:channel":
            channel_id = str(data.get("channel_id", ""))
            room = f"channel.{channel_id}"
            if room not in joined:
                return {"error": {"code": "forbidden", "message": "not a member"}}
            event = data.get("data") or {}
            if event.get("type") == "typing":
                typing = bool((event.get("data") or {}).get("typing"))
                self.emit(
                    room,
                    "events:channel",
                    {
                        "channel_id": channel_id,
                        "message_id": data.get("message_id"),
                        "data": {"type": "typing", "data": {"typing": typing}},
                        "user": {"id": user["id"], "name": user["name"]},
                    },
                    skip=ws,
                )
            return {}
        if name in ("ydoc:document:join", "ydoc:document:update"):
            note_id = note_id_of(data.get("document_id"))
            if user["id"] not in self.fixture.editors.get(note_id, ()):
                return {"error": {"code": "forbidden", "message": "no access"}}
            room = f"doc_{note_id}"
            if name == "ydoc:document:join":
                join(room)
                return {"document_id": f"note:{note_id}"}
            update = data.get("update")
            if room not in joined or not isinstance(update, list):
                return {"error": {"code": "bad_request", "message": "join first / bad update"}}
            self.doc_updates[note_id].append(bytes(update))
            self.emit(
                room,
                "ydoc:document:update",
                {
                    "document_id": f"note:{note_id}",
                    "user_id": user["id"],
                    "update": update,
                    "socket_id": sid,
                },
                skip=ws,
            )
            return {}
        return {"error": {"code": "bad_request", "message": "unknown event"}}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ceiling = Ceiling(Fixture(args.fixture))
    async with serve(
        ceiling.handler,
        "127.0.0.1",
        args.port,
        compression=None,
        max_size=1_000_000,
        ping_interval=None,
        backlog=1024,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

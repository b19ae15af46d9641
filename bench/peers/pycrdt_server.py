"""Reference peer for documents: pycrdt-websocket's ASGI server under uvicorn, stock.

Every path is a room (the bench uses the same ``/ws/yjs/note:<uuid>?token=…`` URL as for
Chorus; the query string is ignored: no authentication). No store: updates live in memory.

Usage: python bench/peers/pycrdt_server.py --port P
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer


async def serve(port: int) -> None:
    websocket_server = WebsocketServer(log=logging.getLogger("pycrdt-peer"))
    app = ASGIServer(websocket_server)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    async with websocket_server:
        await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()

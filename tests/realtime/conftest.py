"""Fixtures for realtime tests: a Socket.IO speaker on top of Channels' WebsocketCommunicator, and
a hub of its own on the in-memory layer (``one_process``, ``hub``)."""

from __future__ import annotations

import contextlib
import json

import pytest
from channels.testing import WebsocketCommunicator

from realtime.hub import Hub
from realtime.routing import websocket_application

SIO_PATH = "/ws/socket.io/?EIO=4&transport=websocket"


class SioSocket:
    """Speaks Engine.IO / Socket.IO frames by hand through a WebsocketCommunicator."""

    def __init__(self, path: str = SIO_PATH, headers: list | None = None) -> None:
        self.comm = WebsocketCommunicator(websocket_application, path, headers=headers or [])
        self.open_packet: dict | None = None
        self._ack_id = 0
        self._skipped: list[str] = []  # frames read while waiting for an ack, in order

    async def open(self) -> dict:
        connected, _ = await self.comm.connect()
        assert connected
        frame = await self.comm.receive_from()
        assert frame[0] == "0", frame
        self.open_packet = json.loads(frame[1:])
        return self.open_packet

    async def send(self, frame: str | bytes) -> None:
        key = "bytes" if isinstance(frame, bytes) else "text"
        await self.comm.send_input({"type": "websocket.receive", key: frame})

    async def recv(self, timeout: float = 2) -> str:
        if self._skipped:
            return self._skipped.pop(0)
        return await self.comm.receive_from(timeout)

    async def connect(self, auth: dict | None = None) -> str:
        """CONNECT to "/"; returns the reply packet (``0{"sid":…}`` or ``4{…}``) sans "4"."""
        if self.open_packet is None:
            await self.open()
        await self.send("40" + (json.dumps(auth) if auth is not None else ""))
        frame = await self.recv()
        assert frame.startswith("4"), frame
        return frame[1:]

    async def connected(self, token: str) -> str:
        reply = await self.connect({"token": token})
        assert reply.startswith("0{"), reply
        return json.loads(reply[1:])["sid"]

    async def call(self, event: str, data=None, timeout: float = 2):
        """Emit with an ack id; skip unrelated frames; return the ack's first argument."""
        self._ack_id += 1
        args = [event] if data is None else [event, data]
        await self.send(f"42{self._ack_id}{json.dumps(args)}")
        prefix = f"43{self._ack_id}["
        while True:
            frame = await self.comm.receive_from(timeout)
            if isinstance(frame, str) and frame.startswith(prefix):
                return json.loads(frame[len(prefix) - 1 :])[0]
            self._skipped.append(frame)

    async def next_event(self, timeout: float = 2) -> tuple[str, object]:
        """The next EVENT frame as (name, first argument), skipping pings and acks."""
        while True:
            frame = await self.recv(timeout)
            if frame.startswith("42["):
                name, *args = json.loads(frame[2:])
                return name, (args[0] if args else None)

    async def no_event_before(self, marker: str, name: str, where=None) -> bool:
        """True if no EVENT ``name`` (matching ``where(data)`` when given) arrives before EVENT
        ``marker``, which the test sends after whatever must not arrive: the quiet period is
        proven over by an event, not by a timeout."""
        while (event := await self.next_event())[0] != marker:
            if event[0] == name and (where is None or where(event[1])):
                return False
        return True

    async def closed_with(self, timeout: float = 2) -> int:
        """Read until the server closes; return the close code."""
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code", 1000)

    async def close(self) -> None:
        await self.comm.disconnect()


@pytest.fixture
async def sio():
    """``sio(path?, headers?)`` -> a new SioSocket; all are disconnected after the test."""
    sockets: list[SioSocket] = []

    def make(path: str = SIO_PATH, headers: list | None = None) -> SioSocket:
        socket = SioSocket(path, headers)
        sockets.append(socket)
        return socket

    yield make
    for socket in sockets:
        with contextlib.suppress(Exception):
            await socket.close()


@pytest.fixture
def one_process(settings):
    """This process alone: the in-memory layer and in-process stores, whatever the pass."""
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ProcessChannelLayer",
            "CONFIG": {"capacity": 10_000, "expiry": 60, "group_expiry": 86400},
        }
    }


@pytest.fixture
async def hub(one_process):
    """A started hub of its own on the in-memory layer (stopped after the test)."""
    hub = Hub()
    await hub.start()
    yield hub
    await hub.stop()

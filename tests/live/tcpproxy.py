"""A TCP forwarder in the test process, for live tests that need to break or balance the
network between a client and daphne: ``TcpProxy(*targets)`` listens on a free loopback port and
forwards each new connection to the next target port in turn, skipping a target that refuses
it, as nginx does (one target: a plain forwarder; several: a load balancer without affinity).
``cut`` resets every connection (what a network failure looks like to both ends) and refuses
new ones until ``restore``."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to the ``targets`` (ports), each new connection to the next
    (``picked`` records which); ``cut`` resets every connection and stops listening,
    ``restore`` listens again (to ``target``, which may change)."""

    def __init__(self, *targets: int) -> None:
        self._targets = itertools.cycle(targets)
        self._count = len(targets)
        self.picked: list[int] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(self._count):  # a refused target: the next one (nginx does the same)
            target = next(self._targets)
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                continue
            break
        else:  # every target refused: so is the client
            writer.transport.abort()
            return
        self.picked.append(target)
        self._writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    async def cut(self) -> None:
        """Reset (RST) every forwarded connection, both sides; accept no new one."""
        self._server.close()
        for writer in self._writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def restore(self, target: int | None = None) -> None:
        if target is not None:
            self._targets = itertools.cycle((target,))
            self._count = 1
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()

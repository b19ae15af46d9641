"""Live-test harness: real daphne processes, real Socket.IO clients, a raw Engine.IO socket.

- ``DaphneServer`` runs ``daphne config.asgi:application`` as a subprocess on a free loopback
  port, with an environment derived from the test process: the same ``SECRET_KEY`` / JWT
  signing key (tokens the test issues validate there), the same test database pytest-django
  created (``database_url_for_tests``), Redis only when asked, plus realtime knobs and the
  other documented settings in ``SERVER_SETTINGS``.
- ``Client`` wraps ``socketio.AsyncClient(reconnection=False)`` and records every event,
  the ``connect_error`` payload and disconnects; ``wait_for`` polls with a deadline.
- "Nothing arrived" is proven by a marker, never by a quiet time window:
  ``Client.assert_no_event_before(event, marker)`` waits for a ``Marker`` (an event the test
  makes reach the client after the action whose effect must not) or an ack, then checks
  what came before it. ``Beacon`` sends such markers through a chosen server.
- ``RawSocket`` speaks Engine.IO / Socket.IO by hand over ``websockets`` (for clients that
  misbehave on purpose, e.g. never answer PINGs).

Nothing here sleeps a fixed time to wait for something: every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import socketio
from channels.db import database_sync_to_async
from django.conf import settings
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from accounts.models import User
from accounts.tokens import issue_access_token, issue_token_pair
from notes.models import Note, NoteGrant, Permission, PrincipalType
from realtime.conf import DEFAULTS as REALTIME_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = ROOT / ".venv" / "bin" / "daphne"
SOCKETIO_PATH = "/ws/socket.io"
#: daphne's frame and message limits, as `make run` and docs/operations.md start it: room for
#: a y-websocket sync of a document at DOC_MAX_BYTES (10 MB) + 64 KiB.
DAPHNE_LIMITS = (
    "--websocket-max-message-size",
    "16777216",
    "--websocket-max-frame-size",
    "16777216",
)
#: Private profile fields that must never appear in anything another user (or a socket) gets.
PRIVATE_FIELDS = ("bio", "gender", "date_of_birth", "profile_image_url")

Predicate = Callable[[Any], bool]


# --- environment ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_tests() -> str:
    """A ``DATABASE_URL`` for the database this test process uses (pytest-django's test DB)."""
    db = settings.DATABASES["default"]
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = str(Path(db["NAME"]).resolve())
        return f"sqlite:///{name}"  # an absolute path gives sqlite:////abs/path
    if engine == "django.db.backends.postgresql":
        user = quote(db.get("USER") or "", safe="")
        password = db.get("PASSWORD") or ""
        credentials = f"{user}:{quote(password, safe='')}" if password else user
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        url = f"postgres://{credentials}@{host}:{port}/{quote(db['NAME'], safe='')}"
        options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str | int)}
        return f"{url}?{urlencode(options)}" if options else url
    raise RuntimeError(f"live tests do not know how to share a {engine} database")


#: Documented settings (docs/configuration.md) besides the realtime knobs a test may give a server.
SERVER_SETTINGS = (
    "LOG_LEVEL",
    "LOGIN_THROTTLE_RATE",
    "WS_TICKET_TTL",
    "TRUSTED_PROXIES",
    "MAX_REQUEST_BODY_BYTES",
    "DAPHNE_BODY_LIMIT",
    "CORS_ALLOWED_ORIGINS",
    "SERVER_API_RATE_LIMIT",
    "SERVER_API_CALL_TIMEOUT_MAX",
    "DEMO_ENABLED",
    "JWT_ACCESS_TTL",
    "METRICS_TOKEN",
    "METRICS_ALLOWED_ADDRESSES",
    "LOG_FORMAT",
    "LOG_ROOT_LEVEL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
)


def server_env(redis_url: str | None, knobs: dict[str, Any]) -> dict[str, str]:
    """The environment of a daphne subprocess (see module doc)."""
    env = dict(os.environ)
    for name in (*REALTIME_DEFAULTS, *SERVER_SETTINGS, "REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)  # inherited knobs would make the server's behaviour accidental
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": settings.SECRET_KEY,
            "JWT_SIGNING_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
            "DATABASE_URL": database_url_for_tests(),
            "LOGIN_THROTTLE_RATE": "",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    for name, value in knobs.items():
        if name not in REALTIME_DEFAULTS and name not in SERVER_SETTINGS:
            raise ValueError(f"{name} is neither a realtime knob nor in SERVER_SETTINGS")
        env[name] = str(value)
    return env


# --- daphne --------------------------------------------------------------------------------------


class DaphneServer:
    """One ``daphne config.asgi:application`` subprocess on 127.0.0.1."""

    READY_TIMEOUT = 30.0

    def __init__(
        self,
        log_dir: Path,
        name: str = "daphne",
        redis_url: str | None = None,
        knobs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.redis_url = redis_url
        self.knobs = dict(knobs or {})
        self.log_path = log_dir / f"{name}.log"
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{SOCKETIO_PATH}/?EIO=4&transport=websocket"

    SERVER = "daphne"

    def command(self) -> list[str]:
        """The command line serving the app on ``self.port``."""
        return [
            str(DAPHNE),
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            *DAPHNE_LIMITS,
            "config.asgi:application",
        ]

    def spawn(self, port: int | None = None) -> None:
        """Start the process on ``port`` (else a free one); does not wait for it to serve
        (see ``wait_ready``)."""
        self.port = port or free_port()
        with self.log_path.open("ab") as log:
            log.write(f"=== {self.name}: {self.SERVER} on port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=server_env(self.redis_url, self.knobs),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``GET /api/users/me/`` until it answers 401 (the app is up), with a deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                status, _ = self.request("GET", "/api/users/me/", timeout=1)
            except OSError:
                status = None
            if status == 401:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.log_tail()}")

    def start(self, attempts: int = 3) -> DaphneServer:
        """Spawn (unless already spawned) and wait until ready; a port lost to a race with
        another process is retried on a new port."""
        if self.process is None:
            self.spawn()
        for attempt in range(attempts):
            try:
                self.wait_ready()
                return self
            except RuntimeError:
                if attempt == attempts - 1 or "Address already in use" not in self.log_tail():
                    self.kill()
                    raise
                self.spawn()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit in time)."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the process dies without any cleanup (no disconnects, no registry writes)."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- HTTP ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: dict | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One HTTP request (blocking); returns (status, parsed JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    async def arequest(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """``request`` off the event loop."""
        return await asyncio.to_thread(self.request, method, path, **kwargs)

    async def login(self, username: str, password: str) -> dict:
        """Password login on this server; returns the token pair."""
        status, body = await self.arequest(
            "POST", "/api/auth/token/", body={"username": username, "password": password}
        )
        assert status == 200, (status, body)
        return body

    async def online_ids(self, channel_id: object, token: str) -> set[str]:
        """User ids ``GET /api/channels/<id>/presence/`` lists as online."""
        status, body = await self.arequest(
            "GET", f"/api/channels/{channel_id}/presence/", token=token
        )
        assert status == 200, (status, body)
        return {entry["id"] for entry in body["online"]}


class UvicornServer(DaphneServer):
    """The same app under uvicorn (its default WebSocket implementation), with the message
    limit docs/operations.md states."""

    SERVER = "uvicorn"

    def command(self) -> list[str]:
        return [
            str(ROOT / ".venv" / "bin" / "uvicorn"),
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ws-max-size",
            DAPHNE_LIMITS[1],
            "--no-access-log",
        ]


# --- tokens and event predicates ------------------------------------------------------------------


async def access(user: User) -> str:
    """A fresh access token for ``user``, issued in the test process (same signing key)."""
    return (await database_sync_to_async(issue_token_pair)(user))["access"]


async def short_lived(user: User, ttl_seconds: int) -> str:
    """An access token for ``user`` that expires ``ttl_seconds`` from now (may be negative)."""
    return await database_sync_to_async(issue_access_token)(user, ttl_seconds)


def assert_public(payload: object, user: User) -> None:
    """No private profile field name (nor the private bio text) anywhere in ``payload``."""
    text = json.dumps(payload)
    for field in PRIVATE_FIELDS:
        assert field not in text, f"private field {field!r} leaked: {text}"
    if user.bio:
        assert user.bio not in text, f"private bio leaked: {text}"


def typing_payload(channel_id: object, on: bool = True) -> dict:
    """An ``events:channel`` typing payload for ``channel_id`` (start, or stop)."""
    return {"channel_id": str(channel_id), "data": {"type": "typing", "data": {"typing": on}}}


def typing_event(channel_id: object, user_id: object) -> Predicate:
    """Predicate: an ``events:channel`` typing event in ``channel_id`` stamped ``user_id``."""

    def match(data: dict) -> bool:
        return (
            data["channel_id"] == str(channel_id)
            and data["data"]["type"] == "typing"
            and data["user"]["id"] == str(user_id)
        )

    return match


def presence_event(user_id: object, status: str) -> Predicate:
    """Predicate: an ``events:channel`` presence event for ``user_id`` with ``status``."""

    def match(data: dict) -> bool:
        return (
            data["data"]["type"] == "presence"
            and data["data"]["data"]["user_id"] == str(user_id)
            and data["data"]["data"]["status"] == status
        )

    return match


# --- polling -------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Any], timeout: float = 5.0, every: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def listing(room: str, size: int, timeout: float = 5.0) -> list:
    """``push.aonline(room)`` once it lists ``size`` sessions (an instance writes its joins
    and leaves a moment after they happen)."""
    from realtime import push

    async def sized() -> tuple | None:
        records = await push.aonline(room)
        return (records,) if len(records) == size else None

    return (await eventually(sized, timeout))[0]


# --- markers for "nothing arrived" ---------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """An event a client is made to receive after whatever must not reach it
    (``Client.assert_no_event_before``)."""

    event: str
    predicate: Predicate | None = None


class Beacon:
    """A note whose room the watched sockets join, to send them markers.

    ``flash(server)`` renames the note through ``server``'s REST API: ``note-events`` with the
    new title then reaches every socket in ``note.<id>``, published by ``server`` (after its
    commit, like every REST change) after everything ``server`` published before the call.
    Each process reads its one hub channel in order and writes a socket's frames in order, so
    whatever that server published earlier to a room a watched socket is in reaches the
    socket before the marker. A different event name (``note-events``), so it never shows in
    the ``events:channel`` sequences the tests assert."""

    _titles = itertools.count(1)

    def __init__(self, note_id: str, token: str) -> None:
        self.note_id = note_id
        self.token = token

    @classmethod
    async def create(cls, owner: User, readers: tuple[User, ...] = ()) -> Beacon:
        """A new note of ``owner`` that ``readers`` may read (and so join)."""

        @database_sync_to_async
        def make() -> str:
            note = Note.objects.create(owner=owner, title="beacon")
            for reader in readers:
                NoteGrant.objects.create(
                    note=note,
                    principal_type=PrincipalType.USER,
                    user=reader,
                    permission=Permission.READ,
                )
            return str(note.id)

        return cls(await make(), await access(owner))

    async def watch(self, *clients: Client) -> Beacon:
        """Put each client's socket into the note's room (``join-note``)."""
        for client in clients:
            ack = await client.call("join-note", {"note_id": self.note_id})
            assert ack == {"note_id": self.note_id}, (client, ack)
        return self

    async def flash(self, server: DaphneServer) -> Marker:
        """Rename the note through ``server``; the marker: ``note-events`` with that title."""
        title = f"beacon {next(self._titles)}"
        status, body = await server.arequest(
            "PATCH", f"/api/notes/{self.note_id}/", token=self.token, body={"title": title}
        )
        assert status == 200, (status, body)
        return Marker("note-events", lambda data: data.get("title") == title)


# --- Socket.IO client ----------------------------------------------------------------------------


class Client:
    """A python-socketio client that records everything it receives."""

    def __init__(
        self,
        server: DaphneServer,
        name: str = "client",
        transports: tuple[str, ...] | None = ("websocket",),
    ) -> None:
        """``transports``: python-socketio's (None = its default: polling, then the upgrade)."""
        self.server = server
        self.name = name
        self.transports = transports
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self.disconnects: list[Any] = []
        self.sio.on("*", self._on_any)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    def __repr__(self) -> str:
        return f"<Client {self.name} on :{self.server.port}>"

    async def _on_any(self, event: str, *args: Any) -> None:
        self.events.append((event, args[0] if len(args) == 1 else list(args)))

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_error = data

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnects.append(reason)

    @property
    def connected(self) -> bool:
        return self.sio.connected

    async def connect(
        self,
        token: str | None = None,
        *,
        auth: dict | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Client:
        """Connect namespace "/" with ``auth`` (default ``{"token": token}``) and ``query``
        parameters in the handshake URL (``{"ticket": …}``); raises
        ``socketio.exceptions.ConnectionError`` on refusal (``connect_error`` has why)."""
        if auth is None:
            auth = {"token": token} if token is not None else {}
        await self.sio.connect(
            self.server.url + (f"?{urlencode(query)}" if query else ""),
            headers=headers or {},
            auth=auth,
            transports=list(self.transports) if self.transports else None,
            namespaces=["/"],
            socketio_path=SOCKETIO_PATH,
            wait_timeout=10,
        )
        return self

    async def refused(
        self,
        token: str | None = None,
        *,
        auth: dict | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict:
        """Connect expecting a refusal; returns the ``connect_error`` payload."""
        try:
            await self.connect(token, auth=auth, headers=headers, query=query)
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError(f"{self.name}: connected, but a refusal was expected")
        error = self.connect_error
        assert isinstance(error, dict), f"{self.name}: refused without a connect_error payload"
        assert set(error) == {"message", "data"} and isinstance(error["message"], str), error
        assert not self.connected
        return error

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        """Emit with an ack and return the ack payload."""
        return await self.sio.call(event, data if data is not None else {}, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data if data is not None else {})

    async def join(self, token: str | None = None) -> dict:
        """``user-join`` (with the token, as Open WebUI sends it); returns the ack."""
        return await self.call("user-join", {"auth": {"token": token}} if token else {})

    def received(self, event: str, predicate: Predicate | None = None) -> list[Any]:
        """Payloads of ``event`` received so far (that match ``predicate``)."""
        return [
            data
            for name, data in self.events
            if name == event and (predicate is None or predicate(data))
        ]

    async def wait_for(
        self, event: str, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> Any:
        """The first payload of ``event`` matching ``predicate`` (received or to come)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(event, predicate)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: no {event!r} matching within {timeout}s; got {self.events!r}"
                )
            await asyncio.sleep(0.02)

    async def assert_no_event_before(
        self,
        event: str,
        *markers: Marker | Awaitable[Any],
        predicate: Predicate | None = None,
        since: int = 0,
        timeout: float = 5.0,
    ) -> None:
        """Fail if ``event`` (matching ``predicate``) was received, from event index ``since``
        on, before the last of ``markers``; waits for every marker first (``timeout`` each).

        A marker is a ``Marker`` (an event this client will receive) or an awaitable request
        on this socket (e.g. ``self.call("heartbeat")``: everything sent to the socket before
        its ack is recorded before it returns). The caller makes each marker follow, AFTER the
        action whose effect must not arrive, the ordered path that effect would have taken —
        published by the same server after it (one hub channel per process, read in order;
        per socket one outbound queue), or the same socket's own order — and says why in a
        comment. The quiet period is then over by an event, not by a timeout."""
        end, marker_at = since, set()
        for marker in markers:
            if isinstance(marker, Marker):
                at = await self._position(marker, since, timeout)
                marker_at.add(at)
                end = max(end, at)
            else:
                await marker
                end = max(end, len(self.events))
        found = [
            data
            for i, (name, data) in enumerate(self.events[:end])
            if i >= since
            and i not in marker_at
            and name == event
            and (predicate is None or predicate(data))
        ]
        assert not found, f"{self.name}: unexpected {event!r} before the marker: {found!r}"

    async def _position(self, marker: Marker, since: int, timeout: float) -> int:
        """The index in ``events`` of the first ``marker`` from index ``since`` on (waited for)."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(since, len(self.events)):
                name, data = self.events[i]
                if name == marker.event and (marker.predicate is None or marker.predicate(data)):
                    return i
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: marker {marker.event!r} not received within {timeout}s; "
                    f"got {self.events[since:]!r}"
                )
            await asyncio.sleep(0.02)

    async def wait_disconnected(self, timeout: float = 5.0) -> None:
        """Wait until the server has disconnected this client."""
        try:
            await eventually(lambda: self.disconnects and not self.sio.connected, timeout)
        except AssertionError:
            raise AssertionError(f"{self.name}: still connected after {timeout}s") from None

    async def disconnect(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        await self.sio.shutdown()


# --- raw Engine.IO / Socket.IO -------------------------------------------------------------------


class RawSocket:
    """A WebSocket speaking Engine.IO v4 / Socket.IO v5 by hand; answers nothing by itself."""

    def __init__(self, server: DaphneServer) -> None:
        self.server = server
        self.ws: ClientConnection | None = None
        self.open: dict = {}
        self.sid = ""
        self.frames: list[str | bytes] = []

    async def handshake(self, token: str, timeout: float = 5.0) -> RawSocket:
        """Receive OPEN, send CONNECT with ``{"token"}``, receive the CONNECT reply."""
        self.ws = await ws_connect(self.server.ws_url, ping_interval=None)
        first = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(first, str) and first.startswith("0"), first
        self.open = json.loads(first[1:])
        await self.ws.send("40" + json.dumps({"token": token}))
        reply = await self.next_frame(lambda f: isinstance(f, str) and f.startswith("4"), timeout)
        assert reply.startswith("40{"), reply
        self.sid = json.loads(reply[2:])["sid"]
        return self

    async def next_frame(self, predicate: Predicate, timeout: float = 5.0) -> str | bytes:
        """Read frames (recording them) until one matches ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.ws.recv()
                self.frames.append(frame)
                if predicate(frame):
                    return frame

    async def closed_by_server(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Read (never answering) until the server closes; returns (close code, reason)."""
        try:
            await self.next_frame(lambda frame: False, timeout)
        except ConnectionClosed as closed:
            received = closed.rcvd
            return (received.code, received.reason) if received else (None, None)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


# --- raw Engine.IO over HTTP long-polling -------------------------------------------------------


class RawPolling:
    """Engine.IO v4 long-polling spoken by hand over aiohttp (answers nothing by itself).

    ``handshake`` -> the OPEN; ``post(packets)`` sends one payload; ``get()`` returns the next
    payload's packets (binary ones as bytes). ``request`` is the bare HTTP request."""

    def __init__(self, server: DaphneServer) -> None:
        import aiohttp

        self.server = server
        self.http = aiohttp.ClientSession()
        self.open: dict = {}
        self.sid = ""

    def url(self, sid: str | None = None, via: DaphneServer | None = None, **query: str) -> str:
        """The polling URL on ``via`` (default: the server given at creation)."""
        params = {"EIO": "4", "transport": "polling", **query}
        if sid is not None:
            params["sid"] = sid
        return f"{(via or self.server).url}{SOCKETIO_PATH}/?{urlencode(params)}"

    async def request(
        self, method: str, url: str, body: bytes | str | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.http.request(method, url, data=body, headers=headers) as response:
            return response.status, dict(response.headers), await response.read()

    async def handshake(self, via: DaphneServer | None = None, **headers: str) -> dict:
        status, _, body = await self.request("GET", self.url(via=via), **headers)
        assert status == 200, (status, body)
        text = body.decode()
        assert text.startswith("0{"), text
        self.open = json.loads(text[1:])
        self.sid = self.open["sid"]
        return self.open

    async def post(self, *packets: str, via: DaphneServer | None = None) -> tuple[int, bytes]:
        url = self.url(self.sid, via)
        status, _, body = await self.request("POST", url, "\x1e".join(packets))
        return status, body

    async def get(self, via: DaphneServer | None = None) -> list[str | bytes]:
        status, _, body = await self.request("GET", self.url(self.sid, via))
        assert status == 200, (status, body)
        packets: list[str | bytes] = []
        for packet in body.decode().split("\x1e"):
            packets.append(base64.b64decode(packet[1:]) if packet.startswith("b") else packet)
        return packets

    async def connect(self, token: str, via: DaphneServer | None = None) -> str:
        """Handshake, CONNECT with ``token``; returns the Socket.IO sid."""
        await self.handshake(via)
        status, _ = await self.post("40" + json.dumps({"token": token}), via=via)
        assert status == 200
        while True:
            for packet in await self.get(via):
                if isinstance(packet, str) and packet.startswith("40{"):
                    return json.loads(packet[2:])["sid"]

    async def join(self, via: DaphneServer | None = None) -> dict:
        """``user-join`` (ack id 1); returns its ack."""
        status, _ = await self.post('421["user-join",{}]', via=via)
        assert status == 200
        while True:
            for packet in await self.get(via):
                if isinstance(packet, str) and packet.startswith("431["):
                    return json.loads(packet[3:])[0]

    async def close(self) -> None:
        await self.http.close()

"""Fixtures of the server-API tests: keys made the way an operator makes them, an HTTP caller
(Django's async test client through the whole Django stack), and the in-process Socket.IO
speaker of the realtime tests (``sio``) to see what reaches sockets."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from serverapi.models import ApiKey, Scope
from tests.realtime.conftest import sio  # noqa: F401  (the fixture, for these tests too)

ALL_SCOPES = tuple(Scope.values)


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    @property
    def code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if error else None


class ServerApi:
    """Calls ``/api/server/…`` with ``Authorization: Bearer <key>`` (or what a test gives)."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.client = AsyncClient()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        sent = dict(headers if headers is not None else {})
        if headers is None and self.key is not None:
            sent["Authorization"] = f"Bearer {self.key}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = await self.client.generic(
            method,
            "/api/server/" + path.lstrip("/"),
            data=data,
            content_type="application/json",
            headers=sent,
        )
        content = response.content
        return Answer(response.status_code, json.loads(content) if content else None, response)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.request("POST", path, body if body is not None else {}, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("DELETE", path, **kwargs)


@pytest.fixture
def make_key(db) -> Callable[..., tuple[ApiKey, str]]:
    """``make_key(*scopes, name=…)`` -> (ApiKey, the clear key); every scope by default."""

    def make(*scopes: str, name: str = "backend") -> tuple[ApiKey, str]:
        return ApiKey.issue(name, list(scopes or ALL_SCOPES))

    return make


@pytest.fixture
def server_api(make_key) -> Callable[..., ServerApi]:
    """``await server_api(*scopes)`` -> a caller with a new key of those scopes (all by
    default); ``await server_api(key=…)`` with that key (``None``: no header)."""

    async def make(*scopes: str, key: str | object | None = ...) -> ServerApi:
        if key is ...:
            return ServerApi((await sync_to_async(make_key)(*scopes))[1])
        return ServerApi(key)

    return make

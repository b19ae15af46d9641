"""Fixtures for the channel API tests: users with private fields, API helpers, and a listener
on the real (in-memory) channel layer that captures what ``realtime.push`` publishes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rest_framework.test import APIClient

from accounts.models import User

#: Values of private profile fields set on every test user; none may appear in any payload.
PRIVATE_VALUES = {
    "bio": "SECRET-BIO",
    "gender": "SECRET-GENDER",
    "date_of_birth": date(1990, 4, 5),
    "profile_image_url": "https://img.example/SECRET-IMAGE.png",
}
PRIVATE_KEYS = {"bio", "gender", "date_of_birth", "profile_image_url", "email", "password"}
PRIVATE_STRINGS = ("SECRET-", "1990-04-05", "@private.example")


#: Every message payload (REST and events) has exactly these keys (docs/channels.md).
MESSAGE_KEYS = {
    "id",
    "channel_id",
    "parent_id",
    "author",
    "content",
    "data",
    "created_at",
    "edited_at",
    "deleted_at",
    "reactions",
    "reply_count",
}


@pytest.fixture
def person(make_user) -> Callable[..., User]:
    """``person("carol")`` -> a user whose private fields are all set to recognisable values."""

    def make(username: str, **fields) -> User:
        values = {**PRIVATE_VALUES, "email": f"{username}@private.example", **fields}
        return make_user(username, name=username.capitalize(), **values)

    return make


@pytest.fixture
def owner(person) -> User:
    return person("olive")


@pytest.fixture
def member(person) -> User:
    return person("mike")


@pytest.fixture
def outsider(person) -> User:
    return person("otto")


@pytest.fixture
def client_of(auth_api) -> Callable[[User], APIClient]:
    """``client_of(user)`` -> an APIClient with that user's bearer token (cached per user)."""
    clients: dict = {}

    def get(user: User) -> APIClient:
        if user.pk not in clients:
            clients[user.pk] = auth_api(user)
        return clients[user.pk]

    return get


@pytest.fixture
def make_channel(client_of) -> Callable[..., dict]:
    """``make_channel(creator, type=..., members=[users], **body)`` -> the created channel."""

    def make(creator: User, *, members: tuple = (), **body) -> dict:
        body.setdefault("type", "group")
        body.setdefault("name", f"{body['type']}-channel")
        body["member_ids"] = [str(u.pk) for u in members]
        response = client_of(creator).post("/api/channels/", body)
        assert response.status_code in (200, 201), response.content
        return response.json()

    return make


@pytest.fixture
def post(client_of) -> Callable[..., dict]:
    """``post(user, channel_id, content, **extra)`` -> the created message (asserts 201)."""

    def send(user: User, channel_id: str, content: str = "hi", **extra) -> dict:
        response = client_of(user).post(
            f"/api/channels/{channel_id}/messages/", {"content": content, **extra}
        )
        assert response.status_code == 201, response.content
        return response.json()

    return send


def assert_no_private_data(value: object) -> None:
    """No private field name as a key and no private value anywhere in ``value``."""
    if isinstance(value, dict):
        assert not PRIVATE_KEYS & set(value), f"private key in {value}"
        for item in value.values():
            assert_no_private_data(item)
    elif isinstance(value, list | tuple):
        for item in value:
            assert_no_private_data(item)
    elif isinstance(value, str):
        assert not any(s in value for s in PRIVATE_STRINGS), f"private value: {value}"


class LayerListener:
    """One test channel on the channel layer, subscribed to groups (rooms).

    Receiving never waits: ``drain`` sends a marker to its own channel and reads up to it, so
    an empty result proves nothing was published before the call (and no asyncio queue is
    bound to a throw-away event loop)."""

    MARKER = "test.marker"

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.name = async_to_sync(self.layer.new_channel)("test.listener.")

    def subscribe(self, *groups: str) -> LayerListener:
        for group in groups:
            async_to_sync(self.layer.group_add)(group, self.name)
        return self

    def drain(self) -> list[dict]:
        async def read() -> list[dict]:
            await self.layer.send(self.name, {"type": self.MARKER})
            received = []
            while (message := await self.layer.receive(self.name))["type"] != self.MARKER:
                received.append(message)
            return received

        return async_to_sync(read)()

    def events(self) -> list[tuple[str, object]]:
        """The Socket.IO events of the ``chorus.emit`` messages received: (name, payload)."""
        found = []
        for message in self.drain():
            if message["type"] == "chorus.emit":
                found.append(decode_frame(message["frame"]))
        return found


def decode_frame(frame: str) -> tuple[str, object]:
    """``42["name",payload]`` -> (name, payload)."""
    assert frame.startswith("42"), frame
    name, payload = json.loads(frame[2:])
    return name, payload


@pytest.fixture
def listen() -> Callable[..., LayerListener]:
    """``listen("channel.<id>", ...)`` -> a LayerListener (layers are fresh for every test)."""
    return lambda *groups: LayerListener().subscribe(*groups)

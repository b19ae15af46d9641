"""What the Python peers share: the bench fixture (users, channels, notes) and the JWT check.

The peers hold users and memberships in memory (loaded from the fixture ``bench/run``
writes): they do no database work at all, which favours them against Chorus — Open WebUI's
real handlers query its database on connect, ``user-join``, ``heartbeat`` and document events.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import jwt


class Fixture:
    def __init__(self, path: str) -> None:
        data = json.loads(Path(path).read_text())
        self.secret = data["jwt_secret"]
        self.users = {u["id"]: u for u in [*data["users"], data["sender"]]}
        self.channels_of: dict[str, list[str]] = defaultdict(list)
        broadcast = data["broadcast_channel"]
        for user_id in self.users:
            self.channels_of[user_id].append(broadcast)
        for user, channel in zip(data["users"], data["solo_channels"], strict=False):
            self.channels_of[user["id"]].append(channel)
        self.editors: dict[str, set[str]] = {
            note["id"]: {data["users"][i]["id"] for i in note["editors"]} for note in data["notes"]
        }

    def user_for(self, token: object) -> dict | None:
        """The token's user: HS256 signature, expiry, ``token_type == access``, user known."""
        if not isinstance(token, str) or not token:
            return None
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return None
        if claims.get("token_type") != "access":
            return None
        return self.users.get(str(claims.get("user_id")))


def note_id_of(document_id: object) -> str:
    text = str(document_id or "")
    for prefix in ("note:", "note_"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return ""

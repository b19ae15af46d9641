"""The OpenAPI schema, checked against the running server: schemathesis generates requests for
every operation of the LIVE ``/api/schema/`` of a daphne and checks each answer — no 5xx, the
status, content type and body as the schema says, 401 when the credential is left out.

Every operation the schema lists is run, so an endpoint added later is covered without editing
this module. Path parameters are drawn both from what the schema allows (random ids: 404) and
from real objects: the caller's own (alice) and another user's (bob) that the caller may not
see or change (object-level access). The credential is chosen by path prefix (``CREDENTIALS``):
a user's JWT under ``/api/``, an API key with every scope under ``/api/server/`` (the server
API); an operation outside every prefix fails the test.

Bounded: ``POSITIVE_EXAMPLES`` valid and ``NEGATIVE_EXAMPLES`` invalid requests per operation,
derandomized (the same cases on every run), one daphne for the whole module's test.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import User
from accounts.tokens import issue_token_pair
from channels_app.models import (
    Channel,
    ChannelMember,
    ChannelType,
    MemberRole,
    Message,
    Reaction,
)
from notes.models import NoteGrant, Permission, PrincipalType
from notes.services import create_note
from tests.live.harness import DaphneServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

POSITIVE_EXAMPLES = 8
NEGATIVE_EXAMPLES = 4
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,  # a 2xx with the credential: the same request without one must be a 401
]


def user_bearer(user: User) -> dict[str, str]:
    """A fresh access token of ``user`` for each request: a case may revoke the last one
    (``/api/auth/logout/``, ``/api/auth/revoke-all/``)."""
    return {"Authorization": f"Bearer {issue_token_pair(user)['access']}"}


#: The server API's scopes: its key in this test holds them all.
SERVER_SCOPES = ("publish", "call", "presence", "disconnect")


def server_api_key(user: User) -> dict[str, str]:
    """A new server-API key with every scope (``manage.py create_api_key``, which prints the
    key alone on stdout), for each request: no case meets another's per-key rate limit."""
    out = io.StringIO()
    scopes = [arg for scope in SERVER_SCOPES for arg in ("--scope", scope)]
    call_command(
        "create_api_key", "--name", "schemathesis", *scopes, stdout=out, stderr=io.StringIO()
    )
    return {"Authorization": f"Bearer {out.getvalue().strip()}"}


#: Path prefix -> the headers that authenticate a request there (first match wins): the server
#: API (docs/server-api.md) by API key, the rest of /api/ as a user. A family of endpoints with
#: another kind of credential gets its entry here.
CREDENTIALS: list[tuple[str, Callable[[User], dict[str, str]]]] = [
    ("/api/server/", server_api_key),
    ("/api/", user_bearer),
]


def credentials_for(path: str, user: User) -> dict[str, str]:
    for prefix, headers in CREDENTIALS:
        if path.startswith(prefix):
            return headers(user)
    raise AssertionError(f"{path}: no credentials for this path in CREDENTIALS")


def scenes(alice: User, bob: User) -> list[dict[str, str]]:
    """Real objects for the path parameters, by parameter name, that belong together: in
    alice's channel and on her note (she may act, on bob's membership or her own), and bob's
    private channel and note (she may not see them: 404). Made anew for each operation, as a
    previous one may have deleted them."""

    def channel(owner: User, *members: User) -> Channel:
        made = Channel.objects.create(type=ChannelType.GROUP, name="c", owner=owner)
        ChannelMember.objects.create(channel=made, user=owner, role=MemberRole.OWNER)
        for member in members:
            ChannelMember.objects.create(channel=made, user=member)
        return made

    def scene(owner: User, member: User, *, private: bool) -> dict[str, str]:
        room = channel(owner) if private else channel(owner, bob)
        message = Message.objects.create(channel=room, author=owner, content="hello")
        Reaction.objects.create(message=message, user=owner, name="ok")
        note = create_note(owner, "n")
        grant = NoteGrant.objects.create(
            note=note, principal_type=PrincipalType.EVERYONE, permission=Permission.READ
        )
        ids = {"channel_id": room.pk, "message_id": message.pk, "note_id": note.pk}
        return {
            **{name: str(value) for name, value in ids.items()},
            "user_id": str(member.pk),
            "grant_id": str(grant.pk),
        }

    return [
        scene(alice, bob, private=False),
        scene(alice, alice, private=False),
        scene(bob, bob, private=True),
    ]


def run_operation(operation: Any, server: DaphneServer, alice: User, bob: User) -> None:
    """``POSITIVE_EXAMPLES`` + ``NEGATIVE_EXAMPLES`` generated requests, each checked."""
    real = st.none() | st.sampled_from(scenes(alice, bob))
    session = requests.Session()

    def check(case: Any, scene: dict[str, str] | None) -> None:
        for name in case.path_parameters or {}:
            if scene is not None and name in scene:
                case.path_parameters[name] = scene[name]
        headers = credentials_for(operation.path, alice)
        case.call_and_validate(base_url=server.url, session=session, headers=headers, checks=CHECKS)

    for mode, examples in (
        (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
        (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
    ):
        strategy = operation.as_strategy(generation_mode=mode)
        test = settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy, scene=real)(check))
        test()


def test_every_operation_of_the_live_schema_answers_as_described(servers, make_user):
    server = servers(LOG_LEVEL="WARNING")
    # Swagger UI and every file it loads come from this server (no CDN: works offline)
    page = requests.get(f"{server.url}/api/docs/", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(assets) >= 3, page.text
    for asset in assets:
        assert requests.get(server.url + asset, timeout=10).status_code == 200, asset
    alice, bob = make_user("alice", name="Alice"), make_user("bob", name="Bob")
    schema = schemathesis.openapi.from_url(f"{server.url}/api/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30  # every endpoint of accounts, channels_app and notes
    for operation in operations:
        run_operation(operation, server, alice, bob)

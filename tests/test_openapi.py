"""The OpenAPI schema (drf-spectacular, config/openapi.py) and Swagger UI, through Django's test
client: valid and warning-free, every API route in it, served without a credential, and the UI
loading nothing from outside the server. Its agreement with the running server is
tests/live/test_schema_live.py (schemathesis)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

pytestmark = pytest.mark.django_db

#: The schema's own views, not part of the API it describes.
NOT_DESCRIBED = {"/api/schema/", "/api/docs/"}


def test_schema_validates_without_a_warning(tmp_path):
    """``manage.py spectacular --validate --fail-on-warn``: any warning (an endpoint whose
    shapes cannot be told, a name collision) fails; the result is a valid OpenAPI 3 document."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.")


def api_routes(patterns=None, prefix: str = "") -> set[str]:
    """Every route of the URL map under /api/, as an OpenAPI path (``{name}`` parameters)."""
    routes: set[str] = set()
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(entry.pattern)
        if not route.startswith("api/"):
            continue  # the admin
        assert isinstance(entry.pattern, RoutePattern), entry  # as every API route is
        if isinstance(entry, URLResolver):
            routes |= api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


def test_every_api_route_is_described_and_the_schema_needs_no_credential(client):
    response = client.get("/api/schema/?format=json", HTTP_HOST="localhost")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert set(schema["paths"]) == api_routes() - NOT_DESCRIBED
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    me = schema["paths"]["/api/users/me/"]["get"]
    assert me["security"] == [{"jwtAuth": []}]
    error = {"$ref": "#/components/schemas/Error"}
    assert me["responses"]["401"]["content"]["application/json"]["schema"] == error
    login = schema["paths"]["/api/auth/token/"]["post"]
    assert {"400", "401", "403", "413", "415", "429"} <= set(login["responses"])
    assert login["security"] == [{}]


def test_swagger_ui_loads_only_files_of_the_server(client):
    """Works offline: every script, style sheet and icon of /api/docs/ is a static file of
    drf-spectacular-sidecar, none from a CDN."""
    response = client.get("/api/docs/", HTTP_HOST="localhost")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/schema/" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset

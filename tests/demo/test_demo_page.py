"""The demo page at ``/`` (demo/views.py, docs/demo.md) over HTTP: the switch, the page, and
what it says before its front end is built. In a browser: tests/live/test_demo_live.py."""

from __future__ import annotations

import pytest
from django.test import Client

from demo import views
from tests.test_project import json_from_subprocess

pytestmark = pytest.mark.django_db


def test_disabled_demo_is_404_as_any_unknown_url(settings):
    settings.DEMO_ENABLED = False
    response = Client().get("/")
    assert response.status_code == 404
    assert b"demo.js" not in response.content


def test_built_page_loads_the_bundle_and_shows_the_login_form(settings, monkeypatch):
    settings.DEMO_ENABLED = True
    # what is found on disk: any existing static file stands for the built bundle here
    monkeypatch.setattr(views, "BUNDLE", "admin/js/core.js")
    response = Client().get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<script type="module" src="/static/demo/demo.js">' in page
    assert 'href="/static/demo/demo.css"' in page
    assert 'id="login"' in page and 'id="editor"' in page and "not-built" not in page


def test_unbuilt_page_says_how_to_build_it(settings, monkeypatch):
    settings.DEMO_ENABLED = True
    monkeypatch.setattr(views, "BUNDLE", "demo/never-built.js")
    response = Client().get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="not-built"' in page and "make demo" in page
    assert "demo.js" not in page and 'id="login"' not in page


def test_api_is_not_shadowed_by_the_demo(settings):
    settings.DEMO_ENABLED = True
    response = Client().get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),  # embedded default: no DATABASE_URL
        ({"DATABASE_URL": "postgres://chorus@db.internal/chorus"}, False),
        ({"DATABASE_URL": "postgres://chorus@db.internal/chorus", "DEMO_ENABLED": "true"}, True),
        ({"DEMO_ENABLED": "false"}, False),
    ],
)
def test_demo_is_on_by_default_only_in_the_embedded_setup(tmp_path, env, enabled):
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps({'demo': settings.DEMO_ENABLED}))"
    )
    assert json_from_subprocess(tmp_path, code, **env) == {"demo": enabled}

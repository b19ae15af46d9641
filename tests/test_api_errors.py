"""Every REST error is JSON in the ``{"error": {"code", "message"}}`` shape (config/api_errors.py,
config/parsers.py), through Django's test client."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory

from config import api_errors, urls

pytestmark = pytest.mark.django_db

LOGIN = "/api/auth/token/"


def post_raw(api, path: str, text: str):
    return api.generic("POST", path, text.encode(), content_type="application/json")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"username": ' * 100_000 + "1" + "}" * 100_000,
        '{"username": "alice", "password": NaN}',
        '{"username": "alice", "password": Infinity}',
        '{"username": "alice", "password": -Infinity}',
        '{"username": "alice", "password": 1e999}',
        '{"username": "al\\u0000ice", "password": "x"}',
        '{"username": "alice", "pass\\u0000word": "x"}',
        '{"username": "alice", "password": "x", "extra": ["\\u0000"]}',
        "[" * 65 + "]" * 65,
        '{"username": "alice"',
        '"\\udc00 lone"',
    ],
)
def test_unsafe_or_invalid_json_is_400_bad_request_even_unauthenticated(api, text):
    assert_error(post_raw(api, LOGIN, text), 400, "bad_request")


def test_unsafe_json_is_refused_on_authenticated_endpoints_too(auth_api, alice):
    response = post_raw(auth_api(alice), "/api/channels/", '{"name": "a\\u0000b"}')
    assert_error(response, 400, "bad_request")


def test_body_over_djangos_old_default_is_parsed_not_refused(api, settings):
    """DATA_UPLOAD_MAX_MEMORY_SIZE equals MAX_REQUEST_BODY_BYTES: 3 MB is a normal request."""
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.MAX_REQUEST_BODY_BYTES
    text = json.dumps({"username": "a" * 3_000_000, "password": "x"})
    body = assert_error(post_raw(api, LOGIN, text), 400, "bad_request")
    assert "username" in body["error"]["fields"]


def test_request_data_too_big_is_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = post_raw(api, LOGIN, '{"username": "alice", "password": "x"}')
    assert_error(response, 413, "too_large")


def test_django_400_page_is_json_under_api_and_html_elsewhere(client):
    api_response = client.get("/api/users/me/", HTTP_HOST="evil.example")  # DisallowedHost
    assert_error(api_response, 400, "bad_request")
    page = client.get("/admin/", HTTP_HOST="evil.example")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


def test_handlers_are_wired():
    assert urls.handler400 == "config.api_errors.bad_request"
    assert urls.handler404 == "config.api_errors.not_found"
    assert urls.handler500 == "config.api_errors.server_error"


def test_500_handler_is_json_under_api_and_html_elsewhere():
    factory = RequestFactory()
    assert_error(api_errors.server_error(factory.get("/api/x/")), 500, "internal_error")
    page = api_errors.server_error(factory.get("/admin/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_400_handler_answers_request_data_too_big_as_413_anywhere():
    response = api_errors.bad_request(RequestFactory().post("/admin/"), RequestDataTooBig("x"))
    assert_error(response, 413, "too_large")

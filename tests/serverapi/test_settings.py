"""The server API's settings: read from the environment, and refused by ``manage.py check``
when they cannot work."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tests.test_project import json_from_subprocess

CODE = (
    "import json, django; from django.conf import settings; django.setup();"
    " print(json.dumps([settings.SERVER_API_RATE_LIMIT, settings.SERVER_API_CALL_TIMEOUT_MAX]))"
)


def test_defaults_and_the_environment(tmp_path, monkeypatch):
    for name in ("SERVER_API_RATE_LIMIT", "SERVER_API_CALL_TIMEOUT_MAX"):
        monkeypatch.delenv(name, raising=False)
    assert json_from_subprocess(
        tmp_path, CODE, SERVER_API_RATE_LIMIT="0", SERVER_API_CALL_TIMEOUT_MAX="2.5"
    ) == [0, 2.5]


def test_the_documented_defaults():
    """The values of docs/configuration.md (the test process sets neither variable)."""
    from django.conf import settings

    assert (settings.SERVER_API_RATE_LIMIT, settings.SERVER_API_CALL_TIMEOUT_MAX) == (1000, 300.0)


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("SERVER_API_RATE_LIMIT", -1, "serverapi.E001"),
        ("SERVER_API_CALL_TIMEOUT_MAX", 0, "serverapi.E002"),
    ],
)
def test_impossible_values_fail_the_check(settings, name, value, check_id):
    setattr(settings, name, value)
    with pytest.raises(SystemCheckError, match=check_id):
        call_command("check", "--fail-level", "ERROR")

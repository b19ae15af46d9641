"""``manage.py check`` refuses realtime settings that cannot work together."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_defaults_pass():
    call_command("check", "--fail-level", "ERROR")


@pytest.mark.parametrize(
    ("knobs", "check_id"),
    [
        ({"SESSION_TTL": 30}, "realtime.E001"),
        ({"DOC_SAVE_DEBOUNCE": 5, "DOC_SAVE_MAX_WAIT": 1}, "realtime.E002"),
        ({"CONNECT_TIMEOUT": 0}, "realtime.E003"),
        ({"SEND_STALL_TIMEOUT": -1}, "realtime.E003"),
        ({"RECOVERY_WINDOW": -1}, "realtime.E004"),
        ({"RECOVERY_SKIP_USER_AGENTS": "python("}, "realtime.E005"),
        ({"TRANSPORT_PATCHES_OFF": ("fast-upgrades",)}, "realtime.E006"),  # a typo
        ({"TRANSPORT_PATCHES_OFF": "gc"}, "realtime.E006"),  # a string, not a list
    ],
)
def test_contradictory_settings_fail_the_check(settings, knobs, check_id):
    settings.CHORUS = knobs
    with pytest.raises(SystemCheckError, match=check_id):
        call_command("check", "--fail-level", "ERROR")

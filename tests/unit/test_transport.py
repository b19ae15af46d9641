"""The transport seam's switches: a patch is installed only when not switched off and when
every library it patches is at a version it was tested with (else a warning)."""

from __future__ import annotations

import logging
from importlib import metadata

import pytest

from realtime import transport


def test_every_piece_is_enabled_at_the_pinned_versions(settings):
    settings.CHORUS = {}
    for piece in transport.PIECES:
        assert transport.enabled(piece), piece


def test_a_switched_off_piece_is_not_enabled(settings):
    settings.CHORUS = {"TRANSPORT_PATCHES_OFF": ("fast-upgrade", "gc")}
    assert not transport.enabled("fast-upgrade")
    assert not transport.enabled("gc")
    assert transport.enabled("websocket-closes")


def test_an_untested_version_disables_the_pieces_that_patch_it(settings, monkeypatch, caplog):
    settings.CHORUS = {}
    monkeypatch.setitem(transport.TESTED, "daphne", frozenset({"0.0.1"}))
    with caplog.at_level(logging.WARNING, logger="chorus.realtime.transport"):
        assert not transport.enabled("fast-upgrade")
        assert transport.enabled("autobahn-log")  # autobahn only: still at a tested version
    assert f"daphne=={metadata.version('daphne')}" in caplog.text
    assert "fast-upgrade" in caplog.text


@pytest.mark.parametrize("library", sorted(transport.TESTED))
def test_the_tested_versions_are_the_pinned_ones(library):
    """``TESTED`` follows requirements.txt: bumping a pin means re-checking the patches."""
    assert metadata.version(library) in transport.TESTED[library]

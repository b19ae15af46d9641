"""deploy/render.py: the nginx site template filled for N instances, or refused."""

from __future__ import annotations

import pytest

from tests.live.nginxproc import load_render


def test_every_marker_is_filled_with_one_server_line_per_instance():
    site = load_render().render("443 ssl", "chat.example.com", ["127.0.0.1:8001", "10.0.0.2:8002"])
    assert "{{" not in site and "}}" not in site
    assert "    listen 443 ssl;" in site
    assert "    server_name chat.example.com;" in site
    assert "    server 127.0.0.1:8001 max_fails=1 fail_timeout=5s;" in site
    assert "    server 10.0.0.2:8002 max_fails=1 fail_timeout=5s;" in site


@pytest.mark.parametrize(
    ("listen", "name", "instances"),
    [
        ("80", "_", []),  # no instance
        ("80; include /etc/passwd", "_", ["127.0.0.1:8001"]),  # a second directive
        ("80", "a { }", ["127.0.0.1:8001"]),
        ("80", "_", ["127.0.0.1:8001\nserver evil:1"]),
        ("", "_", ["127.0.0.1:8001"]),
    ],
)
def test_values_that_are_not_one_directive_argument_are_refused(listen, name, instances):
    with pytest.raises(ValueError):
        load_render().render(listen, name, instances)

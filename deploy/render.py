#!/usr/bin/env python3
"""Render deploy/nginx/chorus.conf for N daphne instances (standard library only).

    python3 deploy/render.py --listen 80 --server-name chat.example.com \
        --instance 127.0.0.1:8001 --instance 127.0.0.1:8002 > /etc/nginx/sites-enabled/chorus

``--listen`` is everything after nginx's ``listen`` (e.g. ``"443 ssl"``: then add your
``ssl_certificate`` lines to the rendered file). Every ``{{marker}}`` must be filled.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent / "nginx" / "chorus.conf"


def render(listen: str, server_name: str, instances: list[str], site: Path = SITE) -> str:
    """The site file with its markers filled; ValueError for a marker left or a bad value."""
    if not instances:
        raise ValueError("at least one instance (host:port) is needed")
    for value in (listen, server_name, *instances):
        if not value or re.search(r"[;{}\n]", value):
            raise ValueError(f"not a value for an nginx directive: {value!r}")
    values = {
        "listen": listen,
        "server_name": server_name,
        "upstreams": "\n".join(
            f"    server {address} max_fails=1 fail_timeout=5s;" for address in instances
        ),
    }
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], site.read_text())
    if "{{" in text:
        raise ValueError("a marker was left unfilled")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="80")
    parser.add_argument("--server-name", default="_")
    parser.add_argument("--instance", action="append", default=[], help="host:port, repeated")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.listen, args.server_name, args.instance))
    return 0


if __name__ == "__main__":
    sys.exit(main())

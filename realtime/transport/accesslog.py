"""Under daphne: no credential in its access log.

daphne's access log (``daphne.access.AccessLogGenerator``, on stdout by default: verbosity 1)
writes each HTTP request's whole URI, query string included — and a client may send a token
or a connection ticket there (``?token=`` on Engine.IO long-polling, which Chorus refuses but
cannot keep the client from sending; socket.io-client sends its ``query`` on every request).
``install`` wraps the generator's ``__call__`` so every ``path`` it is given passes through
``config.logs.redact`` first (credential query values and JWT-shaped text become
``[redacted]``). WebSocket entries carry the path without its query already; redacted all
the same. A no-op unless daphne is loaded; idempotent.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import sys

from config.logs import redact


def install() -> None:
    if "daphne.access" not in sys.modules and "daphne.server" not in sys.modules:
        return
    from daphne.access import AccessLogGenerator

    if getattr(AccessLogGenerator.__call__, "chorus_redacts", False):
        return
    original = AccessLogGenerator.__call__

    def __call__(self, protocol, action, details):
        path = details.get("path")
        if isinstance(path, str):
            details = {**details, "path": redact(path)}
        return original(self, protocol, action, details)

    __call__.chorus_redacts = True  # type: ignore[attr-defined]  # the idempotence mark
    AccessLogGenerator.__call__ = __call__  # the patch itself

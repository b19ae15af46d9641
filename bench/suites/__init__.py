"""The suites ``bench/run`` runs, each on a freshly started server (docs/benchmarks.md has the
exact procedure): one coroutine per suite name, given a ``Context`` and filling its result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.suites.ack import suite_ack
from bench.suites.ack_polling import suite_ack_polling
from bench.suites.collab import suite_collab_sio, suite_collab_yws
from bench.suites.connect import suite_connect
from bench.suites.connect_polling import suite_connect_polling
from bench.suites.context import Context
from bench.suites.fanout import suite_fanout
from bench.suites.publish import suite_server_publish

SUITES: dict[str, Callable[[Context], Awaitable[None]]] = {
    "fanout": suite_fanout,
    "connect": suite_connect,
    "ack": suite_ack,
    "collab-sio": suite_collab_sio,
    "collab-yws": suite_collab_yws,
    "connect-polling": suite_connect_polling,
    "ack-polling": suite_ack_polling,
    "server-publish": suite_server_publish,
}

"""Child-process helpers shared by the servers and the load generators: a child that dies with
the harness, and a free loopback port."""

from __future__ import annotations

import contextlib
import signal
import socket


def die_with_parent() -> None:
    """``preexec_fn`` of every server and load generator: the kernel sends SIGKILL to the child
    when the runner dies (Linux ``PR_SET_PDEATHSIG``), so a killed run leaves no server behind."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

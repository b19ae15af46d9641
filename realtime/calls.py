"""Server-to-client calls: an event sent to one socket with an ack id, whose answer (the
client's ack) goes back to the caller, on whichever instance it waits.

Owns the errors a call ends with (``CallError`` and its kinds, each with the ``code`` the
server API answers with) and ``PendingCalls``, a socket's table of the calls it waits on.
The hub routes a call to the socket's instance and the answer back (``realtime.hub``:
``Hub.call``); ``realtime.push.acall`` is the API. docs/protocol.md §3.3, docs/server-api.md.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any


class CallError(Exception):
    """A call ended without an answer; ``code`` says why (docs/server-api.md)."""

    code = "call_failed"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)
        if code is not None:
            self.code = code


class CallTimeout(CallError):
    """The client did not answer within the timeout."""

    code = "call_timeout"


class SessionNotFound(CallError):
    """No live Socket.IO session has this sid (never had, closed, or not a Socket.IO one)."""

    code = "session_not_found"


class SessionClosed(CallError):
    """The socket closed before it answered."""

    code = "session_closed"


class TooManyCalls(CallError):
    """The socket already has ``CALL_MAX_PENDING`` calls waiting for an answer."""

    code = "too_many_calls"


#: Every kind, by code: how an answer that crossed the channel layer is raised again.
ERRORS: dict[str, type[CallError]] = {
    kind.code: kind
    for kind in (CallError, CallTimeout, SessionNotFound, SessionClosed, TooManyCalls)
}

#: What a socket does with an ended call: ``answer(None, args)`` with the client's ack
#: arguments, or ``answer(error, None)``.
Answer = Callable[[CallError | None, list | None], None]


def result_of(args: list) -> Any:
    """The value a call returns for the client's ack arguments: none → None, one → it, several
    → the list (python-socketio's ``call`` returns a tuple for several)."""
    if not args:
        return None
    return args[0] if len(args) == 1 else list(args)


class PendingCalls:
    """The calls one socket waits on, by the ack id its event went out with: at most
    ``limit``; each is forgotten after ``timeout`` (the caller has given up by then)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[Answer, asyncio.TimerHandle]] = {}

    def add(self, answer: Answer, timeout: float) -> int:
        """A new ack id for a call answered through ``answer``; ``TooManyCalls`` when full."""
        if len(self._waiting) >= self.limit:
            raise TooManyCalls()
        ack_id = next(self._ids)
        timer = asyncio.get_running_loop().call_later(timeout, self._waiting.pop, ack_id, None)
        self._waiting[ack_id] = (answer, timer)
        return ack_id

    def answered(self, ack_id: int, args: list) -> bool:
        """The client answered ``ack_id`` with ``args``; False for an id nothing waits on (an
        answer after the timeout, or one the server never asked)."""
        entry = self._waiting.pop(ack_id, None)
        if entry is None:
            return False
        answer, timer = entry
        timer.cancel()
        answer(None, args)
        return True

    def fail_all(self, error: CallError) -> None:
        """End every waiting call with ``error`` (the socket closed)."""
        waiting, self._waiting = self._waiting, {}
        for answer, timer in waiting.values():
            timer.cancel()
            answer(error, None)

"""How the load generator marks and finds its own messages: broadcast message ids that carry a
sequence number, the tag inside collaborative edits, y-protocols' varUint, and the clock
(``time.monotonic_ns``, the same in every process of the machine)."""

from __future__ import annotations

import random
import re
import time

now_ns = time.monotonic_ns

MSG_ID_PREFIX = "00000000-0000-4000-8000-"
MSG_ID_NEEDLE = '"message_id":"' + MSG_ID_PREFIX
TAG_RE = re.compile(rb"#(\d+):(\d+):(\d+)#")
SAMPLE_CAP = 30_000


def msg_id(seq: int) -> str:
    """The broadcast ``message_id`` (a UUID) whose last 12 hex digits are ``seq``."""
    return f"{MSG_ID_PREFIX}{seq:012x}"


def sample(values: list[int], cap: int = SAMPLE_CAP) -> list[int]:
    """``values``, or a random ``cap`` of them (replies stay small)."""
    return values if len(values) <= cap else random.sample(values, cap)


def var_uint(n: int) -> bytes:
    """lib0's variable-length unsigned integer."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)

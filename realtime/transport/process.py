"""Process-wide tuning of a serving process (daphne or uvicorn), applied by ``config/asgi.py``
once the application is loaded. Tests and ``manage.py`` commands are left as Python sets them.

The garbage collector. Every open socket holds a few hundred Python objects that live as long
as it does. With CPython's default young-generation threshold (700 allocations), a burst of
connects runs a young collection every couple of sockets, promotes every object it finds, and
keeps walking the whole, growing heap in full collections: a sizeable share of the server's
CPU while thousands of sockets connect (docs/benchmarks.md has the profile). So a serving process

- freezes what startup allocated (Django, the URL and model registries: never garbage) out of
  every later collection (``gc.freeze``), and
- raises the young-generation threshold to ``GC_GEN0_THRESHOLD`` (0 keeps Python's defaults
  and skips the freeze). Cyclic garbage then waits a little longer to be found: at most that
  many objects' worth, a few MB.
Module map: docs/realtime.md.
"""

from __future__ import annotations

import gc

from realtime.conf import realtime_settings


def tune_garbage_collector() -> None:
    """Freeze the objects alive now and apply ``GC_GEN0_THRESHOLD`` (see the module doc)."""
    threshold = realtime_settings.GC_GEN0_THRESHOLD
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)

"""Collaborative documents: one ``DocumentRoom`` per open note per process (``room``), the
process's open documents (``manager``), their storage steps (``store``).

The room owns the server's pycrdt ``Doc`` (the authority for what is relayed and stored),
the local editors of both endpoints (Socket.IO ``ydoc:*`` and y-websocket), the awareness
states, and the debounced saves. A document's life, in order:

- load: ``DocumentManager.open`` — concurrent joins share one load; a note with content but no
  Yjs state is seeded on the server (``notes.yjs.load_state``); a failed load leaves nothing
  behind and nothing is ever saved from it;
- change: ``apply`` — an update is applied to the server ``Doc`` first (malformed → refused,
  neither stored nor relayed), what it changed is written to the note's update log (durable,
  group-committed: ``append_update``) — only then is it acknowledged and relayed to every
  local editor except its sender, encoded once per frame type, and queued once for the other
  instances (``chorus.doc`` messages, which they apply to their own ``Doc``; published in
  order by the hub's outbox, so the sender never waits for the layer, and not at all on a
  single-process layer);
- store: ``save`` — trailing debounce ``DOC_SAVE_DEBOUNCE`` with ceiling ``DOC_SAVE_MAX_WAIT``;
  merges the state and the update log into the stored state under a row lock and deletes the
  log rows merged (``notes.yjs.save_state``; on a single process, once the room has saved,
  its state is stored without a merge while the stored state is the one it saved last); a
  failed save is logged, retried with backoff and keeps the document dirty and in memory;
- unload: when the last local editor leaves the room is flushed, then dropped from memory —
  only after re-checking that no editor came back and nothing is dirty.

Every update carries its origin (the sending socket's id, or None for the server / another
instance), which decides who must not receive it back.
Module map: docs/realtime.md.
"""

from realtime.documents.manager import DocumentManager, _managers, get_manager
from realtime.documents.room import (
    EMPTY_UPDATE,
    SIO,
    YWS,
    DocClient,
    DocError,
    DocumentRoom,
    parse_document_id,
)

__all__ = [
    "EMPTY_UPDATE",
    "SIO",
    "YWS",
    "DocClient",
    "DocError",
    "DocumentManager",
    "DocumentRoom",
    "_managers",
    "get_manager",
    "parse_document_id",
]

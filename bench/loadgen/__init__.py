"""Load-generator worker: one OS process holding many raw WebSocket and HTTP clients.

``bench/run`` starts one or more workers (``python -m bench.loadgen``) and drives them with
JSON commands, one per line on stdin; each command is answered by one JSON line on stdout.
Workers never talk to each other; timestamps are ``time.monotonic_ns()`` (CLOCK_MONOTONIC,
the same clock in every process of the machine), so the coordinator can merge a send time
taken in one worker with receive times taken in others.

Clients speak the frames directly — much cheaper than python-socketio clients:

- Socket.IO (``SioClient``): receive OPEN ``0{...}``, send ``40{"token":…}``, receive
  ``40{"sid":…}`` (``44{…}`` is a refusal), answer PING ``2`` with ``3``, emit
  ``42<id>["event",{…}]``, read ACK ``43<id>[…]``.
- y-websocket (``YwsClient``): binary y-protocols frames; updates are sent as sync-update
  messages ``[0, 2, varUint(len), update]`` built from a real pycrdt ``Doc`` per editor.
- Socket.IO over HTTP long-polling (``PollingClient``): the same packets as ``SioClient``,
  carried by a handshake GET, POSTed payloads and one long-poll GET always outstanding, on two
  raw keep-alive HTTP/1.1 connections per session (``HttpConnection``); its requests after
  the handshake may go to another instance than the handshake's (no sticky sessions).

How messages are identified without trusting any server to keep extra fields:

- broadcast: the typing relay carries the client's ``message_id`` (a UUID); the sequence number
  is its last 12 hex digits. The send time stays with the sender.
- collaborative edits: each inserted text starts with a tag ``#<editor>:<seq>:<t_ns>#``; the
  tag survives any re-encoding of the update (Yjs keeps string content verbatim), so it is
  found by scanning the relayed bytes — on every server, whether it relays the bytes it got
  (Chorus) or re-encodes them from its own document (pycrdt-websocket, Node y-websocket).

Modules: ``__main__`` (the command loop and the ``COMMANDS`` table), ``worker`` (one
process's state and what its sockets receive), ``websocket`` (``RawWebSocket``), ``http``
(``HttpConnection``), ``clients`` (``SioClient``, ``YwsClient``), ``polling``
(``PollingClient``), ``editing`` (``DocGroup``, ``Editor``), ``wire`` (message ids, edit tags,
varUint, the clock), and one module per command family: ``sockets`` (connect, emit, close,
the polling request count), ``broadcast`` (send and receive records), ``ackloop`` (closed
request/ack loops), ``collab`` (editors connecting and editing).

Nothing here waits without a deadline; every loop is bounded in count and time.
"""

"""Collaborative-editing commands: connect every editor of some documents
(``collab_connect``), then have them edit, paced or in a closed window, until every update
reached every other editor (``collab_run``)."""

from __future__ import annotations

import asyncio
import random
import time

from bench.loadgen.clients import SioClient, YwsClient
from bench.loadgen.editing import DocGroup, Editor
from bench.loadgen.wire import now_ns, sample
from bench.loadgen.worker import Worker


async def collab_connect(worker: Worker, msg: dict) -> dict:
    """Connect every editor of the given documents; Socket.IO editors also join."""
    gate = asyncio.Semaphore(msg.get("concurrency", 50))
    failed: list[str] = []
    # The first editor of every document connects first, the others after: pycrdt-websocket
    # 0.16 loses concurrent first joins of a new room (all but one hit "YRoom already
    # running" in start_room and are never served). Same order for every server.
    groups = []
    for doc in msg["docs"]:
        group = DocGroup(doc["note_id"], len(doc["editors"]))
        worker.groups.append(group)
        groups.append((group, doc["editors"]))
    await asyncio.gather(
        *(add_editor(worker, msg, group, editors[0], gate, failed) for group, editors in groups)
    )
    await asyncio.gather(
        *(
            add_editor(worker, msg, group, spec, gate, failed)
            for group, editors in groups
            for spec in editors[1:]
        )
    )
    return {"ok": len(worker.editors), "failed": len(failed), "errors": failed[:5]}


async def add_editor(
    worker: Worker,
    msg: dict,
    group: DocGroup,
    spec: dict,
    gate: asyncio.Semaphore,
    failed: list[str],
) -> None:
    """Connect (and, over Socket.IO, join) editor ``spec`` of ``group``; a failure is noted."""
    async with gate:
        try:
            client = await open_editor_client(worker, msg["proto"], msg["url"], group, spec)
        except Exception as error:
            failed.append(f"{type(error).__name__}: {error}"[:300])
            return
        editor = Editor(worker, group, spec["index"], client, msg["proto"])
        worker.editors.append(editor)
        worker.editors_by_index[spec["index"]] = editor


async def open_editor_client(
    worker: Worker, proto: str, url: str, group: DocGroup, spec: dict
) -> SioClient | YwsClient:
    """A connected client for one editor: y-websocket on the document's URL, or a Socket.IO
    socket that has joined the document (``ydoc:document:join``)."""
    if proto == "yws":
        editor = YwsClient(worker, spec)
        await editor.open(url.format(doc=group.document_id, token=spec["token"]))
        return editor
    client = SioClient(worker, spec["token"], spec)
    await client.open(url)
    worker.sockets.append(client)
    ack = await client.call(
        "ydoc:document:join",
        {
            "document_id": group.document_id,
            "user_id": spec["id"],
            "user_name": spec["name"],
            "user_color": "#336699",
        },
    )
    if '"error"' in ack[:20]:
        raise RuntimeError(ack[:200])
    return client


async def edit_paced(editor: Editor, start: float, end: float, rate: float, pad: int) -> None:
    """``rate`` updates/s from a random offset, acks (if any) in the background."""
    interval = 1.0 / rate
    k = 0
    offset = random.random() * interval
    while True:
        at = start + offset + k * interval
        if at >= end:
            return
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await editor.send_update(pad, await_ack=False)
        k += 1


async def edit_windowed(editor: Editor, start: float, end: float, window: int, pad: int) -> None:
    """At most ``window`` updates not yet delivered to every other editor (a closed loop)."""
    delay = start - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    while time.monotonic() < end:
        if editor.outstanding >= window:
            editor.wake.clear()
            try:
                await asyncio.wait_for(editor.wake.wait(), max(0.01, end - time.monotonic()))
            except TimeoutError:
                return
            continue
        await editor.send_update(pad, await_ack=editor.proto == "sio")


async def collab_run(worker: Worker, msg: dict) -> dict:
    """Editors send updates for ``duration`` s, then wait (``drain`` s at most) until every
    update reached every other editor of its document.

    paced: each editor sends ``rate`` updates/s (acks, if any, in the background);
    window: each editor keeps at most ``window`` updates not yet delivered to all others
    (a closed loop: the relay rate the server sustains)."""
    mode, duration, pad = msg["mode"], msg["duration"], msg.get("pad", 48)
    window = msg.get("window", 2)
    rate = msg.get("rate", 5.0)
    worker.collab_lat = []
    worker.collab_recording = True
    sent0, deliv0 = worker.collab_sent, worker.collab_deliveries
    dups0, acks0 = worker.collab_dups, worker.ack_errors
    start = time.monotonic() + msg.get("start_delay", 0.0)
    end = start + duration
    t0 = now_ns()
    if mode == "paced":
        await asyncio.gather(*(edit_paced(e, start, end, rate, pad) for e in worker.editors))
    else:
        await asyncio.gather(*(edit_windowed(e, start, end, window, pad) for e in worker.editors))
    t_sent = now_ns()
    drain_until = time.monotonic() + msg.get("drain", 10.0)
    while any(g.pending for g in worker.groups) and time.monotonic() < drain_until:
        await asyncio.sleep(0.05)
    t1 = now_ns()
    worker.collab_recording = False
    missing = sum(sum(g.pending.values()) for g in worker.groups)
    for g in worker.groups:
        g.pending.clear()
    for editor in worker.editors:
        editor.outstanding = 0
    return {
        "sent": worker.collab_sent - sent0,
        "deliveries": worker.collab_deliveries - deliv0,
        "missing": missing,
        "dups": worker.collab_dups - dups0,
        "echoes": worker.collab_echoes,
        "ack_errors": worker.ack_errors - acks0,
        "ack_error_sample": worker.ack_error_sample[:5],
        "t0": t0,
        "t_sent": t_sent,
        "t1": t1,
        "lat_us": sample(worker.collab_lat),
        "unexpected_closes": worker.unexpected_closes,
    }

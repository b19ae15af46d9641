"""A grammar of WebSocket frames for the live fuzzer (tests/live/test_fuzz_live.py).

Pure and deterministic: everything comes from the ``random.Random`` it is given, so one seed
gives the same connections and frames every time (the server's timing may still differ). No
I/O; the test sends what ``Grammar.plan()`` returns.

A ``Plan`` is one WebSocket connection: a path (and headers), set-up steps that need an answer
(a Socket.IO CONNECT, ``user-join``, ``ydoc:document:join``), then units of frames sent back to
back (a BINARY_EVENT and its attachments are one unit), each followed by a short pause. Plans:

- ``sio-deep``: authenticated Socket.IO socket (a write grant on the note, member of the
  channel) that joined the channel rooms and the document, then fuzzes: Engine.IO packets of
  every type 0-6 and junk types, Socket.IO packets of every type (CONNECT with good / bad /
  missing auth and other namespaces, EVENT / BINARY_EVENT / ACK / BINARY_ACK with random ack
  ids and matching or mismatching attachment counts), event names from the real event table
  and random ones, payloads that are valid, schema-violating, huge, deeply nested or hold
  NaN / 1e999 / NUL / lone surrogates; binary frames at random times; empty text frames, text
  frames that are not UTF-8, fragmented messages.
- ``sio-raw``: the same grammar on a socket that never authenticated (or on a refused
  Engine.IO version / transport), so the refusal paths run.
- ``yws-deep``: y-websocket connection with a valid token (write or read grant) to the real
  note: lib0-framed messages of type 0 sync (sub-types 0 / 1 / 2 and junk), 1 awareness,
  2 auth, 3 query-awareness and junk types; payloads are valid small Yjs updates made with
  pycrdt, updates whose dependencies were never sent, truncated ones, random bytes,
  awareness updates with random client ids / clocks / JSON (and non-JSON) states, varUints
  that are overlong or announce lengths far past the frame; text frames; oversize frames.
- ``yws-refused``: y-websocket with no token, a bad or expired token, a user without access,
  a bad document id or a note that does not exist.

Valid Yjs updates come from one pycrdt ``Doc`` per grammar that never sees anyone else's
edits: it can only insert into and delete from its own items, so it cannot remove what the
ordinary clients type (it may add to the same ``t`` text, with letters that never spell an
ordinary client's ``<…>`` token). Its valid bytes are bounded by ``World.valid_update_bytes``
so the fuzz can never fill the document up to ``DOC_MAX_BYTES`` (a limit the ordinary
editors would then legitimately hit); past the budget it sends only invalid updates.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pycrdt import Doc, Map, Text, XmlElement, XmlFragment, XmlText

from realtime.protocol import yprotocol

SIO_PATH = "/ws/socket.io/"
#: Letters of the fuzzer's own text: never "<" or ">", which delimit the ordinary edits. ASCII
#: only: pycrdt's ``len(Text)`` counts UTF-8 bytes but indexes count characters, so a local
#: delete past a multi-byte character would panic in the test process (not the server).
FUZZ_ALPHABET = string.ascii_letters + string.digits + " -_.,!?"
JUNK_ALPHABET = string.printable + "é€😀\u200b\ufeff" + "\u0661\u0663"  # ٣: a non-ASCII digit


@dataclass(frozen=True)
class World:
    """What the grammar may aim at on the server."""

    note_id: str
    channel_id: str
    #: ``writer`` (write grant, channel member), ``other_writer`` (another such user),
    #: ``reader`` (read grant), ``stranger`` (no access), ``expired``, ``refresh``.
    tokens: dict[str, str]
    #: The real Socket.IO event table (``realtime.events.HANDLERS``).
    event_names: tuple[str, ...]
    max_message_bytes: int  # WEBSOCKET_MAX_MESSAGE_BYTES
    max_doc_frame_bytes: int  # DOC_MAX_BYTES + 64 KiB (the y-websocket frame limit)
    max_awareness_bytes: int  # DOC_MAX_AWARENESS_BYTES
    valid_update_bytes: int  # budget for this grammar's valid Yjs updates


@dataclass(frozen=True)
class Frame:
    """One WebSocket message. ``text`` with ``bytes`` data: a Text frame that is not UTF-8.
    ``fragments`` > 1: sent as that many continuation frames."""

    data: str | bytes
    text: bool
    fragments: int = 1

    @property
    def size(self) -> int:
        return len(self.data.encode("utf-8", "surrogatepass") if self.text_str else self.data)

    @property
    def text_str(self) -> bool:
        return isinstance(self.data, str)

    def describe(self, limit: int = 240) -> str:
        kind = "text" if self.text else "binary"
        if self.fragments > 1:
            kind += f"/{self.fragments} fragments"
        if isinstance(self.data, str):
            body = self.data if len(self.data) <= limit else self.data[:limit] + "…"
            return f"{kind} {len(self.data)}c {body!r}"
        raw = self.data if len(self.data) <= limit // 2 else self.data[: limit // 2]
        more = "…" if len(self.data) > len(raw) else ""
        return f"{kind} {len(self.data)}B {raw.hex()}{more}"

    def as_trace(self) -> dict:
        """Exact content for frames up to 4 KB (a trace can be replayed), else a description."""
        frag = {"fragments": self.fragments} if self.fragments > 1 else {}
        if self.size > 4096:
            return {"describe": self.describe(), **frag}
        if isinstance(self.data, str):
            return {"text": self.data, **frag}
        key = "text_bytes_hex" if self.text else "binary_hex"
        return {key: self.data.hex(), **frag}


@dataclass
class Unit:
    frames: list[Frame]
    pause: float  # seconds after the unit (the fuzzer's own pacing)


@dataclass
class Plan:
    kind: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    #: (frame, prefix the answer must start with) — waited for before the fuzz frames.
    #: A None frame: only wait for the server's first message.
    setup: list[tuple[Frame | None, str | bytes]] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    reads: bool = True  # False: stops reading after the set-up (a client that never reads)
    abort: bool = False  # end with a TCP abort instead of a close handshake


class Raw:
    """A JSON fragment written verbatim (``NaN``, ``1e999``, a lone-surrogate escape …)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(value: Any, ascii_only: bool = False) -> str:
    """JSON text of ``value`` with every ``Raw`` inside spliced in verbatim."""
    raws: list[str] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x01raw{len(raws) - 1}\x02"  # a marker json.dumps always escapes
        if isinstance(obj, bytes | bytearray):
            return list(obj)
        raise TypeError(type(obj))

    text = json.dumps(value, default=default, ensure_ascii=ascii_only, separators=(",", ":"))
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0001raw{index}\\u0002"', raw, 1)
    return text


#: Values that JSON parsers take but Chorus must refuse or store safely.
HOSTILE_VALUES: tuple[Any, ...] = (
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("1e999"),
    Raw("-1e999"),
    Raw("1" + "0" * 5000),  # an int past Python's 4300-digit str-to-int limit
    Raw('"\\ud800"'),  # a lone high surrogate
    Raw('"x\\udfffy"'),  # a lone low surrogate
    Raw('"\\u0000"'),
    "x\u0000y",
    10**30,
    -(2**63),
    2**64,
    1.5e308,
    -0.0,
    "",
    None,
    True,
    [],
    {},
    {"_placeholder": True, "num": 0},
    {"_placeholder": True, "num": 99},
    {"__proto__": {"admin": True}},
    "\u202e\u200b\ufeff",
)


class Grammar:
    """Plans of fuzz connections for one worker (one ``random.Random``)."""

    def __init__(self, rng: random.Random, world: World, hostile: bool = True) -> None:
        self.rng = rng
        self.world = world
        self.hostile = hostile  # False: only valid frames (the warm-up before the baseline)
        self.doc = Doc(client_id=rng.randrange(1, 2**32))  # from the seed, as everything
        self.updates: list[bytes] = []  # every valid update made, in order
        self.valid_bytes = 0
        self.awareness_id = rng.randrange(1, 2**32)
        self.awareness_clock = 0
        self._ack = 0

    # --- plans ------------------------------------------------------------------------------

    def plan(self) -> Plan:
        if not self.hostile:
            kind = self.rng.choice(["sio-deep", "yws-deep"])
        else:
            kind = self.pick({"sio-deep": 5, "sio-raw": 2, "yws-deep": 4, "yws-refused": 1})
        plan = getattr(self, "_plan_" + kind.replace("-", "_"))()
        plan.kind = kind
        count = self.pick({self.rng.randint(1, 8): 4, self.rng.randint(8, 60): 4, 300: 1})
        make = self.sio_unit if kind.startswith("sio") else self.yws_unit
        plan.units = [Unit(make(), self.pause()) for _ in range(count)]
        if self.hostile:
            plan.reads = not kind.endswith("deep") or self.rng.random() < 0.85
            plan.abort = self.rng.random() < 0.3
        return plan

    def _plan_sio_deep(self) -> Plan:
        doc = f"note:{self.world.note_id}"
        roles = {"writer": 3, "other_writer": 2, "reader": 1 if self.hostile else 0}
        token = self.world.tokens[self.pick(roles)]  # the warm-up's updates are all accepted
        setup = [
            (Frame("40" + dumps({"token": token}), True), "40{"),
            (Frame(self.event("user-join", {}, ack=0), True), "430["),
            (Frame(self.event("ydoc:document:join", {"document_id": doc}, ack=1), True), "431["),
        ]
        self._ack = 2
        return Plan("sio-deep", SIO_PATH + "?EIO=4&transport=websocket", setup=setup)

    def _plan_sio_raw(self) -> Plan:
        query = self.pick(
            {
                "?EIO=4&transport=websocket": 8,
                "?EIO=3&transport=websocket": 1,
                "?transport=websocket": 1,
                "?EIO=4&transport=polling": 1,
                "?EIO=4&transport=websocket&EIO=5": 1,
                f"?EIO=4&transport=websocket&token={self.token_any()}": 2,
                "?EIO=%34&transport=websocket&" + "x" * 2000: 1,
            }
        )
        headers = {}
        if self.rng.random() < 0.2:
            headers["Authorization"] = "Bearer " + self.token_any()
        if self.rng.random() < 0.1:
            headers["Cookie"] = f"token={self.token_any()}; junk=%%%; ="
        if self.rng.random() < 0.1:
            headers["Origin"] = self.rng.choice(["http://127.0.0.1", "http://evil.example", "null"])
        return Plan("sio-raw", SIO_PATH + query, headers=headers)

    def _plan_yws_deep(self) -> Plan:
        role = "writer" if not self.hostile else self.pick({"writer": 4, "reader": 1})
        note = self.pick({f"note:{self.world.note_id}": 4, f"note_{self.world.note_id}": 1})
        if self.rng.random() < 0.2:
            note = quote(note, safe="")
        path = f"/ws/yjs/{note}?token={self.world.tokens[role]}"
        return Plan("yws-deep", path, setup=[(None, b"\x00\x00")])  # the server's step 1

    def _plan_yws_refused(self) -> Plan:
        note = f"note:{self.world.note_id}"
        path = self.pick(
            {
                f"/ws/yjs/{note}": 1,
                f"/ws/yjs/{note}?token=garbage.token.here": 1,
                f"/ws/yjs/{note}?token={self.world.tokens['expired']}": 1,
                f"/ws/yjs/{note}?token={self.world.tokens['refresh']}": 1,
                f"/ws/yjs/{note}?token={self.world.tokens['stranger']}": 1,
                f"/ws/yjs/note:{self.some_uuid()}?token={self.world.tokens['writer']}": 1,
                f"/ws/yjs/doc:{self.world.note_id}?token={self.world.tokens['writer']}": 1,
                f"/ws/yjs/note:not-a-uuid?token={self.world.tokens['writer']}": 1,
            }
        )
        return Plan("yws-refused", path)

    # --- helpers ----------------------------------------------------------------------------

    def pick(self, options: dict[Any, float] | list[tuple[Any, float]]) -> Any:
        """One of ``options`` (value -> weight, or (value, weight) pairs for values that
        cannot be dict keys)."""
        pairs = list(options.items()) if isinstance(options, dict) else options
        return self.rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]

    def pause(self) -> float:
        return self.pick({0.0: 4, 0.001: 3, 0.005: 2, 0.03: 1})

    def token_any(self) -> str:
        return self.world.tokens[self.rng.choice(sorted(self.world.tokens))]

    def junk_text(self, low: int = 0, high: int = 24) -> str:
        return "".join(self.rng.choice(JUNK_ALPHABET) for _ in range(self.rng.randint(low, high)))

    def some_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def junk_bytes(self, low: int = 0, high: int = 48) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    def ack_id(self) -> str:
        return self.pick(
            {
                "": 3,
                str(self._next_ack()): 6,
                str(self.rng.randrange(10**10)): 1,  # the longest accepted (10 digits)
                str(10**10 + self.rng.randrange(10**9)): 1,  # 11 digits: refused
                "0" * 12: 1,
            }
        )

    def _next_ack(self) -> int:
        self._ack += 1
        return self._ack

    def event(self, name: str, payload: Any, ack: int | str | None = None) -> str:
        ack_text = "" if ack is None else str(ack)
        return "42" + ack_text + dumps([name, payload])

    # --- Socket.IO / Engine.IO --------------------------------------------------------------

    def sio_unit(self) -> list[Frame]:
        if not self.hostile:
            return [Frame("4" + self.sio_event_packet(valid=True), True)]
        shape = self.pick(
            {
                "message": 70,
                "binary-event": 9,
                "engineio": 8,
                "eio-junk": 3,
                "binary": 3,
                "not-utf8": 1,
                "empty": 1,
                "fragmented": 2,
                "huge": 2,
                "close": 1,
            }
        )
        if shape == "message":
            return [Frame("4" + self.sio_packet(), True)]
        if shape == "binary-event":
            return self.sio_binary_event()
        if shape == "engineio":
            text = self.pick(
                {
                    "2": 2,
                    "2probe": 2,
                    "3": 2,
                    "3probe": 1,
                    "5": 1,
                    "6": 2,
                    "6" + self.junk_text(): 1,
                    "0": 1,
                    "0" + dumps({"sid": "x", "upgrades": ["polling"]}): 1,
                    "4": 1,
                }
            )
            return [Frame(text, True)]
        if shape == "eio-junk":
            return [Frame(self.rng.choice("789x/ -\x00\u0663") + self.junk_text(), True)]
        if shape == "binary":
            return [Frame(self.junk_bytes(0, 64), False)]
        if shape == "not-utf8":
            return [Frame(b"42" + self.rng.choice([b"\xff\xfe", b"\xed\xa0\x80", b"\xc3"]), True)]
        if shape == "empty":
            return [Frame("", True)]
        if shape == "fragmented":
            return [Frame("4" + self.sio_event_packet(valid=True), True, fragments=2)]
        if shape == "huge":
            limit = self.world.max_message_bytes
            size = self.pick({limit - 64: 1, limit + self.rng.randint(1, 64): 2, 2 * limit: 1})
            filler = self.pick({"x": 2, "€": 1})  # "€" is 3 UTF-8 bytes: the limit is in bytes
            body = filler * max(0, (size - 40) // len(filler.encode()))
            return [Frame(self.event("heartbeat", {"pad": body}, ack=self._next_ack()), True)]
        return [Frame("1", True)]  # Engine.IO CLOSE: the server ends the session

    def sio_packet(self) -> str:
        kind = self.pick(
            {"event": 70, "connect": 8, "ack": 5, "disconnect": 1, "error": 1, "junk": 6}
        )
        if kind == "event":
            return self.sio_event_packet(valid=self.rng.random() < 0.5)
        if kind == "connect":
            auth = self.pick(
                {
                    "": 1,
                    dumps({"token": self.world.tokens["writer"]}): 3,
                    dumps({"token": self.world.tokens["other_writer"]}): 1,
                    dumps({"token": self.token_any()}): 2,
                    dumps({"token": "not.a.jwt"}): 1,
                    dumps({"token": self.hostile_value()}): 1,
                    dumps({}): 1,
                    "[]": 1,
                    '"token"': 1,
                    dumps({"token": "x" * 5000}): 1,
                }
            )
            namespace = self.pick({"": 8, "/admin,": 1, "/,": 1, "/" + self.junk_text() + ",": 1})
            return "0" + namespace + auth
        if kind == "ack":
            ack = self.pick({str(self.rng.randrange(10**6)): 4, "": 1, "9" * 11: 1})
            return "3" + ack + dumps([self.any_value()])
        if kind == "disconnect":
            return self.pick({"1": 1, "1/admin,": 2})
        if kind == "error":
            return "4" + dumps({"message": self.junk_text()})
        return self.pick(
            {
                "7": 1,
                "9[]": 1,
                "": 1,
                "2": 1,
                "2[]": 1,
                "2[1]": 1,
                '2{"a":1}': 1,
                "2" + self.junk_text(1): 2,
                '2["heartbeat",{}': 1,  # truncated JSON
                '2["heartbeat",{}]]': 1,  # trailing garbage
                "2/admin," + dumps(["heartbeat", {}]): 1,
                "2" + self.deep(self.rng.choice([31, 32, 33, 40, 3000])): 2,
                "5-[]": 1,
                "5x-[]": 1,
                "599999999999-" + dumps(["heartbeat"]): 1,
            }
        )

    def event_name(self) -> str:
        return self.pick(
            {
                self.rng.choice(self.world.event_names): 12,
                self.junk_text(0, 16): 1,
                "ydoc:" + self.junk_text(1, 8): 1,
                "__proto__": 1,
                "x" * 300: 1,
                "heartbeat\u0000": 1,
            }
        )

    def sio_event_packet(self, valid: bool) -> str:
        names = self.world.event_names
        if not self.hostile:  # the warm-up stays in the document: its updates have no gaps
            names = tuple(n for n in names if n != "ydoc:document:leave")
        name = self.rng.choice(names) if valid else self.event_name()
        payload = self.payload(name, valid)
        namespace = "" if valid or self.rng.random() < 0.9 else "/" + self.junk_text(1, 6) + ","
        ack = self.ack_id()  # sometimes one the server must refuse
        if valid:
            ack = str(self._next_ack()) if self.rng.random() < 0.8 else ""
        if not valid and self.rng.random() < 0.1:
            args = [name, payload, self.any_value()]  # an extra argument
        elif not valid and self.rng.random() < 0.05:
            args = [name]  # no argument
        else:
            args = [name, payload]
        return "2" + namespace + ack + dumps(args, ascii_only=self.rng.random() < 0.3)

    def sio_binary_event(self) -> list[Frame]:
        name = self.pick({"ydoc:document:update": 4, "ydoc:awareness:update": 2, "heartbeat": 1})
        declared = self.pick({1: 6, 2: 2, 0: 1, 10: 1, 11: 1})
        placeholders = [{"_placeholder": True, "num": n} for n in range(max(declared, 1))]
        if self.rng.random() < 0.2:
            placeholders[0] = self.pick(
                {
                    Raw('{"_placeholder":true,"num":"0"}'): 1,
                    Raw('{"_placeholder":true,"num":-1}'): 1,
                    Raw('{"_placeholder":true,"num":12}'): 1,
                    Raw('{"_placeholder":true}'): 1,
                }
            )
        payload = {"document_id": f"note:{self.world.note_id}", "update": placeholders[0]}
        if name == "heartbeat":
            payload = {"blob": placeholders}
        ack = self.pick({str(self._next_ack()): 3, "": 1})
        packet = "45" + str(declared) + "-" + ack + dumps([name, payload])
        if self.rng.random() < 0.05:
            packet = "46" + str(declared) + "-" + str(self.rng.randrange(100)) + dumps([payload])
        sent = self.pick({declared: 8, declared + 1: 1, max(0, declared - 1): 1})
        attachments = []
        for _ in range(sent):
            if name == "ydoc:document:update":
                data = self.yjs_update_payload()
            elif name == "ydoc:awareness:update":
                data = self.awareness_payload()
            else:
                data = self.junk_bytes()
            attachments.append(Frame(data, False))
        frames = [Frame(packet, True), *attachments]
        if attachments and self.rng.random() < 0.1:  # a text packet while attachments pend
            frames.insert(2, Frame("42" + dumps(["heartbeat", {}]), True))
        return frames

    # --- payloads ---------------------------------------------------------------------------

    def payload(self, name: str, valid: bool) -> Any:
        good = self.valid_payload(name)
        if valid:
            return good
        how = self.pick({"mutate": 5, "hostile": 3, "deep": 1, "huge": 1, "other": 2})
        if how == "mutate" and isinstance(good, dict) and good:
            return self.mutate(good)
        if how == "hostile" and isinstance(good, dict):
            return self.inject(good)
        if how == "deep":
            return Raw(self.deep(self.rng.choice([29, 30, 31, 32, 33, 64, 1000])))
        if how == "huge":
            size = self.world.max_message_bytes - self.rng.randint(100, 4000)
            return {**(good if isinstance(good, dict) else {}), "pad": "y" * max(0, size)}
        return self.any_value()

    def valid_payload(self, name: str) -> Any:
        doc_id = self.pick(
            {
                f"note:{self.world.note_id}": 8,
                f"note_{self.world.note_id}": 1,
                quote(f"note:{self.world.note_id}", safe=""): 1,
            }
        )
        tokens = self.world.tokens
        if name in ("user-join", "join-channels"):
            token = self.pick({None: 3, tokens["writer"]: 2, tokens["other_writer"]: 1, "bad": 1})
            return {} if token is None else {"auth": {"token": token}}
        if name == "auth:renew":
            return {"token": self.pick({tokens["writer"]: 2, tokens["other_writer"]: 1, "bad": 1})}
        if name == "heartbeat":
            return {}
        if name == "join-note":
            return {"note_id": self.world.note_id}
        if name == "events:channel":
            if self.rng.random() < 0.2:
                return {"channel_id": self.world.channel_id, "data": {"type": "last_read_at"}}
            body: dict[str, Any] = {
                "channel_id": self.world.channel_id,
                "data": {"type": "typing", "data": {"typing": self.rng.random() < 0.5}},
            }
            if self.rng.random() < 0.2:
                body["message_id"] = self.some_uuid()
            return body
        if name == "ydoc:document:join":
            return {"document_id": doc_id, "user_color": self.pick({"#ff0000": 3, None: 1})}
        if name in ("ydoc:document:state", "ydoc:document:leave"):
            return {"document_id": doc_id}
        if name == "ydoc:document:update":
            body = {"document_id": doc_id, "update": list(self.yjs_update_payload(valid=True))}
            if self.rng.random() < 0.3:
                body["data"] = {"content": self.content()}
            return body
        if name == "ydoc:awareness:update":
            return {"document_id": doc_id, "update": list(self.awareness_payload(valid=True))}
        return {"junk": self.junk_text()}

    def content(self) -> dict:
        """``data.content`` as Open WebUI sends it, or with values no database can store."""
        good = {
            "md": "fuzz " + self.junk_text(0, 8),
            "html": "<p>fuzz</p>",
            "json": {
                "type": "doc",
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "f"}]}],
            },
        }
        if not self.hostile or self.rng.random() < 0.4:
            return good
        bad = self.pick(
            {
                "json-1e999": 2,
                "json-nan": 1,
                "md-nul": 2,
                "html-nul": 1,
                "json-deep": 1,
                "json-surrogate": 1,
                "huge": 1,
                "wrong-types": 1,
            }
        )
        if bad == "json-1e999":
            good["json"] = {"type": "doc", "attrs": {"level": Raw("1e999")}}
        elif bad == "json-nan":
            good["json"] = {"type": "doc", "attrs": {"level": Raw("NaN")}}
        elif bad == "md-nul":
            good["md"] = "x\u0000y"
        elif bad == "html-nul":
            good["html"] = "<p>\u0000</p>"
        elif bad == "json-deep":
            good["json"] = {"type": "doc", "content": Raw(self.deep(25))}
        elif bad == "json-surrogate":
            good["json"] = {"type": "doc", "text": Raw('"\\udc00"')}
        elif bad == "huge":
            good["html"] = "<p>" + "h" * (self.world.max_message_bytes // 2) + "</p>"
        else:
            good = {"md": 1, "html": ["x"], "json": "not a dict"}
        return good

    def mutate(self, good: dict) -> dict:
        bad = dict(good)
        key = self.rng.choice(sorted(bad))
        how = self.pick({"drop": 2, "retype": 4, "extra": 1, "nested": 2})
        if how == "drop":
            del bad[key]
        elif how == "retype":
            bad[key] = self.any_value()
        elif how == "extra":
            bad[self.junk_text(1, 8)] = self.any_value()
            bad["user_id"] = self.some_uuid()  # identity fields are ignored
        elif isinstance(bad[key], dict) and bad[key]:
            bad[key] = self.mutate(bad[key])
        elif isinstance(bad[key], list):
            bad[key] = [*bad[key], self.rng.choice([256, -1, 3.5, "x", None])]
        else:
            bad[key] = self.any_value()
        return bad

    def inject(self, good: dict) -> dict:
        bad = dict(good)
        bad[self.rng.choice([*sorted(bad), "extra"])] = self.hostile_value()
        return bad

    def hostile_value(self) -> Any:
        return self.rng.choice(HOSTILE_VALUES)

    def any_value(self) -> Any:
        how = self.pick({"hostile": 3, "int": 1, "text": 2, "none": 1, "ints": 1, "uuid": 1})
        if how == "hostile":
            return self.hostile_value()
        if how == "int":
            return self.rng.randint(-(2**40), 2**40)
        if how == "text":
            return self.junk_text()
        if how == "ints":
            return [self.rng.randint(-1, 300) for _ in range(self.rng.randint(0, 8))]
        if how == "uuid":
            return self.some_uuid()
        return None if self.rng.random() < 0.5 else Raw(self.deep(self.rng.randint(1, 40)))

    def deep(self, depth: int) -> str:
        """JSON text nested ``depth`` levels deep (lists or objects)."""
        if self.rng.random() < 0.5:
            return "[" * depth + "]" * depth
        return '{"a":' * depth + "1" + "}" * depth

    # --- Yjs updates ------------------------------------------------------------------------

    def next_update(self) -> bytes | None:
        """A new small valid update of this grammar's own Doc (None once over budget)."""
        if self.valid_bytes >= self.world.valid_update_bytes:
            return None
        before = self.doc.get_state()
        text = self.doc.get("t", type=Text)
        how = self.pick({"insert": 6, "delete": 1, "map": 2, "paragraph": 1})
        if how == "delete" and len(text):
            start = self.rng.randrange(len(text))
            del text[start : min(len(text), start + self.rng.randint(1, 4))]
        elif how == "map":
            self.doc.get("fuzz", type=Map)[self.junk_text(1, 6)] = self.pick(
                {self.rng.randint(-100, 100): 1, self.junk_text(): 1, 1.5: 1, True: 1}
            )
        elif how == "paragraph":
            fragment = self.doc.get("prosemirror", type=XmlFragment)
            fragment.children.append(XmlElement("paragraph", {}, [XmlText(self.fuzz_text())]))
        else:
            text.insert(self.rng.randint(0, len(text)), self.fuzz_text())
        update = self.doc.get_update(before)
        self.updates.append(update)
        self.valid_bytes += len(update)
        return update

    def fuzz_text(self) -> str:
        return "".join(self.rng.choice(FUZZ_ALPHABET) for _ in range(self.rng.randint(1, 12)))

    def yjs_update_payload(self, valid: bool = False) -> bytes:
        """An update: valid (new, or an old one again, possibly out of order so its
        dependencies are missing) or broken (truncated, random, padded)."""
        if valid or not self.hostile:
            fresh = self.next_update()
            if fresh is not None:
                return fresh
            return self.rng.choice(self.updates) if self.updates else b"\x00\x00"
        how = self.pick(
            {
                "fresh": 5,
                "skip-one": 2,  # made but never sent: what comes after depends on it
                "old": 2,
                "empty": 1,
                "truncated": 2,
                "random": 2,
                "flipped": 2,
                "trailing": 1,
                "huge-count": 1,
            }
        )
        if how == "skip-one":
            self.next_update()
            how = "fresh"
        if how == "fresh":
            fresh = self.next_update()
            if fresh is not None:
                return fresh
            how = "random"
        if how == "old" and self.updates:
            return self.rng.choice(self.updates)
        if how == "empty":
            return b"\x00\x00"
        base = self.rng.choice(self.updates) if self.updates else b"\x01\x01\x01\x00\x04\x01"
        if how == "truncated":
            return base[: self.rng.randrange(1, max(2, len(base)))]
        if how == "flipped":
            data = bytearray(base)
            for _ in range(self.rng.randint(1, 3)):
                data[self.rng.randrange(len(data))] = self.rng.randrange(256)
            return bytes(data)
        if how == "trailing":
            return base + self.junk_bytes(1, 16)
        if how == "huge-count":  # a struct count / client / clock far beyond the data
            return yprotocol.write_var_uint(self.rng.choice([2**31, 2**53])) + self.junk_bytes()
        return self.junk_bytes(1, 96)

    def awareness_payload(self, valid: bool = False) -> bytes:
        """An awareness update: mostly well formed (own or random client ids, clocks, JSON
        states, ``null``), sometimes broken (counts past the data, trailing bytes, bad UTF-8)."""
        entries = []
        for _ in range(self.pick({1: 6, 2: 2, 5: 1})):
            if self.rng.random() < 0.6 or valid:
                self.awareness_clock += 1
                client, clock = self.awareness_id, self.awareness_clock
            else:
                client = self.pick({self.rng.randrange(2**32): 3, 0: 1, 2**53: 1})
                clock = self.pick({self.rng.randrange(100): 3, 2**53: 1, 0: 1})
            state = self.pick(
                {
                    dumps({"user": {"name": "fuzz", "color": "#0f0"}}): 6,
                    "null": 2,
                    "{}": 1,
                    dumps({"cursor": {"anchor": self.rng.randrange(99)}}): 1,
                }
            )
            if not valid and self.hostile and self.rng.random() < 0.2:
                state = self.pick({"{": 1, "": 1, "x" * 3000: 1, "\u0000": 1, "NaN": 1})
            entries.append((client, clock, state))
        data = yprotocol.encode_awareness_update(entries)
        if valid or not self.hostile or self.rng.random() < 0.7:
            return data
        how = self.pick({"count": 1, "trailing": 1, "truncated": 1, "utf8": 1, "big": 1})
        if how == "count":
            return yprotocol.write_var_uint(self.rng.choice([50, 2**20, 2**53])) + data[1:]
        if how == "trailing":
            return data + self.junk_bytes(1, 8)
        if how == "truncated":
            return data[: self.rng.randrange(1, len(data))]
        if how == "utf8":
            return b"\x01" + yprotocol.write_var_uint(7) + b"\x01" + b"\x02\xff\xfe"
        state = dumps({"pad": "a" * (self.world.max_awareness_bytes + 10)})
        return yprotocol.encode_awareness_update([(self.awareness_id, 10**6, state)])

    # --- y-websocket ------------------------------------------------------------------------

    def yws_unit(self) -> list[Frame]:
        if not self.hostile:
            update = self.yjs_update_payload(valid=True)
            return [Frame(yprotocol.encode_sync_update(update), False)]
        shape = self.pick(
            {
                "update": 30,
                "step2": 6,
                "step1": 8,
                "awareness": 16,
                "query": 4,
                "auth": 2,
                "sync-junk": 3,
                "kind-junk": 4,
                "length-junk": 4,
                "text": 2,
                "empty": 1,
                "huge": 1,
                "fragmented": 2,
            }
        )
        if shape in ("update", "step2"):
            encode = yprotocol.encode_sync_update
            if shape == "step2":
                encode = yprotocol.encode_sync_step2
            data = encode(self.yjs_update_payload())
            if self.rng.random() < 0.05:
                data += self.junk_bytes(1, 8)  # trailing bytes after a message are ignored
            return [Frame(data, False)]
        if shape == "step1":
            vector = self.pick(
                {
                    self.doc.get_state(): 3,
                    b"\x00": 2,
                    self.junk_bytes(1, 16): 1,
                    b"\x01" + yprotocol.write_var_uint(2**53) + b"\x00": 1,
                    b"\x03\x01": 1,  # three entries announced, half of one given
                }
            )
            return [Frame(yprotocol.encode_sync_step1(vector), False)]
        if shape == "awareness":
            return [Frame(yprotocol.encode_awareness(self.awareness_payload()), False)]
        if shape == "query":
            return [Frame(self.pick({b"\x03": 3, b"\x03" + self.junk_bytes(1, 4): 1}), False)]
        if shape == "auth":
            return [Frame(b"\x02" + self.junk_bytes(0, 16), False)]
        if shape == "sync-junk":
            sub = yprotocol.write_var_uint(self.rng.choice([3, 4, 127, 2**40]))
            return [Frame(b"\x00" + sub + self.junk_bytes(), False)]
        if shape == "kind-junk":
            kind = self.pick(
                {
                    yprotocol.write_var_uint(self.rng.randint(4, 2**20)): 2,
                    b"\xff" * 10 + b"\x01": 1,  # more continuation bytes than allowed
                    b"\x80": 1,  # a truncated varUint
                    yprotocol.write_var_uint(2**53) + b"\x00": 1,
                    b"\xff" * 8 + b"\x7f": 1,  # a 9-byte varUint above 2**53
                }
            )
            return [Frame(kind + self.junk_bytes(0, 8), False)]
        if shape == "length-junk":  # a varUint8Array announcing far more than the frame holds
            head = self.pick({b"\x00\x02": 2, b"\x00\x01": 1, b"\x00\x00": 1, b"\x01": 2})
            length = yprotocol.write_var_uint(self.rng.choice([2**16, 2**31, 2**40, 2**53]))
            return [Frame(head + length + self.junk_bytes(0, 32), False)]
        if shape == "text":
            return [Frame(self.pick({"hello": 1, "\x00\x02": 1, "": 1}), True)]
        if shape == "empty":
            return [Frame(b"", False)]
        if shape == "fragmented":
            update = self.yjs_update_payload()
            return [Frame(yprotocol.encode_sync_update(update), False, fragments=2)]
        limit = self.world.max_doc_frame_bytes
        size = self.pick({limit + self.rng.randint(1, 4096): 3, limit - 4096: 1})
        pad = b"\x00" * max(0, size - 8)
        return [Frame(b"\x00\x02" + yprotocol.write_var_uint(len(pad)) + pad, False)]

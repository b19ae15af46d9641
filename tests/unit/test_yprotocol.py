"""Unit tests for realtime.protocol.yprotocol (y-websocket sync/awareness/auth framing)."""

import pycrdt
import pytest

from realtime.protocol import yprotocol as yp
from realtime.protocol.errors import DecodeError
from realtime.protocol.yprotocol import YMessage

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev-only dependency
    given = None


def test_constants():
    assert (yp.MESSAGE_SYNC, yp.MESSAGE_AWARENESS, yp.MESSAGE_AUTH) == (0, 1, 2)
    assert yp.MESSAGE_QUERY_AWARENESS == 3
    assert (yp.SYNC_STEP1, yp.SYNC_STEP2, yp.SYNC_UPDATE) == (0, 1, 2)


# --------------------------------------------------------------------------- varUint


VAR_UINTS = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (300, b"\xac\x02"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2**32, b"\x80\x80\x80\x80\x10"),
    (2**53 - 1, b"\xff\xff\xff\xff\xff\xff\xff\x0f"),
    (2**53, b"\x80\x80\x80\x80\x80\x80\x80\x10"),
]


@pytest.mark.parametrize(("value", "encoded"), VAR_UINTS)
def test_var_uint_exact(value, encoded):
    assert yp.write_var_uint(value) == encoded
    assert yp.read_var_uint(encoded, 0) == (value, len(encoded))
    assert yp.read_var_uint(b"\xaa" + encoded + b"\xbb", 1) == (value, len(encoded) + 1)
    assert pycrdt.write_var_uint(value) == encoded


def test_write_var_uint_range():
    with pytest.raises(ValueError):
        yp.write_var_uint(-1)
    with pytest.raises(ValueError):
        yp.write_var_uint(2**53 + 1)


@pytest.mark.parametrize(
    ("buf", "pos"),
    [
        (b"", 0),
        (b"\x01", 1),
        (b"\x01", -1),
        (b"\x80", 0),
        (b"\xff\xff", 0),
        (b"\x80\x80\x80\x80\x80\x80\x80\x80", 0),  # 8 continuation bytes, then nothing
        (b"\x80" * 9 + b"\x00", 0),  # 9 continuation bytes
        (b"\xff" * 20 + b"\x01", 0),
        (b"\x81\x80\x80\x80\x80\x80\x80\x10", 0),  # 2**53 + 1
        (b"\xff\xff\xff\xff\xff\xff\xff\x7f", 0),  # 2**56 - 1
    ],
)
def test_read_var_uint_rejects(buf, pos):
    with pytest.raises(DecodeError):
        yp.read_var_uint(buf, pos)


def test_read_var_uint_accepts_overlong_with_eight_continuations():
    # lib0 tolerates non-minimal encodings; 8 continuation bytes is the allowed maximum.
    assert yp.read_var_uint(b"\x81" + b"\x80" * 7 + b"\x00", 0) == (1, 9)


def test_var_bytes():
    assert yp.write_var_bytes(b"") == b"\x00"
    assert yp.write_var_bytes(b"abc") == b"\x03abc"
    big = bytes(range(256)) * 3
    encoded = yp.write_var_bytes(big)
    assert encoded[:2] == b"\x80\x06"
    assert yp.read_var_bytes(encoded + b"tail", 0) == (big, len(encoded))
    assert yp.read_var_bytes(bytearray(b"\x02hi"), 0) == (b"hi", 3)


@pytest.mark.parametrize(
    "buf", [b"", b"\x01", b"\x03ab", b"\x80\x01" + b"a" * 127, b"\xff\xff\xff\xff\x0f", b"\x80"]
)
def test_read_var_bytes_rejects(buf):
    with pytest.raises(DecodeError):
        yp.read_var_bytes(buf, 0)


# --------------------------------------------------------------------------- messages


def test_encoders_exact():
    assert yp.encode_sync_step1(b"\x01\x02") == b"\x00\x00\x02\x01\x02"
    assert yp.encode_sync_step2(b"\x00\x00") == b"\x00\x01\x02\x00\x00"
    assert yp.encode_sync_update(b"U" * 200) == b"\x00\x02\xc8\x01" + b"U" * 200
    assert yp.encode_awareness(b"\x00") == b"\x01\x01\x00"
    assert yp.encode_query_awareness() == b"\x03"
    assert yp.encode_permission_denied("no") == b"\x02\x00\x02no"
    assert yp.encode_permission_denied("é") == b"\x02\x00\x02\xc3\xa9"  # byte length, not chars


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00\x00\x02\x01\x02", YMessage(0, 0, b"\x01\x02")),
        (b"\x00\x01\x00", YMessage(0, 1, b"")),
        (b"\x00\x02\x03abc", YMessage(0, 2, b"abc")),
        (b"\x00\x02\x03abcTRAILING", YMessage(0, 2, b"abc")),  # trailing bytes ignored
        (b"\x01\x02\x00\x00", YMessage(1, None, b"\x00\x00")),
        (b"\x03", YMessage(3, None, b"")),
        (b"\x03junk", YMessage(3, None, b"")),
        (b"\x02\x00\x02no", YMessage(2, None, b"\x00\x02no")),
        (b"\x02", YMessage(2, None, b"")),
    ],
)
def test_decode_message(data, expected):
    assert yp.decode_message(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x04",  # unknown kind
        b"\x7f",
        b"\x80\x01",  # kind 128
        b"\x80",  # truncated kind
        b"\x00",  # sync without subtype
        b"\x00\x03\x00",  # unknown sync subtype
        b"\x00\x80\x01\x00",  # subtype 128
        b"\x00\x00",  # missing payload
        b"\x00\x02\x05abc",  # payload length past the end
        b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x01",  # awareness without payload
        b"\x01\x05\x00",
    ],
)
def test_decode_message_rejects(data):
    with pytest.raises(DecodeError):
        yp.decode_message(data)


def test_message_roundtrip():
    for encode, subtype in (
        (yp.encode_sync_step1, 0),
        (yp.encode_sync_step2, 1),
        (yp.encode_sync_update, 2),
    ):
        for payload in (b"", b"\x00", bytes(range(256)) * 70):
            assert yp.decode_message(encode(payload)) == YMessage(0, subtype, payload)
    assert yp.decode_message(yp.encode_awareness(b"xyz")) == YMessage(1, None, b"xyz")


# --------------------------------------------------------------------------- pycrdt cross-checks


def _doc_with_text(text: str) -> pycrdt.Doc:
    doc = pycrdt.Doc()
    doc["text"] = ytext = pycrdt.Text()
    ytext += text
    return doc


def test_encoders_match_pycrdt():
    doc = _doc_with_text("hello wörld")
    update = doc.get_update()
    assert yp.encode_sync_step1(doc.get_state()) == pycrdt.create_sync_message(doc)
    assert yp.encode_sync_update(update) == pycrdt.create_update_message(update)
    assert yp.encode_awareness(b"abc") == pycrdt.create_awareness_message(b"abc")


def test_real_update_roundtrip_applies_to_another_doc():
    source = _doc_with_text("x" * 300 + " ünïcode")
    message = yp.encode_sync_update(source.get_update())
    decoded = yp.decode_message(message)
    assert (decoded.kind, decoded.subtype) == (yp.MESSAGE_SYNC, yp.SYNC_UPDATE)
    target = pycrdt.Doc()
    target["text"] = target_text = pycrdt.Text()
    target.apply_update(decoded.payload)
    assert str(target_text) == "x" * 300 + " ünïcode"


def test_sync_handshake_with_pycrdt():
    server = _doc_with_text("server state")
    client = pycrdt.Doc()
    client["text"] = client_text = pycrdt.Text()
    step1 = yp.decode_message(pycrdt.create_sync_message(client))
    assert (step1.kind, step1.subtype) == (yp.MESSAGE_SYNC, yp.SYNC_STEP1)
    assert step1.payload == client.get_state()
    reply = yp.encode_sync_step2(server.get_update(step1.payload))
    # pycrdt's handler takes the message without the leading MESSAGE_SYNC byte
    assert pycrdt.handle_sync_message(reply[1:], client) is None
    assert str(client_text) == "server state"
    # and the reverse: pycrdt answers our step1 with a step2 that we decode
    answer = pycrdt.handle_sync_message(yp.encode_sync_step1(pycrdt.Doc().get_state())[1:], server)
    step2 = yp.decode_message(answer)
    assert (step2.kind, step2.subtype) == (yp.MESSAGE_SYNC, yp.SYNC_STEP2)
    fresh = pycrdt.Doc()
    fresh["text"] = fresh_text = pycrdt.Text()
    fresh.apply_update(step2.payload)
    assert str(fresh_text) == "server state"


# --------------------------------------------------------------------------- awareness


def test_awareness_update_exact_and_roundtrip():
    entries = [(1, 0, '{"user":"a"}'), (2**32, 7, "null"), (2**53, 2**20, '{"n":"é"}')]
    encoded = yp.encode_awareness_update(entries)
    assert encoded[:12] == b"\x03\x01\x00\x0c" + b'{"user":"a"}'[:8]
    assert yp.decode_awareness_update(encoded) == entries
    assert yp.encode_awareness_update([]) == b"\x00"
    assert yp.decode_awareness_update(b"\x00") == []
    assert yp.encode_awareness_update([(5, 1, "null")]) == b"\x01\x05\x01\x04null"


def test_awareness_matches_pycrdt():
    doc = pycrdt.Doc()
    awareness = pycrdt.Awareness(doc)
    awareness.set_local_state({"user": {"name": "ann"}, "cursor": None})
    client_id = awareness.client_id
    theirs = awareness.encode_awareness_update([client_id])
    [(cid, clock, state)] = yp.decode_awareness_update(theirs)
    assert cid == client_id
    assert clock == awareness.meta[client_id]["clock"]
    assert state == '{"user":{"name":"ann"},"cursor":null}'
    assert yp.encode_awareness_update([(cid, clock, state)]) == theirs
    # pycrdt applies our removal message (clock + 1, "null") on another peer
    other = pycrdt.Awareness(pycrdt.Doc())
    other.apply_awareness_update(theirs, "test")
    assert client_id in other.states
    other.apply_awareness_update(yp.encode_awareness_update([(cid, clock + 1, "null")]), "test")
    assert client_id not in other.states
    # non-ASCII state uses the UTF-8 byte length, which pycrdt's decoder also expects
    other.apply_awareness_update(yp.encode_awareness_update([(9, 1, '{"n":"zoë 😀"}')]), "test")
    assert other.states[9] == {"n": "zoë 😀"}


@pytest.mark.parametrize(
    "update",
    [
        b"",
        b"\x01",  # one entry announced, none present
        b"\x01\x05",
        b"\x01\x05\x01",
        b"\x01\x05\x01\x05null",  # state length past the end
        b"\x01\x05\x01\x02\xff\xfe",  # invalid UTF-8
        b"\x01\x05\x01\x04nullX",  # trailing byte
        b"\x02\x05\x01\x04null",
        b"\xff\xff\xff\xff\x0f\x05\x01\x04null",  # absurd count
        b"\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01\x01\x04null",  # overlong client id
    ],
)
def test_decode_awareness_update_rejects(update):
    with pytest.raises(DecodeError):
        yp.decode_awareness_update(update)


# --------------------------------------------------------------------------- fuzz

if given is not None:
    fuzz = settings(database=None, deadline=None, max_examples=300)
    small_binary = st.binary(max_size=40)
    framed = st.tuples(st.integers(0, 4), st.integers(0, 3), small_binary).map(
        lambda t: bytes(t[:2]) + t[2]
    )

    @fuzz
    @given(small_binary | framed)
    def test_fuzz_decode_message_only_raises_decode_error(data):
        try:
            message = yp.decode_message(data)
        except DecodeError:
            return
        assert message.kind in (0, 1, 2, 3)

    @fuzz
    @given(small_binary, st.integers(-2, 45))
    def test_fuzz_readers_only_raise_decode_error(buf, pos):
        for reader in (yp.read_var_uint, yp.read_var_bytes):
            try:
                _, new_pos = reader(buf, pos)
            except DecodeError:
                continue
            assert pos < new_pos <= len(buf)

    @fuzz
    @given(small_binary)
    def test_fuzz_decode_awareness_only_raises_decode_error(update):
        try:
            entries = yp.decode_awareness_update(update)
        except DecodeError:
            return
        assert yp.encode_awareness_update(entries) == update or any(
            b >= 0x80 for b in update
        )  # only non-minimal varUints can fail to re-encode byte-for-byte

    @fuzz
    @given(st.integers(0, 2**53))
    def test_fuzz_var_uint_roundtrip(value):
        encoded = yp.write_var_uint(value)
        assert yp.read_var_uint(encoded, 0) == (value, len(encoded))

    @fuzz
    @given(
        st.lists(
            st.tuples(st.integers(0, 2**53), st.integers(0, 2**53), st.text(max_size=20)),
            max_size=5,
        )
    )
    def test_fuzz_awareness_roundtrip(entries):
        assert yp.decode_awareness_update(yp.encode_awareness_update(entries)) == entries


# --- unintegrated: what a Doc parked as pending -------------------------------------------------


def _updates_of(edit) -> list[bytes]:
    doc = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    edit(doc.get("t", type=pycrdt.Text))
    return updates


def _parked(doc, update: bytes) -> bool:
    doc.apply_update(update)
    state = doc.get_state()
    return yp.unintegrated(pycrdt.get_update(update, state), yp.decode_state_vector(state))


def test_unintegrated_tells_parked_structs_and_deletions_from_integrated_ones():
    def edit(text):
        text.insert(0, "hello world")
        text.insert(5, " there")  # builds on the first insert
        del text[0:3]  # deletes items of the first insert

    first, second, deletion = _updates_of(edit)
    in_order = pycrdt.Doc()
    assert [_parked(in_order, u) for u in (first, second, deletion)] == [False, False, False]
    assert not _parked(in_order, second)  # a duplicate is already there
    out_of_order = pycrdt.Doc()
    assert _parked(out_of_order, deletion)  # deletes items the Doc has not seen
    assert _parked(out_of_order, second)  # builds on a struct the Doc has not seen
    assert not _parked(out_of_order, first)  # and once it arrives, everything integrates
    assert str(out_of_order.get("t", type=pycrdt.Text)) == "lo there world"


def test_unintegrated_reads_only_well_formed_leftovers():
    assert not yp.unintegrated(b"\x00\x00", {})
    assert yp.unintegrated(b"\x01", {})  # struct blocks left over
    assert yp.unintegrated(b"\x00\x01\x07\x01\x00\x02", {7: 1})  # deletes clocks 0..1
    assert not yp.unintegrated(b"\x00\x01\x07\x01\x00\x02", {7: 2})
    with pytest.raises(DecodeError):
        yp.unintegrated(b"\x00\x01\x07", {})


def test_check_update_refuses_a_client_count_the_bytes_cannot_hold():
    """pycrdt reserves room for the declared client count first: 6 bytes cost 512 MiB."""
    with pytest.raises(DecodeError):
        yp.check_update(bytes([0x80, 0x80, 0x80, 0x80, 0x01, 0x00]))
    with pytest.raises(DecodeError):
        yp.decode_state_vector(bytes([0x80, 0x80, 0x80, 0x80, 0x01, 0x00]))
    doc = pycrdt.Doc()
    doc.get("t", type=pycrdt.Text).insert(0, "fine")
    yp.check_update(doc.get_update())  # a real update passes
    yp.check_update(b"\x00\x00")  # and the empty one


# --------------------------------------------------------------------------- auth, delete sets


def test_permission_denied_decodes_what_it_encodes():
    message = yp.decode_message(yp.encode_permission_denied("read-only é"))
    assert message == YMessage(yp.MESSAGE_AUTH, None, b"\x00\x0cread-only \xc3\xa9")
    assert yp.decode_permission_denied(message.payload) == "read-only é"
    for bad in (b"", b"\x01\x00", b"\x00\x05ab", b"\x00\x01\xff"):
        with pytest.raises(DecodeError):
            yp.decode_permission_denied(bad)


def test_delete_set_exact():
    # no structs; 1 client (7) with 2 ranges: 0+3, 10+1
    assert yp.delete_set(b"\x00\x01\x07\x02\x00\x03\x0a\x01") == {7: [(0, 3), (10, 1)]}
    assert yp.delete_set(b"\x00\x00") == {}
    assert yp.delete_set(b"\x01\x01\x07\x00") is None  # holds structs
    for bad in (
        b"\x00",  # no delete set
        b"\x00\x05\x07\x01",  # five clients in four bytes
        b"\x00\x01\x07\x09\x00\x01",  # nine ranges in two bytes
        b"\x00\x01\x07\x01\x00",  # a range cut short
        b"\x00\x00\x00",  # trailing bytes
    ):
        with pytest.raises(DecodeError):
            yp.delete_set(bad)


def test_delete_set_reads_pycrdt_leftovers():
    doc = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    text.insert(0, "hello world")
    del text[0:3]
    ours = yp.delete_set(doc.get_update(doc.get_state()))
    assert ours == {doc.client_id: [(0, 3)]}
    peer = pycrdt.Doc()
    peer.apply_update(doc.get_update())
    del peer.get("t", type=pycrdt.Text)[0:2]  # deletes one more character
    theirs = yp.delete_set(pycrdt.get_update(peer.get_update(), doc.get_state()))
    assert not yp.deletions_covered(theirs, ours)
    same = yp.delete_set(pycrdt.get_update(doc.get_update(), doc.get_state()))
    assert yp.deletions_covered(same, ours)


def test_deletions_covered_merges_ranges():
    by = {1: [(5, 5), (0, 5), (20, 2)]}
    assert yp.deletions_covered({1: [(0, 10)]}, by)  # 0..4 and 5..9 merge
    assert yp.deletions_covered({1: [(21, 1), (3, 0)]}, by)
    assert not yp.deletions_covered({1: [(9, 2)]}, by)
    assert not yp.deletions_covered({2: [(0, 1)]}, by)
    assert yp.deletions_covered({}, {})

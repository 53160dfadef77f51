"""The fast ISO 8583 path against its oracle, pyiso8583: same bytes out, same fields in.

Messages come from the codec tests' generator (every MTI, optional fields, field 90) and
are encoded with and without a MAC; frames are also truncated and mutated, so the fast
unpacker is shown either to agree with pyiso8583 or to step aside (``None``).
"""

from __future__ import annotations

from collections.abc import Callable

import iso8583
from hypothesis import given
from hypothesis import strategies as st

from protocol import codec, fast8583
from protocol.errors import ProtocolError
from protocol.mac import MacKey
from protocol.messages import Message
from tests.test_codec import messages

KEY = MacKey("aes-cmac", bytes(range(16)))


def _oracle_bytes(doc: dict[str, str]) -> bytes | None:
    try:
        return bytes(iso8583.encode(dict(doc), codec.SPEC)[0])
    except iso8583.EncodeError:
        return None


def _oracle_doc(data: bytes) -> dict[str, str] | None:
    try:
        return iso8583.decode(bytearray(data), codec.SPEC)[0]
    except (iso8583.DecodeError, UnicodeDecodeError, ValueError):
        return None


def _doc(msg: Message, mac: bool) -> dict[str, str]:
    """The field dict ``codec.encode`` packs, read back through the oracle."""
    doc = _oracle_doc(codec.encode(msg, KEY if mac else None))
    assert doc is not None
    return {k: v for k, v in doc.items() if k not in ("p", "1")}


@given(messages, st.booleans())
def test_pack_is_byte_identical_to_pyiso8583(msg: Message, mac: bool) -> None:
    doc = _doc(msg, mac)
    packed = fast8583.pack(doc)
    assert packed is not None
    assert packed == _oracle_bytes(doc)


@given(messages, st.booleans())
def test_codec_encode_is_byte_identical_to_pyiso8583(msg: Message, mac: bool) -> None:
    """The codec's bytes (MAC field included) are exactly what pyiso8583 packs for the same fields."""
    data = codec.encode(msg, KEY if mac else None)
    doc = _oracle_doc(data)
    assert doc is not None
    assert _oracle_bytes({k: v for k, v in doc.items() if k not in ("p", "1")}) == data


@given(messages, st.booleans())
def test_unpack_decodes_like_pyiso8583(msg: Message, mac: bool) -> None:
    data = codec.encode(msg, KEY if mac else None)
    assert fast8583.unpack(data) == _oracle_doc(data)
    assert codec.decode(data, KEY if mac else None) == msg


@given(messages, st.booleans(), st.data())
def test_mutated_frames_agree_or_fall_back(msg: Message, mac: bool, data: st.DataObject) -> None:
    """On a damaged frame the fast unpacker returns pyiso8583's fields or None, never other fields."""
    raw = bytearray(codec.encode(msg, KEY if mac else None))
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=3)):
        raw[pos] = byte
    frame = bytes(raw[:data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans()) else raw)
    fast = fast8583.unpack(frame)
    assert fast is None or fast == _oracle_doc(frame)


@given(st.dictionaries(st.sampled_from(["t", "2", "3", "4", "11", "41", "48", "64", "90", "99", "128"]),
                       st.text(st.characters(min_codepoint=32, max_codepoint=300), max_size=25)))
def test_pack_agrees_or_falls_back_on_arbitrary_documents(doc: dict[str, str]) -> None:
    """Wrong lengths, unknown fields, non-ASCII text: the fast packer gives the oracle's bytes or None."""
    packed = fast8583.pack(doc)
    assert packed is None or packed == _oracle_bytes(doc)


def _outcome(decode: Callable[[], tuple[Message, str | None]]) -> object:
    try:
        return decode()
    except ProtocolError as exc:
        return str(exc)


@given(messages, st.booleans(), st.data())
def test_codec_decodes_damaged_frames_like_pyiso8583(msg: Message, mac: bool, data: st.DataObject) -> None:
    """The codec's outcome on any frame (message, MAC field, or the error's wording) is the oracle path's."""
    raw = bytearray(codec.encode(msg, KEY if mac else None))
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=2)):
        raw[pos] = byte
    frame = bytes(raw[:data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans()) else raw)
    fast = _outcome(lambda: codec._decode(frame))
    assert fast == _outcome(lambda: codec._message(codec._unpack_oracle(frame)))


def test_decode_parses_every_repeat_of_a_run() -> None:
    """Nothing but the frame just parsed is remembered: another frame in between means a new parse."""
    a = codec.encode(Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001"))
    b = codec.encode(Message(mti="0200", stan="000002", transmission="1125100000", tid="POS00001"))
    first = codec.decode(a)
    codec.decode(b)
    again = codec.decode(a)
    assert again == first and again is not first

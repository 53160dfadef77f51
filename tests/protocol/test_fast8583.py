"""The fast ISO 8583 path against its oracle, pyiso8583: same bytes out, same fields in.

Messages come from the codec tests' generator (every MTI, optional fields, field 90) and
are encoded with and without a MAC; frames are also truncated and mutated, so the fast
unpacker is shown either to agree with pyiso8583 or to step aside (``None``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import iso8583
import pytest
from hypothesis import given
from hypothesis import strategies as st

from possim.protocol import codec, fast8583
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData
from tests.protocol.test_codec import messages

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


# -- the codec's one-pass fast path against its reference (fields via fast8583/pyiso8583) ------

_ANY_TEXT = st.text(st.sampled_from("09AZaz _-~\x00\x7f\u0663\u00b2\u00e9"), max_size=20)


def _digits_or(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n) | _ANY_TEXT


def _maybe_digits(n: int) -> st.SearchStrategy[str | None]:
    return st.none() | _digits_or(n)


#: Odd values per Message attribute: wrong lengths, lower case, control and non-ASCII characters.
_ODD: dict[str, st.SearchStrategy[object]] = {
    "mti": st.sampled_from(["0210", "0400", "0500", "0510", "9999", "02000", "\u0663200"]),
    "stan": _digits_or(6),
    "transmission": _digits_or(10),
    "tid": st.sampled_from(["POS00001", "POS\u00e90001", "POS0001", "POS\x000001", "POS\x7f0001"]) | _ANY_TEXT,
    "mid": st.none() | _ANY_TEXT,
    "pan": st.none() | st.text("0123456789", min_size=11, max_size=20) | _ANY_TEXT,
    "processing_code": _maybe_digits(6),
    "amount": st.none() | st.integers(-5, 10**12 + 5) | st.booleans(),
    "local_time": _maybe_digits(6),
    "local_date": _maybe_digits(4),
    "rrn": st.none() | st.text("0aZ", min_size=12, max_size=12) | _ANY_TEXT,
    "auth_code": st.none() | st.text("0a Z", min_size=6, max_size=6) | _ANY_TEXT,
    "response_code": st.none() | st.sampled_from(["00", "A0", "a0", "0 "]) | _ANY_TEXT,
    "status": st.none() | st.sampled_from(["APPROVED", "NOT_FOUND", "_", "0" * 62]) | _ANY_TEXT,
    "batch_totals": st.none() | st.text("0123456789", min_size=61, max_size=63) | _ANY_TEXT,
    "currency": _maybe_digits(3),
    "original": st.none() | st.builds(OriginalData, mti=_digits_or(4), stan=_digits_or(6),
                                      transmission=_digits_or(10)),
}


_ODD_CHARS = "09AZaz _-~\x00\x1f\x7f\u0663\u00b2\u00e9"


@st.composite
def odd_messages(draw: st.DrawFn, attr: str) -> Message:
    """One of possim's messages with ``attr`` (and maybe one more attribute) given odd values.

    Half the time the odd value is one of the message's own values with one character
    changed, so that every other field stays valid and the changed one decides.
    """
    msg = draw(messages)
    changes: dict[str, object] = {}
    for name in [attr, *draw(st.lists(st.sampled_from(sorted(_ODD)), max_size=1))]:
        value = getattr(msg, name)
        if isinstance(value, str) and value and draw(st.booleans()):
            i = draw(st.integers(0, len(value) - 1))
            changes[name] = value[:i] + draw(st.sampled_from(_ODD_CHARS)) + value[i + 1:]
        else:
            changes[name] = draw(_ODD[name])
    return replace(msg, **changes)


def _encoded(encode: Callable[[], bytes]) -> object:
    """The bytes, or the exception's type and wording (a ``ProtocolError``, or whatever a bug in possim raises)."""
    try:
        return encode()
    except Exception as exc:  # the outcome under comparison includes unexpected errors
        return (type(exc), str(exc))


@pytest.mark.parametrize("attr", sorted(_ODD))
@given(data=st.data(), mac=st.booleans())
def test_fast_encode_gives_the_reference_bytes_or_its_error(attr: str, data: st.DataObject, mac: bool) -> None:
    """Right or wrong values, ASCII or not: ``encode`` gives exactly what the field-by-field reference gives."""
    msg = data.draw(odd_messages(attr) | messages)
    key = KEY if mac else None
    assert _encoded(lambda: codec.encode(msg, key)) == _encoded(lambda: codec._encode_reference(msg, key))


_BASE = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001")


@pytest.mark.parametrize("changes", [
    {"status": "0" * 62}, {"status": "_"}, {"status": "A" * 33}, {"batch_totals": "0" * 62, "status": "APPROVED"},
    {"batch_totals": "0" * 61}, {"pan": "0" * 11}, {"pan": "0" * 20}, {"tid": "POS\x7f0001"}, {"mid": "M" * 14},
    {"amount": True}, {"amount": 10**12}, {"amount": -1}, {"amount": 1.0}, {"mti": "0900"}, {"stan": "00000\u0663"},
    {"auth_code": "A0 01a"}, {"response_code": "a0"}, {"rrn": "00000000000-"},
    {"original": OriginalData("0200", "00001", "1125100000")},
])
def test_fast_encode_on_known_odd_values(changes: dict[str, object]) -> None:
    msg = replace(_BASE, **changes)  # type: ignore[arg-type]
    for key in (None, KEY):
        assert _encoded(lambda k=key: codec.encode(msg, k)) == _encoded(lambda k=key: codec._encode_reference(msg, k))


_ODD_FIELDS = {"2": st.text("0123456789", min_size=1, max_size=19),
               "4": st.text("0123456789a", min_size=12, max_size=12),
               "37": st.text("0aZ-", min_size=12, max_size=12), "38": st.text("0aZ -", min_size=6, max_size=6),
               "39": st.text("0aZ -", min_size=2, max_size=2), "41": st.text(" ~\x7f0", min_size=8, max_size=8),
               "48": st.text("0A_a", min_size=1, max_size=70), "64": st.text("0Fa-", min_size=16, max_size=16),
               "90": st.text("01", min_size=42, max_size=42), "128": st.text("0Fa", min_size=16, max_size=16)}


@given(messages, st.dictionaries(st.sampled_from(sorted(_ODD_FIELDS)), st.none(), max_size=3), st.data())
def test_fast_decode_on_frames_pyiso8583_packs_with_odd_fields(msg: Message, which: dict[str, None],
                                                                data: st.DataObject) -> None:
    """Short card numbers, long statuses, lower-case codes, both MAC fields: fast decode is the reference or None."""
    doc = _doc(msg, False)
    for field in which:
        doc[field] = data.draw(_ODD_FIELDS[field])
    frame = _oracle_bytes(doc)
    if frame is not None:
        fast = codec._decode_fast(frame)
        assert fast is None or fast == _outcome(lambda: codec._message(codec._unpack_oracle(frame)))


@pytest.mark.parametrize("attr", sorted(_ODD))
@given(mac=st.booleans(), data=st.data())
def test_fast_decode_agrees_with_the_reference_or_steps_aside(attr: str, mac: bool, data: st.DataObject) -> None:
    """On any frame (possim's, odd ones the reference packs, damaged ones) the fast decoder is the reference or None."""
    msg = data.draw(odd_messages(attr) | messages)
    try:
        raw = bytearray(codec._encode_reference(msg, KEY if mac else None))
    except ProtocolError:
        return
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=2)):
        raw[pos] = byte
    frame = bytes(raw[:data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans()) else raw)
    fast = codec._decode_fast(frame)
    assert fast is None or fast == _outcome(lambda: codec._message(codec._unpack_oracle(frame)))


@given(messages, st.booleans(), st.none() | st.text("0123456789", min_size=62, max_size=62))
def test_possims_own_messages_take_the_fast_path(msg: Message, mac: bool, batch: str | None) -> None:
    """The shapes possim sends (settlement batch totals included) never need the slow reference."""
    if batch is not None:
        msg = replace(msg, status=None, batch_totals=batch)
    assert codec._encode_fast(msg, mac) is not None
    data = codec.encode(msg, KEY if mac else None)
    assert codec._decode_fast(data) == (msg, data[-16:].decode() if mac else None)

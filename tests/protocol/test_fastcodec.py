"""The fixed layouts (``protocol.fastcodec``) against the codec's reference path and pyiso8583.

For every shape possim sends, with and without a MAC, under every MTI: random values within
the shape's rules must give the reference's bytes byte for byte (and pyiso8583's), and decode
back to the reference's message and MAC field. Odd values, unknown shapes and damaged frames
must make the layouts step aside (``None``), so the codec's outcome, error class and wording
included, stays the reference's.
"""

from __future__ import annotations

from dataclasses import replace

import iso8583
import pytest
from hypothesis import given
from hypothesis import strategies as st

from possim.protocol import codec, fast8583, fastcodec
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData
from tests.protocol.test_fast8583 import _ODD, _ODD_CHARS, _encoded, odd_messages

KEY = MacKey("aes-cmac", bytes(range(16)))
_DIGITS = "0123456789"
_ALNUM = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PRINTABLE = "".join(map(chr, range(32, 127)))


def _text(chars: str, low: int, high: int | None = None) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(chars), min_size=low, max_size=low if high is None else high)


#: Values within each attribute's rules (``protocol.codec._FIELDS``).
_VALUES: dict[str, st.SearchStrategy[object]] = {
    "pan": _text(_DIGITS, 12, 19),
    "processing_code": _text(_DIGITS, 6),
    "amount": st.integers(0, 10**12 - 1),
    "transmission": _text(_DIGITS, 10),
    "stan": _text(_DIGITS, 6),
    "local_time": _text(_DIGITS, 6),
    "local_date": _text(_DIGITS, 4),
    "rrn": _text(_ALNUM, 12),
    "auth_code": _text(_ALNUM + " ", 6),
    "response_code": _text(_DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 2),
    "tid": _text(_PRINTABLE, 8),
    "mid": _text(_PRINTABLE, 15),
    "status": _text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", 1, 32),
    "currency": _text(_DIGITS, 3),
    "original": st.builds(OriginalData, mti=_text(_DIGITS, 4), stan=_text(_DIGITS, 6),
                          transmission=_text(_DIGITS, 10)),
}


@st.composite
def shaped(draw: st.DrawFn, shape: frozenset[str], mtis: tuple[str, ...] = tuple(sorted(M.KNOWN))) -> Message:
    """A message of ``shape`` (exactly its fields), one of ``mtis``, random values within the rules."""
    values = {attr: draw(_VALUES[attr]) for attr in sorted(shape)}
    return Message(mti=draw(st.sampled_from(mtis)), **values)  # type: ignore[arg-type]


def _reference_decode(data: bytes) -> tuple[Message, str | None]:
    return codec._message(fast8583.unpack(data) or codec._unpack_oracle(data))


def _pyiso8583_bytes(data: bytes) -> bytes:
    """The frame as pyiso8583 packs what it decodes from it."""
    doc = iso8583.decode(bytearray(data), codec.SPEC)[0]
    return bytes(iso8583.encode({k: v for k, v in doc.items() if k not in ("p", "1")}, codec.SPEC)[0])


@pytest.mark.parametrize(("mtis", "shape"), fastcodec.SENT, ids=lambda s: "+".join(sorted(s)))
@given(data=st.data(), mac=st.booleans())
def test_known_shapes_encode_and_decode_as_the_reference(mtis: tuple[str, ...], shape: frozenset[str],
                                                          data: st.DataObject, mac: bool) -> None:
    msg = data.draw(shaped(shape, mtis))
    key = KEY if mac else None
    text = fastcodec.encode_text(msg, mac)
    assert text is not None, "a known shape with good values takes the fixed layout"
    reference = codec._encode_reference(msg, key)
    frame = codec.encode(msg, key)
    assert frame == reference
    assert frame[:len(frame) - 16 * mac] == text.encode("ascii")
    assert _pyiso8583_bytes(frame) == frame
    fast = fastcodec.decode_text(frame)
    assert fast is not None
    assert fast == _reference_decode(frame)
    assert fast[0] == msg
    assert codec.decode(frame, key) == msg


@pytest.mark.parametrize("shape", fastcodec.SHAPES, ids=lambda s: "+".join(sorted(s)))
@given(data=st.data(), mac=st.booleans())
def test_known_shapes_decode_under_any_mti(shape: frozenset[str], data: st.DataObject, mac: bool) -> None:
    """A frame's layout is its bitmap's: under an MTI possim does not send it with, it still decodes as the
    reference decodes it (the encoding of such a message is the other paths')."""
    msg = data.draw(shaped(shape))
    frame = codec.encode(msg, KEY if mac else None)
    assert fastcodec.decode_text(frame) == _reference_decode(frame)
    assert _reference_decode(frame)[0] == msg


@st.composite
def odd_shaped(draw: st.DrawFn, attr: str) -> Message:
    """A message of a known shape with ``attr`` given an odd value (often one character changed)."""
    carrying = [shape for shape in fastcodec.SHAPES if attr in shape] or list(fastcodec.SHAPES)
    msg = draw(shaped(draw(st.sampled_from(carrying))))
    value = getattr(msg, attr)
    if isinstance(value, str) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return replace(msg, **{attr: value[:i] + draw(st.sampled_from(_ODD_CHARS)) + value[i + 1:]})
    return replace(msg, **{attr: draw(_ODD[attr])})


@pytest.mark.parametrize("attr", sorted(_ODD))
@given(data=st.data(), mac=st.booleans())
def test_odd_values_step_aside_or_agree(attr: str, data: st.DataObject, mac: bool) -> None:
    """Wrong lengths, characters, types, extra fields: the layout gives the reference's text or ``None``,
    and ``encode`` the reference's bytes or its error."""
    msg = data.draw(st.one_of(odd_shaped(attr), odd_shaped(attr), odd_messages(attr)))
    key = KEY if mac else None
    text = fastcodec.encode_text(msg, mac)
    if text is not None:
        reference = codec._encode_reference(msg, key)
        assert reference[:len(reference) - 16 * mac] == text.encode("ascii")
    assert _encoded(lambda: codec.encode(msg, key)) == _encoded(lambda: codec._encode_reference(msg, key))


@pytest.mark.parametrize("shape", fastcodec.SHAPES, ids=lambda s: "+".join(sorted(s)))
@given(data=st.data(), mac=st.booleans())
def test_damaged_frames_step_aside_or_agree(shape: frozenset[str], data: st.DataObject, mac: bool) -> None:
    """Changed bytes, cut or stretched frames, wrong length prefixes: the reference's message or ``None``,
    and the codec's outcome (message, or error class and wording) is the reference's."""
    raw = bytearray(codec.encode(data.draw(shaped(shape)), KEY if mac else None))
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)),
                                        min_size=1, max_size=3)):
        raw[pos] = byte
    frame = bytes(raw[:data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans()) else raw)
    fast = fastcodec.decode_text(frame)
    reference = _outcome(frame, _reference_decode)
    if fast is not None:
        assert fast == reference
    assert _outcome(frame, codec._decode) == reference


def _outcome(frame: bytes, decode: object) -> object:
    try:
        return decode(frame)  # type: ignore[operator]
    except ProtocolError as exc:
        return (type(exc), str(exc))


_PURCHASE = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001", mid="MERCHANT0000001",
                    pan="4000000000000002", processing_code="000000", amount=1000, local_time="100000",
                    local_date="1125", currency="978")


@pytest.mark.parametrize("changes", [
    {"currency": None}, {"life": "000001"}, {"batch_totals": "0" * 62}, {"rrn": "000000000001"},
    {"mid": None, "pan": None}, {"status": "APPROVED"},
])
def test_unknown_shapes_fall_back_to_the_present_codec(changes: dict[str, object]) -> None:
    """A shape outside ``SHAPES`` is no layout's: the codec encodes and decodes it as before."""
    msg = Message(**{**{k: getattr(_PURCHASE, k) for k in Message.__slots__}, **changes})  # type: ignore[arg-type]
    assert fastcodec.encode_text(msg, True) is None
    frame = codec.encode(msg, KEY)
    assert frame == codec._encode_reference(msg, KEY)
    assert fastcodec.decode_text(frame) is None
    assert codec.decode(frame, KEY) == msg


@pytest.mark.parametrize("prefix", [b"15", b"20", b"1X", b"99", b"00"])
def test_a_corrupt_length_prefix_raises_as_before(prefix: bytes) -> None:
    """Field 2's length prefix disagreeing with the frame: no layout takes it, and ``decode`` raises the
    reference's ``ProtocolError`` with the reference's wording."""
    good = codec.encode(_PURCHASE, KEY)
    assert good[20:22] == b"16"
    frame = good[:20] + prefix + good[22:]
    assert fastcodec.decode_text(frame) is None
    with pytest.raises(ProtocolError) as raised:
        codec.decode(frame, KEY)
    with pytest.raises(ProtocolError) as expected:
        _reference_decode(frame)
    assert (type(raised.value), str(raised.value)) == (type(expected.value), str(expected.value))


def test_the_purchase_frames_take_the_layouts() -> None:
    """The request and answer of a purchase, with a MAC as terminals send them, are known shapes."""
    answer = _PURCHASE.response("00", rrn="329100000001", auth_code="A00001")
    for msg in (_PURCHASE, answer):
        frame = codec.encode(msg, KEY)
        assert fastcodec.encode_text(msg, True) is not None
        assert fastcodec.decode_text(frame) == (msg, frame[-16:].decode("ascii"))

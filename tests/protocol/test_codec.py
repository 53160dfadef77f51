"""ISO 8583 codec: real bytes round-trip, and bad bytes raise exactly one error type."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from possim.protocol import codec
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.messages import Message, OriginalData

digits = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731
printable8 = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=8, max_size=8)

messages = st.builds(
    Message,
    mti=st.sampled_from(sorted(M.KNOWN)),
    stan=digits(6),
    transmission=digits(10),
    tid=printable8,
    mid=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=15, max_size=15),
    pan=st.none() | st.text("0123456789", min_size=12, max_size=19),
    processing_code=st.none() | digits(6),
    amount=st.none() | st.integers(0, 10**12 - 1),
    local_time=st.none() | digits(6),
    local_date=st.none() | digits(4),
    rrn=st.none() | st.text("0123456789ABCDEFabcdef", min_size=12, max_size=12),
    auth_code=st.none() | st.text("0123456789ABC ", min_size=6, max_size=6),
    response_code=st.none() | st.sampled_from(["00", "05", "12", "25", "51", "91", "96"]),
    status=st.none() | st.sampled_from(["APPROVED", "NOT_FOUND", "DECLINED", "REVERSED"]),
    currency=st.none() | digits(3),
    original=st.none() | st.builds(OriginalData, mti=st.sampled_from(["0100", "0200"]), stan=digits(6),
                                   transmission=digits(10)),
)


@given(messages)
def test_round_trip(msg: Message) -> None:
    """decode(encode(m)) == m for every message possim can build."""
    assert codec.decode(codec.encode(msg)) == msg


@given(messages, st.data())
def test_corrupted_frames_raise_only_protocol_error(msg: Message, data: st.DataObject) -> None:
    """Truncated or bit-flipped frames either decode to a valid message or raise ProtocolError."""
    raw = bytearray(codec.encode(msg))
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=3))
    for pos, byte in flips:
        raw[pos] = byte
    with contextlib.suppress(ProtocolError):
        codec.decode(bytes(raw[:cut] if data.draw(st.booleans()) else raw))


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_protocol_error(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        codec.decode(raw)


def test_known_bytes_of_a_purchase() -> None:
    """A 0200 encodes to the exact ISO 8583 ASCII frame (MTI, hex bitmap, fields in order)."""
    msg = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001", mid="MERCHANT0000001",
                  pan="4000000000000002", processing_code="000000", amount=2500, local_time="100000",
                  local_date="1125", currency="978")
    assert codec.encode(msg) == (b"0200" b"7238000000C08000" b"164000000000000002" b"000000" b"000000002500"
                                 b"1125100000" b"000001" b"100000" b"1125" b"POS00001" b"MERCHANT0000001" b"978")


def test_reversal_carries_original_data_elements_in_field_90() -> None:
    msg = Message(mti="0400", stan="000002", transmission="1125100030", tid="POS00001",
                  original=OriginalData("0200", "000001", "1125100000"))
    raw = codec.encode(msg)
    assert b"0200000001112510000000000000000000000000" in raw
    assert codec.decode(raw).original == OriginalData("0200", "000001", "1125100000")


@pytest.mark.parametrize("raw, reason", [
    (b"", "malformed"),
    (b"9999", "malformed"),
    (b"0900" + b"0020000000000000" + b"000001", "unknown MTI"),
    (b"0200" + b"0020000000000000" + b"000001", "missing field"),
    # bit 65 of the secondary bitmap set: pyiso8583 looks for fields past 128 (a KeyError once escaped)
    (b"0200" + b"8000000000000000" + b"8000000000000000" + b"0" + b"8" * 16, "malformed"),
    (b"0200" + b"b000000000000000" + b"8000000000000000" + b"0" + b"8" * 16, "malformed"),
])
def test_bad_frames_have_a_one_line_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason) as info:
        codec.decode(raw)
    assert "\n" not in str(info.value)


def test_response_mti_rules() -> None:
    assert M.response_to("0200") == "0210"
    assert M.response_to("0401") == "0410"
    assert M.response_to("0221") == "0230"
    assert M.response_to("0600") == "0610"


@given(messages, st.sampled_from(["00", "05", "91"]), st.none() | st.text("0123456789AB", min_size=12, max_size=12))
def test_response_is_dataclasses_replace(msg: Message, rc: str, rrn: str | None) -> None:
    """``Message.response`` copies every field as ``dataclasses.replace`` would, and refuses the same mistakes."""
    mti = M.response_to(msg.mti) if msg.mti in M.REQUESTS else None
    if mti is None:
        return
    assert msg.response(rc, rrn=rrn) == replace(msg, mti=mti, response_code=rc, rrn=rrn)
    with pytest.raises(TypeError):
        msg.response(rc, mti="0210")
    with pytest.raises(TypeError):
        msg.response(rc, no_such_field="x")


def test_a_host_drops_a_frame_whose_secondary_bitmap_names_fields_past_128() -> None:
    """Hostile bytes reach the host as a refusal it logs, never as an exception out of ``receive``."""
    from tests.helpers import new_host

    frame = b"0200" + b"8000000000000000" + b"8000000000000000" + b"0" + b"8" * 16
    actions = new_host().receive(0.0, frame)
    assert actions and all(type(a).__name__ != "Send" for a in actions)

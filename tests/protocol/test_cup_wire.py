"""The CUP wire format (protocol.cup, framing.CupFraming, protocol.dialects).

The decisive check is ``test_independent_decoder_*``: py8583, an ISO 8583 library written
independently of pyiso8583 (PyPI ``py8583``), parses possim's CUP bytes with its own BCD
spec and must find the same fields.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from py8583 import py8583spec
from py8583.py8583 import DT, Iso8583

from possim.protocol import codec, cup, dialects
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.framing import CupFraming, Deframer, LengthFraming, Tpdu
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData

KEY = MacKey("cup-ecb", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"))  # the CUP terminal MAC, a 16-byte MAK

SALE = Message(
    mti="0200", stan="000042", transmission="0612103015", tid="TERM0001", mid="898310048990001",
    pan="6212345678901234", processing_code="000000", amount=12345, local_time="103015",
    local_date="0612", currency="156", batch="000001",
)
SALE_RESPONSE = SALE.response("00", rrn="061210000042", auth_code="A12345")
REVERSAL = Message(  # CUP: the original again, same STAN and date and time, field 39 = reason (98: no answer)
    mti="0400", stan=SALE.stan, transmission=SALE.transmission, tid=SALE.tid, mid=SALE.mid, pan=SALE.pan,
    processing_code="000000", amount=SALE.amount, local_time=SALE.local_time, local_date=SALE.local_date,
    currency="156", response_code="98", batch="000001",
)
#: A completion advice names its pre-authorization in field 61 (batch, trace, date; possim: time, MTI).
ADVICE = Message(
    mti="0220", stan="000043", transmission="0612110000", tid=SALE.tid, mid=SALE.mid, pan=SALE.pan,
    processing_code="000000", amount=42000, rrn="061210000041", auth_code="A12344", currency="156",
    original=OriginalData("0100", "000041", "0612093015"), batch="000001",
)


# -- an independent decoder: py8583 with the CUP field types -------------------------------------

class _CupSpec(py8583spec.IsoSpec1987BCD):
    """py8583's BCD 1987 spec, told CUP's exceptions: 48/60/61 numeric BCD, 49/63 ASCII text."""

    def SetContentTypes(self) -> None:  # noqa: N802 (py8583's API)
        # py8583 keeps its tables in shared class-level dicts: work on private copies.
        self.ContentTypes = copy.deepcopy(py8583spec.ContentTypes["1987"])
        self.DataTypes = {}

    def SetDataTypes(self) -> None:  # noqa: N802
        super().SetDataTypes()
        for field, max_len in ((48, 322), (60, 30), (61, 29)):
            self.ContentType(field, "n")
            self.MaxLength(field, max_len)
            self.DataType(field, DT.BCD)
        for field, content in ((49, "an"), (63, "ans")):
            self.ContentType(field, content)
            self.DataType(field, DT.ASCII)


def independent(data: bytes) -> Iso8583:
    return Iso8583(data, _CupSpec())


def test_independent_decoder_reads_the_sale_field_by_field() -> None:
    raw = cup.encode(SALE, KEY)
    other = independent(raw)
    assert other.MTI() == "0200"
    assert [f for f in range(1, 129) if other.Field(f) == 1] == [2, 3, 4, 11, 12, 13, 22, 25, 35, 41, 42, 49, 60, 64]
    assert other.FieldData(2) == int(SALE.pan)
    assert other.FieldData(3) == 0
    assert other.FieldData(4) == SALE.amount
    assert other.Field(7) != 1, "CUP terminals send no field 7: 13 and 12 carry the date and time"
    assert other.FieldData(11) == 42
    assert other.FieldData(22) == int("022" + "0"), "entry mode 022 (stripe, no PIN), left aligned"
    assert other.FieldData(25) == 0
    assert other.FieldData(35) == SALE.pan + "=3012101"
    # 60.1 type 22 (sale), 60.2 batch 000001, 60.3 network code 000, CUP's trailing pad nibble
    assert other.FieldData(60) == int("22" + "000001" + "000" + "0")
    assert other.FieldData(12) == int(SALE.local_time)
    assert other.FieldData(13) == int(SALE.local_date)
    assert other.FieldData(41) == SALE.tid
    assert other.FieldData(42) == SALE.mid
    assert other.FieldData(49) == "156"
    assert bytes.fromhex(other.FieldData(64)) == KEY.compute(raw[:-8])


def test_independent_decoder_reads_the_response_and_the_reversal() -> None:
    response = independent(cup.encode(SALE_RESPONSE, KEY))
    assert response.MTI() == "0210"
    assert (response.FieldData(37), response.FieldData(38), response.FieldData(39)) == ("061210000042", "A12345", "00")
    assert response.FieldData(11) == 42 and response.FieldData(41) == "TERM0001"
    assert response.Field(7) != 1 and response.FieldData(60) == int("22" + "000001" + "000" + "0")
    reversal = independent(cup.encode(replace(REVERSAL, auth_code="A12345", response_code="06"), KEY))
    assert reversal.MTI() == "0400"
    assert reversal.FieldData(11) == 42, "a CUP reversal keeps the original STAN"
    assert reversal.FieldData(39) == "06" and reversal.FieldData(38) == "A12345"
    assert reversal.FieldData(4) == SALE.amount and reversal.FieldData(2) == int(SALE.pan)
    assert reversal.FieldData(12) == 103015 and reversal.FieldData(13) == 612, "the original's date and time"
    assert reversal.Field(1) != 1 and reversal.Field(90) != 1, "no field 90, no secondary bitmap"
    assert reversal.Field(7) != 1 and reversal.Field(22) == 1 and reversal.Field(35) == 1


def test_independent_decoder_reads_the_settlement_with_batch_totals() -> None:
    totals = cup.BatchTotals(debit_amount=150000, debit_count=3, credit_amount=2500, credit_count=1)
    fields = {
        "t": cup.SETTLEMENT, "11": "000051", "41": "TERM0001", "42": "898310048990001",
        "48": totals.to_field48(), "49": "156",
        "60": "00" + "000001" + "201",  # 60.1 type 00, 60.2 batch 000001, 60.3 network code 201 (settlement)
        "63": "01 ",  # operator
    }
    raw = cup.encode_fields(fields)
    other = independent(raw)
    assert other.MTI() == "0500"
    assert other.FieldData(11) == 51
    assert other.FieldData(48) == int(totals.to_field48())
    assert other.FieldData(49) == "156"
    # 11 digits, left aligned: py8583 reads whole bytes, so it sees CUP's trailing 0 pad nibble.
    assert other.FieldData(60) == int("00000001201" + "0")
    assert other.FieldData(63) == "01 "
    assert cup.decode_fields(raw) == fields
    assert cup.BatchTotals.from_field48(cup.decode_fields(raw)["48"]) == totals


def test_independent_decoder_reads_the_advice_and_the_packed_uploads() -> None:
    advice = independent(cup.encode(ADVICE, KEY))
    assert advice.Field(1) != 1 and advice.Field(7) != 1 and advice.Field(90) != 1
    assert advice.FieldData(25) == 6, "condition code 06: a pre-authorization's completion"
    assert advice.FieldData(60) == int("24" + "000001" + "000" + "0")  # 24: completion advice
    # 61: batch 000001, trace 000041, date 0612, then possim's original time and MTI
    assert advice.FieldData(61) == int("000001" + "000041" + "0612" + "093015" + "0100")
    assert cup.decode(cup.encode(ADVICE, KEY), KEY).original == ADVICE.original
    sales = [cup.UploadedSale(f"{n:06d}", "6212345678901232", 1000 * n) for n in range(1, 9)]
    packed = Message(mti="0320", stan="000060", transmission="0612180000", tid="TERM0001", batch="000001",
                     uploads=cup.pack_uploads(sales))
    upload = independent(cup.encode(packed, KEY))
    assert [f for f in range(1, 129) if upload.Field(f) == 1] == [11, 12, 13, 41, 48, 60, 64]
    assert str(upload.FieldData(48)).zfill(2 + 8 * 40) == packed.uploads
    assert upload.FieldData(60) == int("00" + "000001" + "201" + "0")
    assert cup.unpack_uploads(cup.decode(cup.encode(packed)).uploads or "") == sales
    end = replace(packed, stan="000061", uploads=cup.batch_end(8), network_code=cup.BATCH_END_UNBALANCED)
    other = independent(cup.encode(end, KEY))
    assert other.FieldData(48) == 8 and other.FieldData(60) == int("00" + "000001" + "202" + "0")
    assert cup.decode(cup.encode(end)).network_code == "202"


def test_packed_uploads_refuse_what_does_not_fit() -> None:
    sale = cup.UploadedSale("000001", "6212345678901232", 100)
    with pytest.raises(ProtocolError, match="1 to 8 sales"):
        cup.pack_uploads([sale] * 9)
    with pytest.raises(ProtocolError, match="not an uploadable sale"):
        cup.pack_uploads([replace(sale, pan="0212345678901232")])
    with pytest.raises(ProtocolError, match="not packed CUP sales"):
        cup.unpack_uploads("02" + sale.to_digits())


def test_a_date_and_time_other_than_the_transmission_is_refused() -> None:
    """CUP has no field 7: 13 and 12 are the transmission time, so they cannot say something else."""
    with pytest.raises(ProtocolError, match="field 12"):
        cup.encode(replace(SALE, local_time="103016"))


def test_odd_length_pan_is_left_aligned_with_a_trailing_zero_nibble() -> None:
    msg = Message(mti="0200", stan="000001", transmission="0612103015", tid="TERM0001", pan="6212345678901234567")
    raw = cup.encode(msg)
    assert raw[10:21] == bytes.fromhex("19" + "6212345678901234567" + "0")
    assert independent(raw).FieldData(2) == int("6212345678901234567" + "0")
    assert cup.decode(raw).pan == msg.pan


# -- layout details -------------------------------------------------------------------------------

def test_sale_bytes_match_the_documented_hex_dump() -> None:
    assert cup.encode(SALE).hex(" ") == (
        "02 00 70 38 04 80 20 c0 80 10 16 62 12 34 56 78 90 12 34 00 00 00 00 00 00 01 23 45"
        " 00 00 42 10 30 15 06 12 02 20 00 24 62 12 34 56 78 90 12 34 d3 01 21 01"
        " 54 45 52 4d 30 30 30 31 38 39 38 33 31 30 30 34 38 39 39 30 30 30 31 31 35 36"
        " 00 11 22 00 00 01 00 00"
    )


def test_status_query_names_the_original_in_field_61_and_mac_in_64() -> None:
    query = Message(mti=M.STATUS_QUERY, stan="000043", transmission="0612103115", tid="TERM0001",
                    original=OriginalData("0200", "000042", "0612103015"), batch="000003",
                    local_time="103115", local_date="0612")
    raw = cup.encode(query, KEY)
    fields = cup.decode_fields(raw)
    assert fields["61"] == "000003" + "000042" + "0612" + "103015" + "0200"
    assert "64" in fields and not {"1", "7", "90", "128"} & set(fields)
    assert cup.decode(raw, KEY) == query


def test_status_answer_travels_in_field_63() -> None:
    answer = Message(mti=M.STATUS_QUERY_RESPONSE, stan="000043", transmission="0612103115", tid="TERM0001",
                     response_code="00", status="APPROVED")
    assert cup.decode_fields(cup.encode(answer))["63"] == "APPROVED"


def test_field_22_is_left_aligned_and_23_right_aligned() -> None:
    raw = cup.encode_fields({"t": "0200", "11": "000001", "22": "021", "23": "001"})
    assert raw.endswith(bytes.fromhex("000001" + "0210" + "0001"))
    assert cup.decode_fields(raw)["22"] == "021"


def test_wrong_or_missing_mac_is_a_mac_error() -> None:
    raw = bytearray(cup.encode(SALE, KEY))
    raw[-1] ^= 1
    with pytest.raises(codec.MacMismatchError):
        cup.decode(bytes(raw), KEY)
    with pytest.raises(codec.MacMissingError):
        cup.decode(cup.encode(SALE), KEY)
    with pytest.raises(codec.UnknownTerminalError):
        cup.decode(cup.encode(SALE, KEY), {"OTHER001": KEY})


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(ProtocolError, match="malformed CUP frame"):
        cup.decode(cup.encode(SALE) + b"\x00")


def test_batch_totals_reject_what_does_not_fit() -> None:
    with pytest.raises(ProtocolError):
        cup.BatchTotals(debit_count=1000).to_field48()
    with pytest.raises(ProtocolError):
        cup.BatchTotals.from_field48("12")


def test_peek_mti_and_wire_fields() -> None:
    raw = cup.encode(SALE_RESPONSE)
    assert cup.peek_mti(raw) == "0210"
    assert cup.peek_mti(b"\xff") == "????"
    assert cup.wire_fields(raw) == {"tid": "TERM0001", "stan": "000042", "mti": "0210", "rrn": "061210000042"}
    assert cup.wire_fields(b"\x02\x00") == {"mti": "0200", "malformed": True}


# -- framing --------------------------------------------------------------------------------------

def test_cup_frame_is_length_tpdu_header_message() -> None:
    body = cup.encode(SALE, KEY)
    framed = CupFraming(Tpdu(destination=0x0003, source=0x0000)).frame(body)
    assert framed[:2] == (5 + 6 + len(body)).to_bytes(2, "big"), "the length counts TPDU + header + message"
    assert framed[2:7] == bytes.fromhex("6000030000")
    assert framed[7:13] == bytes.fromhex("603100310000")
    assert framed[13:] == body


def test_cup_deframer_reassembles_chunks_and_strips_tpdu_and_header() -> None:
    terminal = CupFraming()
    stream = terminal.frame(cup.encode(SALE)) + terminal.frame(cup.encode(REVERSAL))
    deframer = terminal.reply().deframer()
    out = [m for i in range(len(stream)) for m in deframer.feed(stream[i:i + 1])]
    assert [cup.decode(m) for m in out] == [SALE, REVERSAL]
    assert deframer.last_tpdu == Tpdu(destination=0x0003, source=0x0000)
    assert deframer.last_tpdu.reply() == terminal.reply().tpdu
    assert deframer.pending == 0


@pytest.mark.parametrize("body, reason", [
    (bytes.fromhex("6100030000603100310000") + b"\x02\x00", "not a CUP TPDU"),
    (bytes.fromhex("6000030000603100"), "no message after TPDU and header"),
])
def test_cup_deframer_rejects_bad_prefixes(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        CupFraming().deframer().feed(len(body).to_bytes(2, "big") + body)


def test_tpdu_and_header_are_checked_when_configured() -> None:
    with pytest.raises(ValueError, match="2 bytes"):
        Tpdu(destination=0x10000)
    with pytest.raises(ValueError, match="6 bytes"):
        CupFraming(header=b"\x60")


def test_iso_framing_is_unchanged() -> None:
    data = codec.encode(replace(SALE, batch=None))
    assert LengthFraming().frame(data) == len(data).to_bytes(2, "big") + data
    assert isinstance(LengthFraming().deframer(), Deframer)


# -- the dialect registry -------------------------------------------------------------------------

def test_iso_dialect_is_the_default_and_byte_identical() -> None:
    assert dialects.encode(SALE, KEY) == codec.encode(SALE, KEY)
    assert dialects.decode(codec.encode(SALE)) == replace(SALE, batch=None), "iso has no batch number"
    assert isinstance(dialects.get().framing, LengthFraming)


def test_cup_dialect_round_trips_and_names_its_framing() -> None:
    d = dialects.get("cup")
    assert d.decode(d.encode(SALE, KEY), KEY) == SALE
    assert d.framing == CupFraming() and d.host_framing == CupFraming().reply()
    assert dialects.decode(dialects.encode(SALE, dialect="cup"), dialect="cup") == SALE


def test_unknown_dialect_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown wire dialect 'x25' \(known: cup, iso, iso-binary\)"):
        dialects.get("x25")


# -- properties -----------------------------------------------------------------------------------

digits = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731
printable = lambda n: st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=n, max_size=n)  # noqa: E731

messages = st.builds(
    Message,
    mti=st.sampled_from(sorted(cup.MTIS)),
    stan=digits(6),
    transmission=digits(10),
    tid=printable(8),
    mid=st.none() | printable(15),
    pan=st.none() | st.text("0123456789", min_size=12, max_size=19),
    processing_code=st.none() | digits(6),
    amount=st.none() | st.integers(0, 10**12 - 1),
    rrn=st.none() | st.text("0123456789ABCDEFabcdef", min_size=12, max_size=12),
    batch=st.none() | st.integers(1, 999_999).map(lambda n: f"{n:06d}"),
    auth_code=st.none() | st.text("0123456789ABC ", min_size=6, max_size=6),
    response_code=st.none() | st.sampled_from(["00", "05", "13", "14", "51", "55", "68", "94", "98", "A0"]),
    status=st.none() | st.sampled_from(["APPROVED", "NOT_FOUND", "IN_PROGRESS", "REVERSED"]),
    currency=st.none() | st.sampled_from(["156", "978"]),
    original=st.none() | st.builds(OriginalData, mti=st.sampled_from(["0100", "0200"]), stan=digits(6),
                                   transmission=digits(10)),
)


@given(messages, st.booleans())
def test_round_trip(msg: Message, with_mac: bool) -> None:
    """What comes back is the message with fields 13 and 12 filled in from its transmission time."""
    key = KEY if with_mac else None
    full = replace(msg, local_date=msg.transmission[:4], local_time=msg.transmission[4:])
    assert cup.decode(cup.encode(msg, key), key) == full
    assert cup.decode(cup.encode(full, key), key) == full


@given(messages, st.data())
def test_corrupted_messages_raise_only_protocol_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(cup.encode(msg, KEY))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=3))
    for at, value in flips:
        raw[at] = value
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(ProtocolError):
        assert isinstance(cup.decode(bytes(raw[:cut]), KEY), Message)


@given(st.binary(max_size=120))
def test_random_bytes_raise_only_protocol_error(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        assert isinstance(cup.decode(raw), Message)
    with contextlib.suppress(ProtocolError):
        assert all(isinstance(m, bytes) for m in CupFraming().deframer().feed(raw))


def test_codec_takes_the_dialect_as_a_parameter() -> None:
    assert codec.encode(SALE, KEY, dialect="cup") == cup.encode(SALE, KEY)
    assert codec.decode(cup.encode(SALE, KEY), KEY, dialect="cup") == SALE
    assert codec.encode(SALE, dialect="iso") == codec.encode(SALE)
    with pytest.raises(ValueError, match="unknown wire dialect"):
        codec.encode(SALE, dialect="x25")

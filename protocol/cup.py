"""The China UnionPay (CUP) POS terminal wire format: binary bitmap, BCD numbers, ASCII text.

A CUP terminal does not speak possim's ASCII ISO 8583 (``protocol.codec``). Its message is
the ISO 8583:1987 layout packed the way the CUP POS terminal specification and the terminal
sources built on it pack it (``docs/cup-wire.md`` gives the sources and a hex dump):

- MTI: n4 as 2 BCD bytes; bitmap: 8 binary bytes (a secondary bitmap only when a field above
  64 is present, which only possim's own status query needs: field 90).
- Numeric fields (n): packed BCD, two digits a byte. A fixed field of odd length is right
  aligned (a leading 0 nibble), except field 22, which CUP packs left aligned. A variable one
  (LLVAR/LLLVAR) is left aligned with a trailing 0 nibble, and its length prefix is BCD (1 byte
  for LL, 2 for LLL) and counts digits, not bytes.
- Text fields (an/ans: 37, 38, 39, 41, 42, 44, 49, 63): ASCII. CUP sends the currency (49) as
  ASCII "156", not BCD.
- Field 64 (or 128): the 8-byte MAC, binary, over the message from the MTI up to the MAC:
  the TPDU and the 6-byte header in front of it (``protocol.framing.CupFraming``) are not MACed.

``SPEC`` is the one pyiso8583 specification of all of it. ``encode``/``decode`` map possim's
``Message`` onto it with the same contract as ``protocol.codec``: bad bytes raise
``ProtocolError`` (a MAC failure a ``codec.MacError``) and nothing else. ``encode_fields`` and
``decode_fields`` give the raw field strings, for messages the ``Message`` model does not
carry yet (0500 settlement with its batch totals, see ``BatchTotals``).

Choices where possim needs more than a CUP terminal sends (see docs/cup-wire.md):
- Field 7 (transmission date and time, n10 BCD) is kept: it is part of possim's idempotency
  key. CUP terminals identify a transaction by field 11 with 12/13 and do not send it.
- Field 90 (original data, n42 BCD) is kept for possim's 0600 status query, which CUP does not
  have. A CUP reversal copies the original message (same field 11) and needs no field 90.
- The status answer of a 0610 travels in field 63 (ans LLLVAR), CUP's private text field,
  because CUP's field 48 is numeric.

Pure module: no I/O.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iso8583
from iso8583.specs import default

from possim.protocol import mti as M
from possim.protocol.codec import DECODE_ERRORS, Keys, MacMismatchError, MacMissingError, UnknownTerminalError
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MAC_LEN, MacKey
from possim.protocol.messages import Message, OriginalData

#: Settlement and batch upload (CUP terminal flows), now among possim's own MTIs.
SETTLEMENT = M.SETTLEMENT
SETTLEMENT_RESPONSE = M.SETTLEMENT_RESPONSE
BATCH_UPLOAD = M.BATCH_UPLOAD
BATCH_UPLOAD_RESPONSE = M.BATCH_UPLOAD_RESPONSE
MTIS = M.KNOWN


def _bcd(max_len: int, len_type: int = 0, pad: str = "right") -> dict[str, Any]:
    """A numeric field as packed BCD; ``max_len`` counts digits (nibbles), as CUP's lengths do."""
    spec: dict[str, Any] = {"data_enc": "b", "len_enc": "bcd", "len_type": len_type,
                            "max_len": max_len, "len_count": "nibbles"}
    spec["left_pad" if pad == "left" else "right_pad"] = "0"
    return spec


def _text(max_len: int, len_type: int = 0) -> dict[str, Any]:
    """An an/ans field as ASCII; a variable one has a BCD length prefix (1 byte LL, 2 bytes LLL)."""
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": len_type, "max_len": max_len}


def _binary(max_len: int, len_type: int = 0) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_len}


_LL, _LLL = 1, 2
#: field -> (pyiso8583 field spec, description). The one place the CUP layout is written down.
_LAYOUT: dict[str, tuple[dict[str, Any], str]] = {
    "t": (_binary(2), "Message type, n4 BCD (2 bytes)"),
    "p": (_binary(8), "Primary bitmap, b64"),
    "1": (_binary(8), "Secondary bitmap, b64"),
    "2": (_bcd(19, _LL), "PAN, n..19 LLVAR BCD, left aligned, 0 pad"),
    "3": (_bcd(6), "Processing code, n6 BCD"),
    "4": (_bcd(12), "Amount, n12 BCD, minor units"),
    "7": (_bcd(10), "Transmission date and time MMDDhhmmss, n10 BCD (possim)"),
    "11": (_bcd(6), "STAN (POS trace number), n6 BCD"),
    "12": (_bcd(6), "Local time hhmmss, n6 BCD"),
    "13": (_bcd(4), "Local date MMDD, n4 BCD"),
    "14": (_bcd(4), "Expiry date YYMM, n4 BCD"),
    "15": (_bcd(4), "Settlement date MMDD, n4 BCD"),
    "22": (_bcd(3), "POS entry mode, n3 BCD, left aligned (CUP)"),
    "23": (_bcd(3, pad="left"), "Card sequence number, n3 BCD"),
    "25": (_bcd(2), "POS condition code, n2 BCD"),
    "26": (_bcd(2), "PIN capture code, n2 BCD"),
    "32": (_bcd(11, _LL), "Acquiring institution, n..11 LLVAR BCD"),
    "35": (_bcd(37, _LL), "Track 2, z..37 LLVAR BCD ('=' as D)"),
    "36": (_bcd(104, _LLL), "Track 3, z..104 LLLVAR BCD"),
    "37": (_text(12), "Retrieval reference number, an12 ASCII"),
    "38": (_text(6), "Authorization code, an6 ASCII"),
    "39": (_text(2), "Response code, an2 ASCII"),
    "41": (_text(8), "Terminal id, ans8 ASCII"),
    "42": (_text(15), "Merchant id, ans15 ASCII"),
    "44": (_text(25, _LL), "Additional response data, an..25 LLVAR ASCII"),
    "48": (_bcd(322, _LLL), "Additional data (0500: batch totals), n..322 LLLVAR BCD"),
    "49": (_text(3), "Currency, an3 ASCII"),
    "52": (_binary(8), "PIN block, b64"),
    "53": (_bcd(16), "Security control information, n16 BCD"),
    "54": (_text(20, _LLL), "Additional amounts, an..20 LLLVAR ASCII"),
    "55": (_binary(255, _LLL), "ICC data, b..255 LLLVAR"),
    "60": (_bcd(30, _LLL), "Reserved private (type, batch, network code), n..30 LLLVAR BCD"),
    "61": (_bcd(29, _LLL), "Original message (batch, trace, date), n..29 LLLVAR BCD"),
    "62": (_binary(512, _LLL), "Reserved private, b..512 LLLVAR"),
    "63": (_text(63, _LLL), "Reserved private (operator; possim status), ans..63 LLLVAR ASCII"),
    "64": (_binary(MAC_LEN), "MAC, b64"),
    "90": (_bcd(42), "Original data elements, n42 BCD (possim status query)"),
    "128": (_binary(MAC_LEN), "MAC, b64"),
}


def _spec() -> dict[str, Any]:
    """pyiso8583's binary-bitmap spec with CUP's layout over it; other fields stay unused."""
    spec: dict[str, Any] = copy.deepcopy(default)
    for field, (layout, desc) in _LAYOUT.items():
        spec[field] = {**layout, "desc": desc}
    return spec


SPEC = _spec()

#: (field, Message attribute, pattern): how possim's Message maps onto the CUP fields.
_FIELDS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (f, a, re.compile(p))
    for f, a, p in (
        ("2", "pan", r"\d{12,19}"),
        ("3", "processing_code", r"\d{6}"),
        ("7", "transmission", r"\d{10}"),
        ("11", "stan", r"\d{6}"),
        ("12", "local_time", r"\d{6}"),
        ("13", "local_date", r"\d{4}"),
        ("37", "rrn", r"[0-9A-Za-z]{12}"),
        ("38", "auth_code", r"[0-9A-Za-z ]{6}"),
        ("39", "response_code", r"[0-9A-Z]{2}"),
        ("41", "tid", r"[ -~]{8}"),
        ("42", "mid", r"[ -~]{15}"),
        ("48", "batch_totals", r"\d{62}"),
        ("49", "currency", r"\d{3}"),
        ("63", "status", r"[A-Z_]{1,32}"),
    )
)
_AMOUNT = re.compile(r"\d{12}")
_ORIGINAL = re.compile(r"\d{42}")
_REQUIRED = ("7", "11", "41")
#: Field 60 as possim packs it: 60.1 "00", 60.2 the terminal's life number (where a CUP terminal
#: carries its batch number), 60.3 the network management code (001 sign-on, 000 otherwise).
_LIFE = re.compile(r"\d{6}")
_FIELD_60 = re.compile(r"\d{11}")
_FIELD_60_TYPE, _SIGN_ON_CODE, _NORMAL_CODE = "00", "001", "000"
_MAC_FIELDS = ("64", "128")


def encode_fields(fields: Mapping[str, str]) -> bytes:
    """Pack raw field strings (``"t"`` the MTI, ``"2"``..``"128"``); BCD fields as digit strings,
    binary ones (52, 55, 62, 64, 128) as hex. A value the layout cannot hold raises ``ProtocolError``."""
    try:
        return bytes(iso8583.encode(dict(fields), SPEC)[0])
    except iso8583.EncodeError as exc:
        raise ProtocolError(f"CUP: {exc}") from None


def decode_fields(data: bytes) -> dict[str, str]:
    """Unpack one CUP message (from the MTI on) into raw field strings; bad bytes raise ``ProtocolError``."""
    try:
        doc, _ = iso8583.decode(bytearray(data), SPEC)
    except DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed CUP frame: {exc}") from None
    doc.pop("p", None)
    doc.pop("1", None)
    return {k: str(v) for k, v in doc.items()}


def encode(msg: Message, key: MacKey | None = None) -> bytes:
    """The CUP bytes of a message, with the MAC in field 64 (128 with a secondary bitmap) when ``key`` is given."""
    doc = _to_fields(msg)
    if key is None:
        return encode_fields(doc)
    doc[_mac_field(doc)] = "00" * MAC_LEN
    body = encode_fields(doc)[:-MAC_LEN]
    return body + key.compute(body)


def decode(data: bytes, keys: Keys | None = None) -> Message:
    """One CUP message as a ``Message``; with ``keys`` its MAC must be the sender's (see ``protocol.codec``)."""
    data = bytes(data)
    msg, tag = _decode(data)
    if keys is not None:
        _verify(data, msg, tag, keys)
    return msg


def peek_mti(data: bytes) -> str:
    """The MTI of a CUP message without decoding it; '????' if unreadable."""
    mti = data[:2].hex()
    return mti if len(data) >= 2 and mti.isdigit() else "????"


def wire_fields(data: bytes) -> dict[str, object]:
    """The trace keys of a CUP message (tid, stan, mti, rrn), for drivers logging what arrived."""
    try:
        msg = decode(data)
    except ProtocolError:
        return {"mti": peek_mti(data), "malformed": True}
    fields: dict[str, object] = {"tid": msg.tid, "stan": msg.stan, "mti": msg.mti}
    if msg.rrn:
        fields["rrn"] = msg.rrn
    return fields


def _to_fields(msg: Message) -> dict[str, str]:
    if msg.mti not in MTIS:
        raise ProtocolError(f"MTI {msg.mti!r} is not a possim message")
    doc: dict[str, str] = {"t": msg.mti}
    for field, attr, pattern in _FIELDS:
        value = getattr(msg, attr)
        if value is not None:
            _check(field, value, pattern)
            doc[field] = value
    if msg.amount is not None:
        if not 0 <= msg.amount < 10**12:
            raise ProtocolError(f"field 4: amount {msg.amount} out of range")
        doc["4"] = f"{msg.amount:012d}"
    if msg.original is not None:
        o = msg.original
        doc["90"] = f"{o.mti}{o.stan}{o.transmission}" + "0" * 22
        _check("90", doc["90"], _ORIGINAL)
    if msg.life is not None:
        _check("60", msg.life, _LIFE)
        doc["60"] = _FIELD_60_TYPE + msg.life + (_SIGN_ON_CODE if msg.mti == M.SIGN_ON else _NORMAL_CODE)
    return doc


@functools.lru_cache(maxsize=4096)
def _decode(data: bytes) -> tuple[Message, bytes | None]:
    doc = decode_fields(data)
    mti = doc.get("t", "")
    if mti not in MTIS:
        raise ProtocolError(f"unknown MTI {mti!r}")
    missing = [f for f in _REQUIRED if f not in doc]
    if missing:
        raise ProtocolError(f"MTI {mti}: missing field(s) {', '.join(missing)}")
    values: dict[str, object] = {}
    for field, attr, pattern in _FIELDS:
        if field in doc:
            _check(field, doc[field], pattern)
            values[attr] = doc[field]
    if "4" in doc:
        _check("4", doc["4"], _AMOUNT)
        values["amount"] = int(doc["4"])
    if "90" in doc:
        raw = doc["90"]
        _check("90", raw, _ORIGINAL)
        values["original"] = OriginalData(mti=raw[:4], stan=raw[4:10], transmission=raw[10:20])
    if "60" in doc:  # 60.1 type (2 digits), 60.2 the batch (possim: the life) number, 60.3 network code
        raw = doc["60"]
        _check("60", raw, _FIELD_60)
        values["life"] = raw[2:8]
    tag = next((bytes.fromhex(doc[f]) for f in _MAC_FIELDS if f in doc), None)
    return Message(mti=mti, **values), tag  # type: ignore[arg-type]


def _mac_field(doc: Mapping[str, str]) -> str:
    """Field 128 when the message has a secondary bitmap (a field above 64), else field 64."""
    return "128" if any(f.isdigit() and int(f) > 64 for f in doc) else "64"


def _verify(data: bytes, msg: Message, tag: bytes | None, keys: Keys) -> None:
    key = keys if isinstance(keys, MacKey) else keys.get(msg.tid)
    where = f"MTI {msg.mti} from {msg.tid!r} STAN {msg.stan}"
    if key is None:
        raise UnknownTerminalError(f"{where}: no MAC key for this terminal", msg)
    if tag is None:
        raise MacMissingError(f"{where}: no MAC", msg)
    if not key.verify(data[:-MAC_LEN], tag):
        raise MacMismatchError(f"{where}: wrong MAC", msg)


def _check(field: str, value: str, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProtocolError(f"field {field}: invalid value {value!r}")


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """Field 48 of a CUP 0500 settlement: debit and credit totals, domestic (RMB) then foreign.

    Layout (62 digits, n LLLVAR BCD): for each of RMB and foreign cards, debit amount n12,
    debit count n3, credit amount n12, credit count n3, settlement answer n1 (the terminal sends
    0; the host answers 1 balanced, 2 out of balance, 3 error). Amounts in minor units.
    """

    debit_amount: int = 0
    debit_count: int = 0
    credit_amount: int = 0
    credit_count: int = 0
    answer: str = "0"
    foreign_debit_amount: int = 0
    foreign_debit_count: int = 0
    foreign_credit_amount: int = 0
    foreign_credit_count: int = 0
    foreign_answer: str = "0"

    def to_field48(self) -> str:
        """The 62 digits of field 48; a total that does not fit raises ``ProtocolError``."""
        parts = (
            (self.debit_amount, 12), (self.debit_count, 3), (self.credit_amount, 12), (self.credit_count, 3),
            (int(self.answer), 1), (self.foreign_debit_amount, 12), (self.foreign_debit_count, 3),
            (self.foreign_credit_amount, 12), (self.foreign_credit_count, 3), (int(self.foreign_answer), 1),
        )
        if any(not 0 <= value < 10**width for value, width in parts):
            raise ProtocolError(f"field 48: batch totals out of range: {self}")
        return "".join(f"{value:0{width}d}" for value, width in parts)

    @classmethod
    def from_field48(cls, value: str) -> BatchTotals:
        """Parse field 48 of a 0500/0510; anything but 62 digits raises ``ProtocolError``."""
        if not re.fullmatch(r"\d{62}", value):
            raise ProtocolError(f"field 48: not CUP batch totals: {value!r}")
        n = [int(value[a:b]) for a, b in ((0, 12), (12, 15), (15, 27), (27, 30), (31, 43), (43, 46),
                                          (46, 58), (58, 61))]
        return cls(n[0], n[1], n[2], n[3], value[30], n[4], n[5], n[6], n[7], value[61])

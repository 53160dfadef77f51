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

What a CUP terminal sends and possim therefore sends too (``docs/cup-wire.md``):
- No field 7 and no secondary bitmap. The transaction's date and time travel in fields 13 and
  12 (MMDD, hhmmss), and possim's transmission time (part of its idempotency key) is read back
  from them: under ``cup`` it *is* field 13 + field 12.
- Field 60 on every message: 60.1 the transaction type (``_TYPES``: 22 sale, 10 pre-auth, 20
  completion, 24 completion advice, 00 management), 60.2 the batch number (``Message.batch``),
  60.3 the network management code (``_NETWORK``: 001 sign-on, 201 settlement and upload, 202/207
  batch end, 000 otherwise). A terminal process that signs on appends its life number (possim).
- Financial requests carry field 22 (entry mode, ``022``: magnetic stripe, no PIN), 25 (condition
  code: 00, 06 for a pre-authorization and its completion) and 35 (track 2, ``_track2``).
- The original of a completion, advice, upload or status query is named in field 61 (original
  batch, trace, date, then possim's original time and MTI), never in field 90.

- The sign-on answer (0810) hands out the working keys in field 62 (``WorkingKeys``: PIK, then
  MAK, each encrypted under the terminal master key and followed by its 4-byte check value) and
  the batch number the terminal is to use in 60.2; later messages carry the ``cup-ecb`` MAC under
  that MAK.

possim choices: the 0600 status query, which CUP does not have, and the status answer in field 63
(CUP's field 48 is numeric).

Pure module: no I/O.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iso8583
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from iso8583.specs import default

from possim.protocol import codec
from possim.protocol import mti as M
from possim.protocol.codec import (
    DECODE_ERRORS,
    PATTERNS,
    Keys,
    MacMismatchError,
    MacMissingError,
    UnknownTerminalError,
    field_map,
)
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
    "7": (_bcd(10), "Transmission date and time MMDDhhmmss, n10 BCD (read; CUP terminals do not send it)"),
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
    "48": (_bcd(322, _LLL), "Additional data (0500: batch totals; 0320: packed sales), n..322 LLLVAR BCD"),
    "49": (_text(3), "Currency, an3 ASCII"),
    "52": (_binary(8), "PIN block, b64"),
    "53": (_bcd(16), "Security control information, n16 BCD"),
    "54": (_text(20, _LLL), "Additional amounts, an..20 LLLVAR ASCII"),
    "55": (_binary(255, _LLL), "ICC data, b..255 LLLVAR"),
    "60": (_bcd(30, _LLL), "Reserved private (type, batch, network code), n..30 LLLVAR BCD"),
    "61": (_bcd(29, _LLL), "Original message (batch, trace, date; possim: time, MTI), n..29 LLLVAR BCD"),
    "62": (_binary(512, _LLL), "Reserved private, b..512 LLLVAR"),
    "63": (_text(63, _LLL), "Reserved private (operator; possim status), ans..63 LLLVAR ASCII"),
    "64": (_binary(MAC_LEN), "MAC, b64"),
    "90": (_bcd(42), "Original data elements, n42 BCD (read; possim sends 61)"),
    "128": (_binary(MAC_LEN), "MAC, b64"),
}


def _spec() -> dict[str, Any]:
    """pyiso8583's binary-bitmap spec with CUP's layout over it; other fields stay unused."""
    spec: dict[str, Any] = copy.deepcopy(default)
    for field, (layout, desc) in _LAYOUT.items():
        spec[field] = {**layout, "desc": desc}
    return spec


SPEC = _spec()

#: (field, Message attribute, pattern): how possim's Message maps onto the CUP fields; the
#: patterns are the ISO codec's (``codec.PATTERNS``), the attributes only sit in other fields.
_FIELDS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    *field_map((("2", "pan"), ("3", "processing_code"), ("11", "stan"), ("37", "rrn"), ("38", "auth_code"),
                ("39", "response_code"), ("41", "tid"), ("42", "mid"), ("49", "currency"), ("63", "status"))),
    ("62", "working_keys", re.compile(r"[0-9A-F]{2,1024}")),
)
_AMOUNT = re.compile(r"\d{12}")
_ORIGINAL = re.compile(r"\d{42}")
_DATE, _TIME = PATTERNS["local_date"], PATTERNS["local_time"]
_REQUIRED = ("11", "12", "13", "41")
_LIFE = PATTERNS["life"]
_BATCH = re.compile(r"\d{6}")
_NETWORK_CODE = re.compile(r"\d{3}")
#: Field 60: 60.1 n2, 60.2 n6, 60.3 n3, then (possim) a signed-on terminal's life number n6.
_FIELD_60 = re.compile(r"\d{11}(\d{6})?")
_FIELD_61 = re.compile(r"\d{26}")
_BATCH_TOTALS = re.compile(r"\d{62}")
_UPLOADS = re.compile(r"\d{1,322}")
#: Field 48 of a settlement and of a batch upload.
_FIELD_48 = {M.SETTLEMENT: ("batch_totals", _BATCH_TOTALS), M.SETTLEMENT_RESPONSE: ("batch_totals", _BATCH_TOTALS),
             M.BATCH_UPLOAD: ("uploads", _UPLOADS), M.BATCH_UPLOAD_RESPONSE: ("uploads", _UPLOADS)}
_NO_BATCH = "000000"
#: 60.1 transaction type code of a request MTI (``TrTable``, ``Src/globalvar.c``); a response has its request's.
_TYPES = {M.AUTH: "10", M.PURCHASE: "22", M.ADVICE: "24", M.ADVICE_REPEAT: "24"}
_COMPLETION_TYPE, _PREAUTH_TYPE, _MANAGEMENT_TYPE = "20", "10", "00"
#: 60.3 network management code of a request MTI; anything else is 000 (a normal transaction).
_NETWORK = {M.SIGN_ON: "001", M.SETTLEMENT: "201", M.BATCH_UPLOAD: "201"}
_NORMAL_CODE = "000"
#: Batch-end upload (0320), 60.3: 207 when both totals balanced (only chip records were to be uploaded),
#: 202 when they did not (``PosBatchUp`` in ``Src/tranproc.c``: 207 for ``EMVLOG``, else 202).
BATCH_END_BALANCED, BATCH_END_UNBALANCED = "207", "202"
#: Requests about a card: they carry entry mode (22), condition code (25) and track 2 (35).
_CARD_REQUESTS = frozenset({M.AUTH, M.PURCHASE, M.ADVICE, M.ADVICE_REPEAT, M.REVERSAL, M.REVERSAL_REPEAT})
#: Field 22: magnetic stripe read (02), no PIN entered (2): possim models no PIN.
ENTRY_MODE = "022"
#: Field 25: normal (00), or pre-authorization and its completion (06).
_CONDITION, _PREAUTH_CONDITION = "00", "06"
#: Track 2 after the card number: expiry YYMM and service code (possim's modelled card).
_TRACK2_TAIL = "D3012101"
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
    doc.update(_date_time(msg))
    doc.update(_card_fields(msg))
    field48 = _FIELD_48.get(msg.mti)
    if field48 is not None and getattr(msg, field48[0]) is not None:
        _check("48", getattr(msg, field48[0]), field48[1])
        doc["48"] = getattr(msg, field48[0])
    if msg.original is not None:
        o = msg.original
        doc["61"] = (msg.batch or _NO_BATCH) + o.stan + o.transmission[:4] + o.transmission[4:] + o.mti
        _check("61", doc["61"], _FIELD_61)
    doc["60"] = _field_60(msg)
    return doc


def _date_time(msg: Message) -> dict[str, str]:
    """Fields 13 and 12 from the transmission time: CUP sends no field 7, so they carry it."""
    date, time = msg.transmission[:4], msg.transmission[4:]
    if not (_DATE.fullmatch(date) and _TIME.fullmatch(time)):
        raise ProtocolError(f"transmission time {msg.transmission!r} is not MMDDhhmmss")
    for field, attr, value in (("13", "local_date", date), ("12", "local_time", time)):
        own = getattr(msg, attr)
        if own is not None and own != value:
            raise ProtocolError(f"field {field}: {own!r} is not the transmission's {value!r} (CUP sends no field 7)")
    return {"12": time, "13": date}


def _preauth(msg: Message) -> bool:
    """A pre-authorization, or what completes one (it names its pre-auth)."""
    return msg.processing_code == "030000" or msg.original is not None or msg.mti == M.AUTH


def _card_fields(msg: Message) -> dict[str, str]:
    """Entry mode, condition code and track 2 of a financial request (a card swiped, no PIN)."""
    if msg.mti not in _CARD_REQUESTS or msg.pan is None:
        return {}
    return {"22": ENTRY_MODE, "25": _PREAUTH_CONDITION if _preauth(msg) else _CONDITION, "35": _track2(msg.pan)}


def _track2(pan: str) -> str:
    """Track 2 equivalent data of possim's modelled card: the PAN, separator, expiry, service code."""
    return pan + _TRACK2_TAIL


def request_of(mti: str) -> str:
    """The request MTI a response answers (0210 -> 0200); a request is its own."""
    return mti if mti in M.REQUESTS else mti[:2] + str(int(mti[2]) - 1) + "0"


def transaction_type(msg: Message) -> str:
    """60.1: what kind of transaction this message is about (a reversal: the one it cancels)."""
    mti = request_of(msg.mti)
    if mti in (M.REVERSAL, M.REVERSAL_REPEAT):
        return _COMPLETION_TYPE if msg.original is not None else (
            _PREAUTH_TYPE if msg.processing_code == "030000" else _TYPES[M.PURCHASE])
    if mti == M.PURCHASE and msg.original is not None:
        return _COMPLETION_TYPE
    return _TYPES.get(mti, _MANAGEMENT_TYPE)


def network_code(mti: str) -> str:
    """60.3 as the MTI implies it (a batch-end upload says otherwise, ``Message.network_code``)."""
    return _NETWORK.get(request_of(mti), _NORMAL_CODE)


def _field_60(msg: Message) -> str:
    batch = msg.batch if msg.batch is not None else _NO_BATCH
    _check("60", batch, _BATCH)
    code = msg.network_code if msg.network_code is not None else network_code(msg.mti)
    _check("60", code, _NETWORK_CODE)
    life = msg.life or ""
    if life:
        _check("60", life, _LIFE)
    return transaction_type(msg) + batch + code + life


@functools.lru_cache(maxsize=4096)
def _decode(data: bytes) -> tuple[Message, bytes | None]:
    doc = decode_fields(data)
    mti = doc.get("t", "")
    if mti not in MTIS:
        raise ProtocolError(f"unknown MTI {mti!r}")
    missing = [f for f in _REQUIRED if f not in doc]
    if missing:
        raise ProtocolError(f"MTI {mti}: missing field(s) {', '.join(missing)}")
    _check("12", doc["12"], _TIME)
    _check("13", doc["13"], _DATE)
    values: dict[str, object] = {"transmission": doc["13"] + doc["12"], "local_time": doc["12"],
                                 "local_date": doc["13"]}
    for field, attr, pattern in _FIELDS:
        if field in doc:
            _check(field, doc[field], pattern)
            values[attr] = doc[field]
    if "4" in doc:
        _check("4", doc["4"], _AMOUNT)
        values["amount"] = int(doc["4"])
    if "48" in doc and mti in _FIELD_48:
        attr, pattern = _FIELD_48[mti]
        _check("48", doc["48"], pattern)
        values[attr] = doc["48"]
    if "61" in doc:
        raw = doc["61"]
        _check("61", raw, _FIELD_61)
        values["original"] = OriginalData(mti=raw[22:26], stan=raw[6:12], transmission=raw[12:22])
    elif "90" in doc:
        raw = doc["90"]
        _check("90", raw, _ORIGINAL)
        values["original"] = OriginalData(mti=raw[:4], stan=raw[4:10], transmission=raw[10:20])
    if "60" in doc:
        values.update(_read_60(mti, doc["60"]))
    tag = next((bytes.fromhex(doc[f]) for f in _MAC_FIELDS if f in doc), None)
    return Message(mti=mti, **values), tag  # type: ignore[arg-type]


def readable_identity(fields: Mapping[str, str]) -> dict[str, object]:
    """For a frame that failed decoding (``validation.identify``): its transmission time (13 + 12)
    and original (61) where those fields read well; CUP frames carry no field 7 or 90."""
    out: dict[str, object] = {}
    date, time = fields.get("13", ""), fields.get("12", "")
    if _DATE.fullmatch(date) and _TIME.fullmatch(time):
        out["transmission"] = date + time
    raw = fields.get("61", "")
    if _FIELD_61.fullmatch(raw):
        out["original"] = OriginalData(mti=raw[22:26], stan=raw[6:12], transmission=raw[12:22])
    return out


def _read_60(mti: str, raw: str) -> dict[str, str]:
    """60.2 the batch, 60.3 when it is not the MTI's usual code, and possim's life number after them."""
    _check("60", raw, _FIELD_60)
    values = {"batch": raw[2:8]} if raw[2:8] != _NO_BATCH else {}  # 000000: no batch (numbers start at 1)
    if raw[8:11] != network_code(mti):
        values["network_code"] = raw[8:11]
    if len(raw) > 11:
        values["life"] = raw[11:17]
    return values


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


#: Reversal reason once a try was refused: 98 (no answer) becomes 06 (``MakeReversalPack``).
REASON_AFTER_REFUSAL = "06"
#: Answers that make a CUP terminal sign on again ("请重新签到"): 77, and A0 (the host could not
#: check the MAC: the working keys differ, a new sign-on brings new ones).
SIGN_ON_AGAIN_CODES = frozenset({"77", "A0"})

#: Sales one batch upload (0320) packs into field 48 (``PosBatchUp``: at most 8 a frame).
SALES_PER_UPLOAD = 8
_UPLOADED_SALE = re.compile(r"(\d{2})(\d{6})(\d{20})(\d{12})")


@dataclass(frozen=True, slots=True)
class UploadedSale:
    """One sale in field 48 of a CUP batch upload: 40 digits, as ``BatchMagOnLineTrans`` packs them
    (``Src/tranproc.c``): card organisation n2 (00 a UnionPay card, 01 another), the sale's trace
    number (its STAN) n6, the card number right-aligned in 20 digits with leading zeros, and the
    amount n12 (minor units). Field 48 starts with the count of sales, n2.
    """

    stan: str
    pan: str
    amount: int
    organisation: str = "00"

    def to_digits(self) -> str:
        if not (re.fullmatch(r"\d{6}", self.stan) and re.fullmatch(r"[1-9]\d{11,18}", self.pan)
                and 0 <= self.amount < 10**12 and re.fullmatch(r"\d{2}", self.organisation)):
            raise ProtocolError(f"field 48: not an uploadable sale: {self}")
        return f"{self.organisation}{self.stan}{self.pan:0>20}{self.amount:012d}"


def pack_uploads(sales: list[UploadedSale]) -> str:
    """Field 48 of a batch upload: the count n2, then each sale (at most ``SALES_PER_UPLOAD``)."""
    if not 1 <= len(sales) <= SALES_PER_UPLOAD:
        raise ProtocolError(f"field 48: a batch upload packs 1 to {SALES_PER_UPLOAD} sales, not {len(sales)}")
    return f"{len(sales):02d}" + "".join(s.to_digits() for s in sales)


def unpack_uploads(value: str) -> list[UploadedSale]:
    """The sales of a batch upload's field 48; anything else raises ``ProtocolError``."""
    count = int(value[:2]) if re.fullmatch(r"\d{2}(\d{40}){1,8}", value) else -1
    if count != (len(value) - 2) // 40:
        raise ProtocolError(f"field 48: not packed CUP sales: {value!r}")
    out = []
    for at in range(2, len(value), 40):
        found = _UPLOADED_SALE.fullmatch(value[at:at + 40])
        assert found is not None  # 40 digits always match
        org, stan, pan, amount = found.groups()
        out.append(UploadedSale(stan, pan.lstrip("0"), int(amount), org))
    return out


def batch_end(count: int) -> str:
    """Field 48 of the batch-end upload: how many sales were uploaded, n4."""
    if not 0 <= count < 10**4:
        raise ProtocolError(f"field 48: batch-end count {count} out of range")
    return f"{count:04d}"


# -- sign-on key exchange ---------------------------------------------------------------------

#: Working keys are double length (two-key 3DES, as CUP's 3DES terminals use them).
WORKING_KEY_LEN = 16
#: Bytes of a check value: the first 4 of 8 zero bytes encrypted under the clear key.
CHECK_VALUE_LEN = 4
#: Terminal master key lengths the key exchange can encrypt under: single, two-key and three-key DES.
TMK_LENGTHS = (8, 16, 24)
#: The MAC algorithm of the handed-out MAK (``protocol.mac``).
WORKING_MAC = "cup-ecb"
_DES_BLOCK = 8
_WORKING_KEYS_LABEL = b"possim cup working keys v1"


class CheckValueError(ProtocolError):
    """A working key in a sign-on answer does not match its check value: the terminal must not use it."""


def _des(key: bytes) -> TripleDES:
    """A DES-family key as ``cryptography`` takes it: 8 bytes single DES, 16 two-key, 24 three-key 3DES."""
    if len(key) not in TMK_LENGTHS:
        raise ValueError(f"a DES key is 8, 16 or 24 bytes, not {len(key)}")
    # two-key 3DES as the three-key form K1||K2||K1 (the same cipher; ``cryptography`` deprecates 16-byte keys)
    return TripleDES(key * 3 if len(key) == _DES_BLOCK else key + key[:_DES_BLOCK] if len(key) == 16 else key)


def _ecb(key: bytes, data: bytes, encrypt: bool) -> bytes:
    cipher = Cipher(_des(key), modes.ECB())  # noqa: S305 - key wrapping of whole blocks, as CUP terminals do it
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def check_value(key: bytes) -> bytes:
    """The key check value CUP terminals compare: the first 4 bytes of 8 zero bytes encrypted under ``key``."""
    return _ecb(key, bytes(_DES_BLOCK), encrypt=True)[:CHECK_VALUE_LEN]


@dataclass(frozen=True, slots=True)
class WorkingKeys:
    """The working keys a sign-on hands out, in clear: the PIN key (PIK) and the MAC key (MAK).

    Field 62 of the 0810 carries them as CUP hosts send them to 3DES terminals (40 bytes): the PIK
    encrypted under the terminal master key (TMK, ECB) and its check value, then the MAK the same
    way. A terminal decrypts each and compares the check value before using the key.
    """

    pik: bytes
    mak: bytes

    def __repr__(self) -> str:
        return "WorkingKeys(<secret>)"

    def to_field62(self, tmk: bytes) -> str:
        """Field 62 (hex) with the keys encrypted under ``tmk``."""
        return "".join((_ecb(tmk, k, encrypt=True) + check_value(k)).hex().upper() for k in (self.pik, self.mak))

    @classmethod
    def from_field62(cls, tmk: bytes, value: str) -> WorkingKeys:
        """The clear keys of field 62; a wrong length raises ``ProtocolError``, a key that does not
        match its check value ``CheckValueError``."""
        part = WORKING_KEY_LEN + CHECK_VALUE_LEN
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ProtocolError(f"field 62: not hex: {value!r}") from None
        if len(raw) != 2 * part:
            raise ProtocolError(f"field 62: working keys are {2 * part} bytes, not {len(raw)}")
        keys = []
        for name, at in (("PIK", 0), ("MAK", part)):
            key = _ecb(tmk, raw[at:at + WORKING_KEY_LEN], encrypt=False)
            if not hmac.compare_digest(check_value(key), raw[at + WORKING_KEY_LEN:at + part]):
                raise CheckValueError(f"field 62: the {name} does not match its check value")
            keys.append(key)
        return cls(keys[0], keys[1])


def derive_working_keys(tmk: bytes, tid: str, life: str) -> WorkingKeys:
    """The working keys of one life of a terminal: HMAC-SHA256 under its master key of the terminal id
    and life number. A host derives them again instead of storing them, so a restarted host still
    checks the MACs of the life that signed on; a new life (a new sign-on) gets new keys, and nobody
    without the TMK can compute them."""
    digest = hmac.new(tmk, b"\0".join((_WORKING_KEYS_LABEL, tid.encode(), life.encode())), hashlib.sha256).digest()
    return WorkingKeys(digest[:WORKING_KEY_LEN], digest[WORKING_KEY_LEN:2 * WORKING_KEY_LEN])


#: The first byte of a CUP frame: that of its 2-byte BCD MTI, 0x01..0x08 (0100..0800); an ISO ASCII
#: frame starts with an ASCII digit, a wallet frame with "{".
_FIRST, _LAST = b"\x01", b"\x08"


def claims(data: bytes) -> bool:
    """A frame in CUP's format (a BCD MTI), as ``codec.dialect_of`` asks."""
    return _FIRST <= data[:1] <= _LAST


codec.register_foreign("cup", codec.Foreign(encode, decode, peek_mti, claims))

"""ISO 8583 wire format (pyiso8583, ASCII bitmap): ``Message`` <-> bytes.

What travels on every link, in memory, over MQTT or TCP, is exactly these bytes. Any
frame that pyiso8583 cannot parse, or whose fields break possim's rules, raises
``ProtocolError`` and nothing else.
"""

from __future__ import annotations

import copy
import functools
import re

import iso8583
from iso8583.specs import default_ascii

from protocol import mti as M
from protocol.errors import ProtocolError
from protocol.messages import Message, OriginalData

SPEC = copy.deepcopy(default_ascii)

#: (field, attribute, pattern). Patterns follow ISO 8583 formats (n = digits, an = alnum).
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
        ("48", "status", r"[A-Z_]{1,32}"),
        ("49", "currency", r"\d{3}"),
    )
)
_AMOUNT = re.compile(r"\d{12}")
_ORIGINAL = re.compile(r"\d{42}")
_REQUIRED = ("7", "11", "41")


def encode(msg: Message) -> bytes:
    """Encode a message; a message possim itself built wrongly is a bug and raises ``ProtocolError``."""
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
    if msg.mti not in M.KNOWN:
        raise ProtocolError(f"MTI {msg.mti!r} is not a possim message")
    try:
        data, _ = iso8583.encode(doc, SPEC)
    except iso8583.EncodeError as exc:
        raise ProtocolError(str(exc)) from None
    return bytes(data)


def decode(data: bytes) -> Message:
    """Decode one frame; anything malformed raises ``ProtocolError`` with a one-line reason.

    Messages are immutable, so the result for the same bytes is cached: a frame traced by
    the driver and then handled by the state machine is parsed once.
    """
    return _decode(bytes(data))


@functools.lru_cache(maxsize=4096)
def _decode(data: bytes) -> Message:
    try:
        doc, _ = iso8583.decode(bytearray(data), SPEC)
    except (iso8583.DecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed frame: {exc}") from None
    mti = doc.get("t", "")
    if mti not in M.KNOWN:
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
    return Message(mti=mti, **values)  # type: ignore[arg-type]


def peek_mti(data: bytes) -> str:
    """The MTI of a frame without decoding it (fault rules match on it); '????' if unreadable."""
    head = data[:4]
    return head.decode("ascii") if len(head) == 4 and head.isdigit() else "????"


def wire_fields(data: bytes) -> dict[str, object]:
    """The trace keys of a frame (tid, stan, mti, rrn), for drivers logging what arrived."""
    try:
        msg = decode(data)
    except ProtocolError:
        return {"mti": peek_mti(data), "malformed": True}
    fields: dict[str, object] = {"tid": msg.tid, "stan": msg.stan, "mti": msg.mti}
    if msg.rrn:
        fields["rrn"] = msg.rrn
    return fields


def _check(field: str, value: str, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProtocolError(f"field {field}: invalid value {value!r}")

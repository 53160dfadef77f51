"""ISO 8583 wire format (ASCII bitmap; a fast path for possim's shapes, pyiso8583 as oracle): ``Message`` <-> bytes.

What travels on every link, in memory, over MQTT or TCP, is exactly these bytes. Any
frame that pyiso8583 cannot parse, or whose fields break possim's rules, raises
``ProtocolError`` and nothing else.

Three paths, one result: the fixed layouts of the shapes possim sends (``protocol.fastcodec``),
a one-pass path (``_encode_fast``/``_decode_fast``, Message <-> text for any of possim's
fields) and the reference (fields checked one by one, packed by ``protocol.fast8583`` or
pyiso8583). The first two step aside on anything unusual, so the reference alone decides
every error; property tests hold the three (and pyiso8583) together.

Message authentication (``protocol.mac``). ``encode(msg, key)`` adds a MAC; ``decode(data,
keys)`` verifies it. Without a key both behave exactly as they always did (same bytes, a
field 64 or 128 on the wire is ignored), so runs with keys off are byte-identical.

- Where: field 64, or field 128 when the frame has a secondary bitmap (possim's reversals,
  advices and queries carry field 90, so theirs is in 128). In the ASCII spec the MAC field
  is 16 upper-case hex characters holding the 8-byte MAC; it is always the frame's last field.
- What is MACed: the whole packed frame (MTI, bitmaps with the MAC bit set, every field)
  except the MAC field's own 16 characters, i.e. ``frame[:-16]``. So a sender packs the
  message with a placeholder MAC, computes the MAC over everything before it and puts it
  in; a receiver recomputes it over the bytes it received, never over a re-encoding.
- Failures are ``MacError`` subclasses of ``ProtocolError`` with ``response_code`` "63"
  (ISO 8583 security violation) and the unauthenticated ``message`` attached, so a host
  can answer the claimed sender, and a terminal that catches ``ProtocolError`` already
  treats a response with a wrong MAC as no response at all: ``MacMissingError`` (no MAC
  field), ``MacMismatchError`` (wrong MAC), ``UnknownTerminalError`` (no key for field 41: nobody
  can be answered with a MAC, so a host drops it).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import NamedTuple, TypeVar

import iso8583
from iso8583.specs import default_ascii

from possim.protocol import fast8583, fastcodec
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MAC_LEN, MacKey
from possim.protocol.messages import Message, OriginalData

SPEC = copy.deepcopy(default_ascii)

_T = TypeVar("_T")

#: Message attribute -> its pattern, following ISO 8583 formats (n = digits, an = alnum). One map
#: for every dialect: ``protocol.cup`` places the same attributes in its own fields.
PATTERNS: dict[str, re.Pattern[str]] = {a: re.compile(p) for a, p in (
    ("pan", r"\d{12,19}"),
    ("processing_code", r"\d{6}"),
    ("transmission", r"\d{10}"),
    ("stan", r"\d{6}"),
    ("local_time", r"\d{6}"),
    ("local_date", r"\d{4}"),
    ("rrn", r"[0-9A-Za-z]{12}"),
    ("auth_code", r"[0-9A-Za-z ]{6}"),
    ("response_code", r"[0-9A-Z]{2}"),
    ("tid", r"[ -~]{8}"),
    ("mid", r"[ -~]{15}"),
    ("status", r"[A-Z_]{1,32}"),
    ("currency", r"\d{3}"),
    ("life", r"\d{6}"),
)}


def field_map(fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """(field, attribute) pairs with each attribute's pattern from ``PATTERNS``."""
    return tuple((f, a, PATTERNS[a]) for f, a in fields)


#: (field, attribute, pattern): where possim's ASCII ISO 8583 carries each attribute.
_FIELDS = field_map((
    ("2", "pan"), ("3", "processing_code"), ("7", "transmission"), ("11", "stan"), ("12", "local_time"),
    ("13", "local_date"), ("37", "rrn"), ("38", "auth_code"), ("39", "response_code"), ("41", "tid"),
    ("42", "mid"), ("48", "status"), ("49", "currency"), ("60", "life"),
))
_AMOUNT = re.compile(r"\d{12}")
_ORIGINAL = re.compile(r"\d{42}")
_BATCH_TOTALS = re.compile(r"\d{62}")
_REQUIRED = ("7", "11", "41")
#: ISO 8583 (1987) field 39 "security violation", the answer to a missing or wrong MAC. CUP
#: hosts use "A0" for the same failure; a CUP profile can override it.
SECURITY_VIOLATION = "63"
_MAC_CHARS = 2 * MAC_LEN
_MAC_HEX = re.compile(r"[0-9A-F]{16}")

#: What ``decode`` verifies against: one terminal's key, or every terminal's keys by field 41.
Keys = MacKey | Mapping[str, MacKey]


class MacError(ProtocolError):
    """The frame parses but its MAC does not prove who built it; ``message`` is unauthenticated."""

    response_code = SECURITY_VIOLATION

    def __init__(self, reason: str, message: Message) -> None:
        super().__init__(reason)
        self.message = message


class MacMissingError(MacError):
    """Keys are configured but the frame carries no MAC field."""


class MacMismatchError(MacError):
    """The MAC field is there but is not the MAC of the frame under the sender's key."""


class UnknownTerminalError(MacError):
    """No key for the terminal in field 41: the frame cannot be verified nor answered with a MAC."""


class Foreign(NamedTuple):
    """A dialect's codec: this module's own two, and another's as the module that defines it
    registers it (``register_foreign``)."""

    encode: Callable[[Message, MacKey | None], bytes]
    decode: Callable[[bytes, Keys | None], Message]
    peek_mti: Callable[[bytes], str]
    #: Whether a frame's first bytes are this dialect's (``dialect_of``).
    claims: Callable[[bytes], bool]


#: Codecs by dialect name: ``iso`` and ``iso-binary`` (this module), and those whose frames
#: ``decode`` recognises by their first bytes (``dialect_of``): each registers itself when it is
#: imported (``protocol.cup``), so this module imports none of them. Filled below.
_CODECS: dict[str, Foreign] = {}


def register_foreign(name: str, foreign: Foreign) -> None:
    """Let ``encode``/``decode``/``peek_mti`` hand frames of dialect ``name`` to ``foreign``."""
    _CODECS[name] = foreign
    _seen.clear()


def _codec(name: str) -> Foreign:
    try:
        return _CODECS[name]
    except KeyError:
        raise ProtocolError(f"unknown wire dialect {name!r} (known: {', '.join(sorted(_CODECS))})") from None


def encode(msg: Message, key: MacKey | None = None, dialect: str = "iso") -> bytes:
    """Encode a message in ``dialect`` (possim's ASCII ISO 8583 unless named), with a MAC when
    ``key`` is given.

    A message possim itself built wrongly is a bug and raises ``ProtocolError``.
    """
    return _codec(dialect).encode(msg, key)


def _encode_iso(msg: Message, key: MacKey | None = None) -> bytes:
    text = fastcodec.encode_text(msg, key is not None) or _encode_fast(msg, key is not None)
    if text is None:
        return _encode_reference(msg, key)
    if key is None:
        return text.encode("ascii")
    body = text.encode("ascii")
    return body + key.compute(body).hex().upper().encode("ascii")


def _encode_reference(msg: Message, key: MacKey | None) -> bytes:
    """The field-by-field encoding through ``fast8583``/pyiso8583: the fast path's reference and its errors."""
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
    if msg.batch_totals is not None:  # settlement: field 48 holds the batch totals, not a status
        _check("48", msg.batch_totals, _BATCH_TOTALS)
        if msg.status is not None:
            raise ProtocolError("field 48: a message carries a status or batch totals, not both")
        doc["48"] = msg.batch_totals
    if msg.mti not in M.KNOWN:
        raise ProtocolError(f"MTI {msg.mti!r} is not a possim message")
    if key is not None:
        doc[_mac_field(doc)] = "0" * _MAC_CHARS
    data = fast8583.pack(doc) or _pack_oracle(doc)
    if key is None:
        return data
    body = data[:-_MAC_CHARS]
    return body + key.compute(body).hex().upper().encode("ascii")


def decode(data: bytes, keys: Keys | None = None, dialect: str | None = None) -> Message:
    """Decode one frame; anything malformed raises ``ProtocolError`` with a one-line reason.

    With ``keys`` the frame must also carry the right MAC for the terminal in its field 41,
    else a ``MacError`` (see the module docstring) is raised.

    Every frame is parsed (the fast path of ``protocol.fast8583``, or pyiso8583 for any frame
    outside possim's shapes). Only the frame parsed just before is remembered, so a frame
    traced by a driver (``wire_fields``) and then handled by its state machine is parsed once;
    nothing else is cached, so a repeated run parses all its frames again. The MAC is checked
    on every call. Without ``dialect`` the bytes say which it is (``dialect_of``).
    """
    return _codec(dialect or dialect_of(data)).decode(data, keys)


def _decode_iso(data: bytes, keys: Keys | None = None) -> Message:
    data = bytes(data)
    msg, tag = _one_frame(_last, data, _decode)
    if keys is not None:
        _verify(data, msg, tag, keys)
    return msg


# -- dialect detection: what the first bytes of a frame say -------------------------------------
#: An ISO ASCII frame starts with an ASCII digit (0x30-0x39), a wallet frame with "{"; another
#: dialect's frames are those its codec claims (``Foreign.claims``: CUP's BCD MTI).
#: After an ASCII MTI, possim's ``iso`` frames carry the primary bitmap as 16 hex characters.
_HEX_BITMAP = re.compile(rb"[0-9A-Fa-f]{16}")
#: The ``iso-binary`` dialect's primary bitmap: 8 raw bytes; its first bit says a secondary follows.
_BITMAP_BYTES = 8


def dialect_of(data: bytes) -> str:
    """The dialect a card frame is in: the registered dialect that claims it ("cup" for a BCD MTI);
    "iso-binary" for an ASCII MTI not followed by 16 hex characters (the bitmap as raw bytes, as many
    hosts and load tools send it); else "iso".

    The answer for the frame asked about just before is remembered: a driver tracing a frame, the
    machine that handles it and its MAC key lookup all ask about the same bytes.
    """
    return _one_frame(_seen, bytes(data), _dialect_of)


def _one_frame(memory: dict[bytes, _T], data: bytes, work: Callable[[bytes], _T]) -> _T:
    """``work(data)``, remembered for the one frame asked about last: the same bytes handled by a
    driver, its machine and its MAC key lookup are worked out once, and nothing else is kept."""
    known = memory.get(data)
    if known is None:
        known = work(data)
        memory.clear()
        memory[data] = known
    return known


#: The one frame whose dialect is remembered, with it (see ``dialect_of``).
_seen: dict[bytes, str] = {}


def _dialect_of(data: bytes) -> str:
    for name, foreign in _CODECS.items():
        if foreign.claims(data):
            return name
    if data[:4].isdigit() and not _HEX_BITMAP.match(data, 4):
        return "iso-binary"
    return "iso"


# -- the iso-binary dialect: possim's ASCII ISO 8583 with binary bitmaps -------------------------
# Everything but the bitmaps is byte for byte the ``iso`` layout (ASCII MTI, ASCII length
# prefixes and fields), so a frame converts losslessly either way and one parser reads both. A
# MAC is computed over the frame as it travels (binary bitmaps), as in every dialect.


def hex_bitmaps(data: bytes) -> bytes:
    """An ``iso-binary`` frame in the ``iso`` layout (each 8-byte bitmap as 16 hex characters);
    ``ProtocolError`` when the frame is too short to hold its bitmaps."""
    size = 2 * _BITMAP_BYTES if len(data) > 4 and data[4] & 0x80 else _BITMAP_BYTES
    if len(data) < 4 + size:
        raise ProtocolError(f"malformed frame: {len(data)} bytes cannot hold an MTI and a {size}-byte binary bitmap")
    return data[:4] + data[4:4 + size].hex().upper().encode("ascii") + data[4 + size:]


def binary_bitmaps(data: bytes) -> bytes:
    """An ``iso`` frame in the ``iso-binary`` layout (each bitmap as 8 raw bytes)."""
    size = 32 if int(data[4:5], 16) & 0x8 else 16
    return data[:4] + bytes.fromhex(data[4:4 + size].decode("ascii")) + data[4 + size:]


def encode_binary(msg: Message, key: MacKey | None = None) -> bytes:
    """``encode`` in the ``iso-binary`` layout, the MAC (with ``key``) over the bytes that travel."""
    data = binary_bitmaps(encode(msg, key))
    if key is None:
        return data
    body = data[:-_MAC_CHARS]
    return body + key.compute(body).hex().upper().encode("ascii")


def decode_binary(data: bytes, keys: Keys | None = None) -> Message:
    """``decode`` of an ``iso-binary`` frame: the same parser and rules, the MAC checked over ``data``."""
    data = bytes(data)
    msg, tag = _decode(hex_bitmaps(data))
    if keys is not None:
        _verify(data, msg, tag, keys)
    return msg


def _never(_data: bytes) -> bool:
    """``iso`` and ``iso-binary`` are what ``dialect_of`` finds when no other dialect claims a frame."""
    return False


def _peek_ascii(data: bytes) -> str:
    head = data[:4]
    return head.decode("ascii") if len(head) == 4 and head.isdigit() else "????"


_CODECS.update({"iso": Foreign(_encode_iso, _decode_iso, _peek_ascii, _never),
                "iso-binary": Foreign(encode_binary, decode_binary, _peek_ascii, _never)})


def _mac_field(doc: Mapping[str, str]) -> str:
    """Field 128 when the frame has a secondary bitmap (a field above 64), else field 64."""
    return "128" if any(f.isdigit() and int(f) > 64 for f in doc) else "64"


def _verify(data: bytes, msg: Message, tag: str | None, keys: Keys) -> None:
    key = keys if isinstance(keys, MacKey) else keys.get(msg.tid)
    if key is None:
        raise UnknownTerminalError(f"{_where(msg)}: no MAC key for this terminal", msg)
    if tag is None:
        raise MacMissingError(f"{_where(msg)}: no MAC", msg)
    if not (_MAC_HEX.fullmatch(tag) and key.verify(data[:-_MAC_CHARS], bytes.fromhex(tag))):
        raise MacMismatchError(f"{_where(msg)}: wrong MAC", msg)


def _where(msg: Message) -> str:
    """Who a refused frame claims to come from (only formatted when a frame is refused)."""
    return f"MTI {msg.mti} from {msg.tid!r} STAN {msg.stan}"


#: The one frame remembered, with its parse (see ``decode``).
_last: dict[bytes, tuple[Message, str | None]] = {}


def _pack_oracle(doc: dict[str, str]) -> bytes:
    """pyiso8583's encoding: the fallback for what the fast packer does not take, and its errors."""
    try:
        return bytes(iso8583.encode(doc, SPEC)[0])
    except iso8583.EncodeError as exc:
        raise ProtocolError(str(exc)) from None


#: What pyiso8583 raises on a hostile frame; each becomes ``ProtocolError``. KeyError: a secondary
#: bitmap whose bit 65 is set sends it looking for fields past 128, which no spec here has.
DECODE_ERRORS = (iso8583.DecodeError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError)


def unpack(data: bytes) -> dict[str, str]:
    """The field strings of an ``iso`` frame as pyiso8583 splits it, before any of possim's rules
    (``ProtocolError`` if it does not split)."""
    return _unpack_oracle(data)


def _unpack_oracle(data: bytes) -> dict[str, str]:
    """pyiso8583's decoding: the fallback for frames the fast unpacker does not take, and its errors."""
    try:
        doc, _ = iso8583.decode(bytearray(data), SPEC)
    except DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed frame: {exc!r}") from None
    return doc


def _decode(data: bytes) -> tuple[Message, str | None]:
    return fastcodec.decode_text(data) or _decode_fast(data) or _message(fast8583.unpack(data) or _unpack_oracle(data))


def _message(doc: Mapping[str, str]) -> tuple[Message, str | None]:
    """possim's rules over the parsed fields: the message and its MAC field, or ``ProtocolError``."""
    mti = doc.get("t", "")
    if mti not in M.KNOWN:
        raise ProtocolError(f"unknown MTI {mti!r}")
    missing = [f for f in _REQUIRED if f not in doc]
    if missing:
        raise ProtocolError(f"MTI {mti}: missing field(s) {', '.join(missing)}")
    values: dict[str, object] = {}
    if _BATCH_TOTALS.fullmatch(doc.get("48", "")):  # settlement: field 48 holds batch totals (digits)
        values["batch_totals"] = doc["48"]
        doc = {k: v for k, v in doc.items() if k != "48"}
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
    # The MAC field is the frame's last (the highest field of its bitmap): "1" is the secondary bitmap.
    tag = doc.get("128" if "1" in doc else "64")
    return Message(mti=mti, **values), tag  # type: ignore[arg-type]


def peek_mti(data: bytes) -> str:
    """The MTI of a frame without decoding it (fault rules match on it); '????' if unreadable.

    Its dialect is asked of ``dialect_of``, which remembers it for the receiver of the same bytes."""
    return _codec(dialect_of(data)).peek_mti(data)


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


# -- the fast path: Message <-> text in one pass over possim's fields ---------------------------
# ``encode`` and ``decode`` first try these; where they return ``None`` (anything unusual: a
# wrong value, an unknown shape, non-ASCII) the reference path above runs and decides, so the
# bytes, the messages and every error's wording are the reference's. The fast path only ever
# accepts what the reference accepts: over ASCII text ``str.isdigit`` is ``\d``, ``isalnum``
# ``[0-9A-Za-z]`` and ``isprintable`` ``[ -~]``, and the other fields use the same patterns.
# ``tests/protocol/test_fast8583.py`` checks both directions against the reference and pyiso8583.

def _pattern(field: str) -> re.Pattern[str]:
    return next(p for f, _, p in _FIELDS if f == field)


def _field_48(value: str) -> object:
    """A settlement's 62 digits of batch totals, or a status (``_wire_values`` keeps statuses of 62 digits out)."""
    return (len(value) == 62 and value.isdigit()) or _STATUS.fullmatch(value)


_STATUS = _pattern("48")
#: Field -> (bitmap bit, Message attribute, length-prefix digits, min length, max length, check).
#: The bit is that of the field's own bitmap (primary for 2-64, secondary for 65-128).
_ISDIGIT, _ISALNUM, _ISPRINT = str.isdigit, str.isalnum, str.isprintable
_WIRE: tuple[tuple[int, str, int, int, int, Callable[[str], object]], ...] = tuple(
    (1 << (64 - (n - 64 if n > 64 else n)), attr, prefix, low, high, ok)
    for n, attr, prefix, low, high, ok in (
        (2, "pan", 2, 12, 19, _ISDIGIT),
        (3, "processing_code", 0, 6, 6, _ISDIGIT),
        (4, "amount", 0, 12, 12, _ISDIGIT),
        (7, "transmission", 0, 10, 10, _ISDIGIT),
        (11, "stan", 0, 6, 6, _ISDIGIT),
        (12, "local_time", 0, 6, 6, _ISDIGIT),
        (13, "local_date", 0, 4, 4, _ISDIGIT),
        (37, "rrn", 0, 12, 12, _ISALNUM),
        (38, "auth_code", 0, 6, 6, _pattern("38").fullmatch),
        (39, "response_code", 0, 2, 2, _pattern("39").fullmatch),
        (41, "tid", 0, 8, 8, _ISPRINT),
        (42, "mid", 0, 15, 15, _ISPRINT),
        (48, "status", 3, 1, 62, _field_48),
        (49, "currency", 0, 3, 3, _ISDIGIT),
        (90, "original", 0, 42, 42, _ISDIGIT),
    )
)
#: Where field 48 sits in ``_WIRE`` (a status, or a settlement's batch totals), and field 90.
_F48 = next(i for i, spec in enumerate(_WIRE) if spec[1] == "status")
_SECONDARY_FROM = len(_WIRE) - 1
_WIRE_PRIMARY, _WIRE_SECONDARY = _WIRE[:_SECONDARY_FROM], _WIRE[_SECONDARY_FROM:]
_BIT1 = 1 << 63
_MAC_BIT = 1  # field 64 of the primary bitmap, field 128 of the secondary
_ATTRS = attrgetter(*(attr for _, attr, *_ in _WIRE), "batch_totals")
_AMOUNT_LIMIT = 10**12


def _wire_values(msg: Message) -> list[object] | None:
    """The message's field values as wire text, in ``_WIRE`` order (``None`` = absent), or ``None`` if unusual."""
    values: list[object] = list(_ATTRS(msg))
    batch = values.pop()
    amount = values[2]
    if amount is not None:
        if type(amount) is not int or not 0 <= amount < _AMOUNT_LIMIT:
            return None
        values[2] = f"{amount:012d}"
    status = values[_F48]
    if status is not None and not (type(status) is str and _STATUS.fullmatch(status)):
        return None
    if batch is not None:
        if status is not None or type(batch) is not str or len(batch) != 62 or not batch.isdigit():
            return None
        values[_F48] = batch
    o = values[-1]
    if o is not None:
        if type(o) is not OriginalData:
            return None
        values[-1] = f"{o.mti}{o.stan}{o.transmission}" + "0" * 22
    return values


def _encode_fast(msg: Message, mac: bool) -> str | None:
    """The frame's text (MAC field left out but flagged in the bitmap), or ``None`` to use the reference."""
    mti = msg.mti
    if msg.life is not None:  # field 60 (a signed-on terminal's life): the reference path packs it
        return None
    values = _wire_values(msg)
    if values is None or type(mti) is not str or mti not in M.KNOWN:
        return None
    parts: list[str] = []
    primary = 0
    for (bit, _, prefix, low, high, ok), value in zip(_WIRE_PRIMARY, values, strict=False):
        if value is None:
            continue
        if type(value) is not str or not low <= len(value) <= high or not ok(value):
            return None
        if prefix:
            parts.append(f"{len(value):0{prefix}d}")
        parts.append(value)
        primary |= bit
    original = values[-1]
    if original is None:
        head = f"{mti}{primary | _MAC_BIT if mac else primary:016X}"
    else:
        if not (type(original) is str and len(original) == 42 and original.isdigit()):
            return None
        parts.append(original)
        secondary = _WIRE[-1][0] | (_MAC_BIT if mac else 0)
        head = f"{mti}{primary | _BIT1:016X}{secondary:016X}"
    text = head + "".join(parts)
    return text if text.isascii() else None


def _decode_fast(data: bytes) -> tuple[Message, str | None] | None:
    """The message and MAC field of a well-formed frame of possim's shapes, else ``None`` (the reference decides)."""
    if not data.isascii():
        return None
    text = data.decode("ascii")
    mti = text[:4]
    try:
        primary = int(text[4:20], 16)
        secondary = int(text[20:36], 16) if primary & _BIT1 else 0
    except ValueError:
        return None
    if primary & _BIT1:  # a secondary bitmap: possim's only holds fields 90 and 128, never with 64
        if primary & _MAC_BIT or not secondary or secondary & ~_SECONDARY_BITS:
            return None
        idx, head, bits = 36, f"{primary:016X}{secondary:016X}", secondary
    else:
        idx, head, bits = 20, f"{primary:016X}", primary
    if mti not in M.KNOWN or primary & ~_PRIMARY_BITS or text[4:idx] != head:
        return None
    values: dict[str, object] = {}
    idx = _decode_fields(text, idx, primary, _WIRE_PRIMARY, values)
    if idx >= 0 and secondary:
        idx = _decode_fields(text, idx, secondary, _WIRE_SECONDARY, values)
    tag = text[idx:idx + _MAC_CHARS] if bits & _MAC_BIT else None
    if tag is not None:
        idx += _MAC_CHARS
    if idx != len(text) or "tid" not in values or "stan" not in values or "transmission" not in values:
        return None
    if "amount" in values:
        values["amount"] = int(values["amount"])  # type: ignore[call-overload]
    raw = values.get("original")
    if raw is not None:
        values["original"] = OriginalData(mti=raw[:4], stan=raw[4:10], transmission=raw[10:20])  # type: ignore[index]
    return Message(mti=mti, **values), tag  # type: ignore[arg-type]


_PRIMARY_BITS = _BIT1 | _MAC_BIT | sum(spec[0] for spec in _WIRE_PRIMARY)
_SECONDARY_BITS = _MAC_BIT | _WIRE[-1][0]


def _decode_fields(text: str, idx: int, bitmap: int, specs: tuple[tuple[int, str, int, int, int,
                   Callable[[str], object]], ...], values: dict[str, object]) -> int:
    """Fields of one bitmap (MAC field excluded) into ``values`` as text; the index after them, or -1 if unusual."""
    for bit, attr, prefix, low, high, ok in specs:
        if not bitmap & bit:
            continue
        if prefix:
            length = text[idx:idx + prefix]
            if not length.isdigit():
                return -1
            idx += prefix
            size = int(length)
        else:
            size = high
        end = idx + size
        value = text[idx:end]
        if len(value) != size:
            return -1
        idx = end
        if not low <= size <= high or not ok(value):
            return -1
        values["batch_totals" if attr == "status" and size == 62 and value.isdigit() else attr] = value
    return idx

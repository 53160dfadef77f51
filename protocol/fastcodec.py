"""Fixed layouts for the ISO 8583 frames possim itself sends: ``Message`` <-> text by table lookup.

Why: a simulated purchase encodes and decodes four frames, and even the codec's one-pass
path (``protocol.codec._encode_fast``/``_decode_fast``) walks every possible field, checks
each one on its own and builds the bitmap bit by bit. possim sends few shapes (which fields
a frame carries: a purchase request, its answer, a reversal, an advice, a sign-on, ...), so
each shape's layout is laid down once: its bitmap text, its fields' lengths and one regular
expression for the characters of all its fields. Encoding a known shape is one lookup, one
length check, one join and one match; decoding is one lookup and one match.

The codec tries this first and falls back to its one-pass path and then its reference for
anything else (``None`` here): a shape not in ``SHAPES``, a field 60 or batch totals, a value
of the wrong type, length or characters, non-ASCII text, a lower-case bitmap. So the bytes,
the messages and every error's wording stay those of the reference; ``tests/test_fastcodec.py``
checks that against the reference path and pyiso8583 on generated values of every shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter, is_not, itemgetter

from possim.protocol import mti as M
from possim.protocol.messages import Message, OriginalData

#: Attribute -> (ISO field, length-prefix digits (0: fixed), min length, max length, characters).
#: The same fields and rules as ``protocol.codec._FIELDS``/``_WIRE`` (field 48 as a status).
_FIELD: dict[str, tuple[int, int, int, int, str]] = {
    "pan": (2, 2, 12, 19, r"\d"),
    "processing_code": (3, 0, 6, 6, r"\d"),
    "amount": (4, 0, 12, 12, r"\d"),
    "transmission": (7, 0, 10, 10, r"\d"),
    "stan": (11, 0, 6, 6, r"\d"),
    "local_time": (12, 0, 6, 6, r"\d"),
    "local_date": (13, 0, 4, 4, r"\d"),
    "rrn": (37, 0, 12, 12, r"[0-9A-Za-z]"),
    "auth_code": (38, 0, 6, 6, r"[0-9A-Za-z ]"),
    "response_code": (39, 0, 2, 2, r"[0-9A-Z]"),
    "tid": (41, 0, 8, 8, r"[ -~]"),
    "mid": (42, 0, 15, 15, r"[ -~]"),
    "status": (48, 3, 1, 32, r"[A-Z_]"),
    "currency": (49, 0, 3, 3, r"\d"),
    "original": (90, 0, 42, 42, r"\d"),
}
_ATTRS = tuple(_FIELD)
#: What the codec's ISO encoding reads of a message, in field order; the last two (batch totals,
#: field 60) have no layout here, so a message carrying either goes to the codec's other paths.
_GET = attrgetter("mti", *_ATTRS, "batch_totals", "life")
_NONES = (None,) * (len(_ATTRS) + 3)

_REQUEST = ("pan", "processing_code", "amount", "transmission", "stan", "local_time", "local_date",
            "tid", "mid", "currency")
_ADVICE = ("pan", "processing_code", "amount", "transmission", "stan", "rrn", "auth_code", "tid", "mid",
           "currency", "original")
_REVERSAL = ("pan", "processing_code", "amount", "transmission", "stan", "tid", "mid", "currency", "original")
_SIGN_ON = ("transmission", "stan", "tid", "mid", "currency")
#: The shapes possim's terminals and hosts send under ``iso``: each with and without a MAC, any MTI
#: of ``mti.KNOWN``. Each has at most one variable-length field, so its layout is fixed by that length.
SHAPES: tuple[frozenset[str], ...] = tuple(frozenset(s) for s in (
    _REQUEST,                                                   # 0100, 0200
    (*_REQUEST, "response_code"),                               # 0110, 0210 declined
    (*_REQUEST, "rrn", "auth_code", "response_code"),           # 0110, 0210 approved
    _ADVICE,                                                    # 0220, 0221
    (*_ADVICE, "response_code"),                                # 0230
    _REVERSAL,                                                  # 0400, 0401
    (*_REVERSAL, "response_code"),                              # 0410
    _SIGN_ON,                                                   # 0800
    (*_SIGN_ON, "response_code", "status"),                     # 0810
))
_MAC_CHARS = 16
_AMOUNT_LIMIT = 10**12
_ORIGINAL_PAD = "0" * 22
_STR = frozenset({str})


@dataclass(frozen=True, slots=True)
class _Layout:
    """One shape, with or without a MAC: everything about its frames that does not vary."""

    attrs: tuple[str, ...]          # the message attributes carried, in field order
    take: Callable[[tuple[object, ...]], tuple[object, ...]]  # ``_GET``'s values -> those attributes'
    head: str                       # the bitmap(s) as the frame carries them
    lengths: frozenset[tuple[int, ...]]  # every valid tuple of the fields' lengths
    body: re.Pattern[str]           # the fields' text (length prefix included), checked in one match
    frame: re.Pattern[str]          # a whole frame: MTI, bitmaps, fields (each a group), MAC
    amount: int                     # index of the amount in ``attrs``, or -1
    original: int                   # index of field 90, or -1
    var: int                        # index of the variable-length field, or -1
    prefix: int                     # digits of its length prefix
    mac: bool


def _layout(shape: frozenset[str], mac: bool) -> _Layout:
    attrs = tuple(a for a in _ATTRS if a in shape)
    primary = secondary = 0
    for attr in attrs:
        n = _FIELD[attr][0]
        if n > 64:
            secondary |= 1 << (128 - n)
        else:
            primary |= 1 << (64 - n)
    if secondary:
        primary |= 1 << 63
        secondary |= int(mac)
        head = f"{primary:016X}{secondary:016X}"
    else:
        primary |= int(mac)
        head = f"{primary:016X}"
    body, groups, var, prefix, spans = [], [], -1, 0, []
    for i, attr in enumerate(attrs):
        _, digits, low, high, chars = _FIELD[attr]
        size = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        if digits:
            var, prefix = i, digits
            body.append(rf"\d{{{digits}}}")
            groups.append(rf"(\d{{{digits}}})")
        body.append(chars + size)
        groups.append(f"({chars}{size})")
        spans.append(range(low, high + 1))
    mac_group = f"(.{{{_MAC_CHARS}}})" if mac else ""
    return _Layout(
        attrs=attrs, take=_taker(attrs), head=head,
        lengths=frozenset(_combinations(spans)),
        body=re.compile("".join(body), re.ASCII),
        frame=re.compile(rf"(\d{{4}}){head}{''.join(groups)}{mac_group}", re.ASCII | re.DOTALL),
        amount=attrs.index("amount") if "amount" in attrs else -1,
        original=attrs.index("original") if "original" in attrs else -1,
        var=var, prefix=prefix, mac=mac)


def _taker(attrs: tuple[str, ...]) -> Callable[[tuple[object, ...]], tuple[object, ...]]:
    """Every shape carries several fields, so ``itemgetter`` gives a tuple."""
    return itemgetter(*(1 + _ATTRS.index(a) for a in attrs))


def _combinations(spans: list[range]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for span in spans:
        out = [(*done, n) for done in out for n in span]
    return out


def _key(shape: frozenset[str]) -> tuple[bool, ...]:
    """The shape as ``_GET``'s values' presence flags (MTI always present, batch totals and life absent)."""
    return (True, *(a in shape for a in _ATTRS), False, False)


_LAYOUTS = [_layout(shape, mac) for shape in SHAPES for mac in (False, True)]
#: (presence flags, MAC or not) -> layout, for encoding.
_BY_SHAPE = {(_key(frozenset(lay.attrs)), lay.mac): lay for lay in _LAYOUTS}
#: The 16 characters after the MTI -> layouts that start so (a secondary bitmap follows some), for decoding.
_BY_BITMAP: dict[str, list[_Layout]] = {}
for _lay in _LAYOUTS:
    _BY_BITMAP.setdefault(_lay.head[:16], []).append(_lay)


def encode_text(msg: Message, mac: bool) -> str | None:
    """The frame's text (MAC field flagged, left out), or ``None`` when it is not a known shape with good values."""
    values = _GET(msg)
    layout = _BY_SHAPE.get((tuple(map(is_not, values, _NONES)), mac))
    mti = values[0]
    if layout is None or type(mti) is not str or mti not in M.KNOWN:
        return None
    parts = list(layout.take(values))
    if layout.amount >= 0:
        amount = parts[layout.amount]
        if type(amount) is not int or not 0 <= amount < _AMOUNT_LIMIT:
            return None
        parts[layout.amount] = f"{amount:012d}"
    if layout.original >= 0:
        o = parts[layout.original]
        if type(o) is not OriginalData:
            return None
        parts[layout.original] = f"{o.mti}{o.stan}{o.transmission}{_ORIGINAL_PAD}"
    if not _STR.issuperset(map(type, parts)):
        return None
    if tuple(map(len, parts)) not in layout.lengths:  # type: ignore[arg-type]
        return None
    if layout.var >= 0:
        parts.insert(layout.var, f"{len(parts[layout.var]):0{layout.prefix}d}")  # type: ignore[arg-type]
    body = "".join(parts)  # type: ignore[arg-type]
    if not body.isascii() or layout.body.fullmatch(body) is None:
        return None
    return mti + layout.head + body


def decode_text(data: bytes) -> tuple[Message, str | None] | None:
    """The message and MAC field of a frame of a known shape with good values, else ``None``."""
    if not data.isascii():
        return None
    text = data.decode("ascii")
    for layout in _BY_BITMAP.get(text[4:20], ()):
        found = layout.frame.fullmatch(text)
        if found is not None:
            return _message(layout, found.groups())
    return None


def _message(layout: _Layout, groups: tuple[str, ...]) -> tuple[Message, str | None] | None:
    mti = groups[0]
    if mti not in M.KNOWN:
        return None
    fields = list(groups[1:])
    tag = fields.pop() if layout.mac else None
    if layout.var >= 0 and int(fields.pop(layout.var)) != len(fields[layout.var]):
        return None
    values: dict[str, object] = dict(zip(layout.attrs, fields, strict=True))
    if layout.amount >= 0:
        values["amount"] = int(fields[layout.amount])
    if layout.original >= 0:
        raw = fields[layout.original]
        values["original"] = OriginalData(mti=raw[:4], stan=raw[4:10], transmission=raw[10:20])
    return Message(mti=mti, **values), tag  # type: ignore[arg-type]

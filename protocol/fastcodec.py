"""Fixed layouts for the ISO 8583 frames possim itself sends: ``Message`` <-> text by table lookup.

Why: a simulated purchase encodes and decodes four frames, and even the codec's one-pass
path (``protocol.codec._encode_fast``/``_decode_fast``) walks every possible field, checks
each one on its own and builds the bitmap bit by bit. possim sends few shapes (which fields
a frame carries: a purchase request, its answer, a reversal, an advice, a sign-on, ...), so
each shape's layout is laid down once: its bitmap text, its fields' lengths and one regular
expression for the characters of all its fields. Encoding looks the layouts up by MTI, takes
the one whose empty attributes are empty, then does one length check, one join and one match;
decoding looks the layout up by bitmap and does one match.

The codec tries this first and falls back to its one-pass path and then its reference for
anything else (``None`` here): a shape not in ``SENT`` under its MTI (encoding) or not in
``SHAPES`` (decoding), a field 60 or batch totals, a value
of the wrong type, length or characters, non-ASCII text, a lower-case bitmap. So the bytes,
the messages and every error's wording stay those of the reference; ``tests/protocol/test_fastcodec.py``
checks that against the reference path and pyiso8583 on generated values of every shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

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
#: Attributes the codec's ISO encoding reads that no layout carries (settlement totals, field 60):
#: a message with either goes to the codec's other paths.
_NO_LAYOUT = ("batch_totals", "life")

_REQUEST = ("pan", "processing_code", "amount", "transmission", "stan", "local_time", "local_date",
            "tid", "mid", "currency")
_ADVICE = ("pan", "processing_code", "amount", "transmission", "stan", "rrn", "auth_code", "tid", "mid",
           "currency", "original")
_REVERSAL = ("pan", "processing_code", "amount", "transmission", "stan", "tid", "mid", "currency", "original")
_SIGN_ON = ("transmission", "stan", "tid", "mid", "currency")
#: The shapes possim's terminals and hosts send under ``iso`` and the MTIs they send each under,
#: with and without a MAC. Each has at most one variable-length field, so its layout is fixed by
#: that length. A frame of a shape decodes here under any MTI of ``mti.KNOWN``.
SENT: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = tuple((mtis, frozenset(s)) for mtis, s in (
    (("0110", "0210"), (*_REQUEST, "rrn", "auth_code", "response_code")),  # approved, tried first
    (("0110", "0210"), (*_REQUEST, "response_code")),
    (("0100", "0200"), _REQUEST),
    (("0220", "0221"), _ADVICE),
    (("0230",), (*_ADVICE, "response_code")),
    (("0400", "0401"), _REVERSAL),
    (("0410",), (*_REVERSAL, "response_code")),
    (("0800",), _SIGN_ON),
    (("0810",), (*_SIGN_ON, "response_code", "status")),
))
SHAPES: tuple[frozenset[str], ...] = tuple(dict.fromkeys(shape for _, shape in SENT))
assert all(M.KNOWN.issuperset(mtis) for mtis, _ in SENT)
_MAC_CHARS = 16
_AMOUNT_LIMIT = 10**12
_ORIGINAL_PAD = "0" * 22
_STR = frozenset({str})


@dataclass(frozen=True, slots=True)
class _Layout:
    """One shape, with or without a MAC: everything about its frames that does not vary."""

    attrs: tuple[str, ...]          # the message attributes carried, in field order
    present: Callable[[Message], tuple[object, ...]]  # those attributes' values
    absent: Callable[[Message], tuple[object, ...]]   # every other attribute's: all ``None`` for this shape
    nones: tuple[None, ...]
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
            groups.append(rf"(?P<_len>\d{{{digits}}})")
        body.append(chars + size)
        groups.append(f"(?P<{attr}>{chars}{size})")
        spans.append(range(low, high + 1))
    mac_group = f"(?P<_tag>.{{{_MAC_CHARS}}})" if mac else ""
    others = (*(a for a in _ATTRS if a not in shape), *_NO_LAYOUT)
    return _Layout(
        attrs=attrs, present=attrgetter(*attrs), absent=attrgetter(*others), nones=(None,) * len(others), head=head,
        lengths=frozenset(_combinations(spans)),
        body=re.compile("".join(body), re.ASCII),
        frame=re.compile(rf"(?P<mti>\d{{4}}){head}{''.join(groups)}{mac_group}", re.ASCII | re.DOTALL),
        amount=attrs.index("amount") if "amount" in attrs else -1,
        original=attrs.index("original") if "original" in attrs else -1,
        var=var, prefix=prefix, mac=mac)


def _combinations(spans: list[range]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for span in spans:
        out = [(*done, n) for done in out for n in span]
    return out


_LAYOUTS = {(shape, mac): _layout(shape, mac) for shape in SHAPES for mac in (False, True)}
#: (MTI, MAC or not) -> the layouts of the shapes possim sends under that MTI, for encoding.
_BY_MTI: dict[tuple[str, bool], list[_Layout]] = {}
for _mtis, _shape in SENT:
    for _mti in _mtis:
        for _mac in (False, True):
            _BY_MTI.setdefault((_mti, _mac), []).append(_LAYOUTS[_shape, _mac])
#: The 16 characters after the MTI -> layouts that start so (a secondary bitmap follows some), for decoding.
_BY_BITMAP: dict[str, list[_Layout]] = {}
for _lay in _LAYOUTS.values():
    _BY_BITMAP.setdefault(_lay.head[:16], []).append(_lay)


def encode_text(msg: Message, mac: bool) -> str | None:
    """The frame's text (MAC field flagged, left out), or ``None`` when it is not a known shape with good values."""
    mti = msg.mti
    if type(mti) is not str:
        return None
    for layout in _BY_MTI.get((mti, mac), ()):  # a shape's fields may all be in another's: each decides
        if layout.absent(msg) == layout.nones:
            text = _encode(layout, mti, list(layout.present(msg)))
            if text is not None:
                return text
    return None


def _encode(layout: _Layout, mti: str, parts: list[object]) -> str | None:
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
            return _message(layout, found)
    return None


def _message(layout: _Layout, found: re.Match[str]) -> tuple[Message, str | None] | None:
    values: dict[str, object] = found.groupdict()
    tag: str | None = values.pop("_tag", None)  # type: ignore[assignment]
    if layout.var >= 0 and int(values.pop("_len")) != len(values[layout.attrs[layout.var]]):  # type: ignore[call-overload, arg-type]
        return None
    if values["mti"] not in M.KNOWN:
        return None
    if layout.amount >= 0:
        values["amount"] = int(values["amount"])  # type: ignore[call-overload]
    if layout.original >= 0:
        raw: str = values["original"]  # type: ignore[assignment]
        values["original"] = OriginalData(mti=raw[:4], stan=raw[4:10], transmission=raw[10:20])
    return Message(**values), tag  # type: ignore[arg-type]

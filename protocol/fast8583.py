"""A hand-made ISO 8583 packer and unpacker for possim's own message shapes (ASCII spec).

Why: pyiso8583 is general (any spec, any field, binary or text, EBCDIC) and costs about as
much per message as the rest of a simulated purchase. possim's frames use a fixed, small
set of fields of ``iso8583.specs.default_ascii``, so a straight-line packer for exactly
those fields is several times cheaper.

``protocol.codec`` first tries its own one-pass path (Message <-> text); this module packs
and unpacks for its field-by-field reference path, which decides every frame or message the
one-pass path steps aside from.

pyiso8583 stays the oracle and the fallback: ``pack`` and ``unpack`` return ``None`` for
anything outside the shapes they know (an unknown field, a wrong length, a lower-case or
odd bitmap, non-ASCII bytes, trailing data), and the caller then asks pyiso8583, so every
error keeps pyiso8583's exact wording. Where they return a value it is the value pyiso8583
gives (bytes from ``iso8583.encode``, the decoded dict from ``iso8583.decode``); the
property tests in ``tests/protocol/test_fast8583.py`` check that on generated and mutated frames.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Field number -> (length digits of its prefix, length): prefix 0 means fixed length;
#: otherwise the maximum. Taken from ``default_ascii`` for the fields possim sends.
_PRIMARY: tuple[tuple[int, str, int, int], ...] = (
    (2, "2", 2, 19), (3, "3", 0, 6), (4, "4", 0, 12), (7, "7", 0, 10), (11, "11", 0, 6),
    (12, "12", 0, 6), (13, "13", 0, 4), (37, "37", 0, 12), (38, "38", 0, 6), (39, "39", 0, 2),
    (41, "41", 0, 8), (42, "42", 0, 15), (48, "48", 3, 999), (49, "49", 0, 3), (64, "64", 0, 16),
)
_SECONDARY: tuple[tuple[int, str, int, int], ...] = ((90, "90", 0, 42), (128, "128", 0, 16))
_KNOWN = frozenset(key for _, key, _, _ in _PRIMARY + _SECONDARY) | {"t"}


def _mask(fields: tuple[tuple[int, str, int, int], ...], offset: int) -> int:
    return sum(1 << (64 - (number - offset)) for number, _, _, _ in fields)


#: Bitmap bits: 1 << (64 - n) is field n of a bitmap (bit 1 the most significant).
_PRIMARY_MASK = _mask(_PRIMARY, 0) | 1 << 63
_SECONDARY_MASK = _mask(_SECONDARY, 64)
_HEX = frozenset("0123456789ABCDEF")


def pack(doc: Mapping[str, str]) -> bytes | None:
    """``iso8583.encode(doc, default_ascii)``'s bytes, or ``None`` when ``doc`` is not a known shape."""
    if not _KNOWN.issuperset(doc):
        return None
    secondary_parts, secondary = _pack_fields(doc, _SECONDARY, 64)
    if secondary_parts is None:
        return None
    parts, primary = _pack_fields(doc, _PRIMARY, 0)
    if parts is None:
        return None
    head = [doc.get("t", ""), ""]
    if secondary:
        primary |= 1 << 63
        head.append(f"{secondary:016X}")
    if len(head[0]) != 4:
        return None
    head[1] = f"{primary:016X}"
    try:
        return "".join(head + parts + secondary_parts).encode("ascii")
    except UnicodeEncodeError:
        return None


def _pack_fields(doc: Mapping[str, str], fields: tuple[tuple[int, str, int, int], ...],
                 offset: int) -> tuple[list[str] | None, int]:
    parts: list[str] = []
    bits = 0
    for number, key, prefix, size in fields:
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return None, 0
        if prefix:
            if len(value) > size:
                return None, 0
            parts.append(f"{len(value):0{prefix}d}")
        elif len(value) != size:
            return None, 0
        parts.append(value)
        bits |= 1 << (64 - (number - offset))
    return parts, bits


def unpack(data: bytes) -> dict[str, str] | None:
    """``iso8583.decode(data, default_ascii)[0]``, or ``None`` when ``data`` is not a known shape."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    head = text[4:20]
    if len(head) != 16 or not _HEX.issuperset(head):
        return None
    primary = int(head, 16)
    if primary & ~_PRIMARY_MASK:
        return None
    doc = {"t": text[:4], "p": head}
    idx = 20
    secondary = 0
    if primary & 1 << 63:
        second = text[20:36]
        if len(second) != 16 or not _HEX.issuperset(second):
            return None
        secondary = int(second, 16)
        if secondary & ~_SECONDARY_MASK:
            return None
        doc["1"] = second
        idx = 36
    idx = _unpack_fields(text, idx, primary, _PRIMARY, 0, doc)
    if idx >= 0 and secondary:
        idx = _unpack_fields(text, idx, secondary, _SECONDARY, 64, doc)
    return doc if idx == len(text) else None


def _unpack_fields(text: str, idx: int, bitmap: int, fields: tuple[tuple[int, str, int, int], ...],
                   offset: int, doc: dict[str, str]) -> int:
    """Fields of one bitmap into ``doc``; the index after them, or -1 on anything unexpected."""
    for number, key, prefix, size in fields:
        if not bitmap & 1 << (64 - (number - offset)):
            continue
        if prefix:
            length = text[idx:idx + prefix]
            if len(length) != prefix or not length.isdigit():
                return -1
            idx += prefix
            size_here = int(length)
            if size_here > size:
                return -1
        else:
            size_here = size
        value = text[idx:idx + size_here]
        if len(value) != size_here:
            return -1
        doc[key] = value
        idx += size_here
    return idx

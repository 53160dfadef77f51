"""Wire dialects: which bytes a possim ``Message`` becomes, and how they are framed on a stream.

- ``iso`` (the default): possim's ASCII ISO 8583 (``protocol.codec``), 2-byte length framing.
  Its bytes are exactly those possim has always sent.
- ``cup``: a China UnionPay POS terminal's format (``protocol.cup``): binary bitmap and BCD
  numbers, framed as 2-byte length + 5-byte TPDU + 6-byte header (``framing.CupFraming``).
- ``iso-binary``: ``iso`` with each bitmap as 8 raw bytes instead of 16 hex characters (what many
  hosts and load tools send, e.g. iso8583sim's default ``ascii-binary``), 2-byte length framing.
  No possim terminal speaks it; an ``iso`` host reads it and answers in it (``answer_like``).

Everything that turns messages into bytes asks this registry, so a profile
(``protocol.profiles``) picks its dialect by name and the terminal, host and transports need
not know which it is.
Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from possim.protocol import codec, cup
from possim.protocol.framing import CupFraming, Framing, LengthFraming
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message

DEFAULT = "iso"


@dataclass(frozen=True, slots=True)
class Dialect:
    """One wire format: encode/decode with the ``protocol.codec`` contract, plus its stream framing.

    ``framing`` is the terminal side's; a host answers with ``host_framing`` (for CUP the TPDU
    addresses swapped). ``raw_fields`` splits a frame into its field strings before any of
    possim's rules (``ProtocolError`` if it does not split); ``readable_identity`` reads a frame's
    time and original from those where the dialect does not carry them in fields 7 and 90.
    """

    name: str
    encode: Callable[[Message, MacKey | None], bytes]
    decode: Callable[[bytes, codec.Keys | None], Message]
    peek_mti: Callable[[bytes], str]
    wire_fields: Callable[[bytes], dict[str, object]]
    framing: Framing = field(default_factory=LengthFraming)
    host_framing: Framing = field(default_factory=LengthFraming)
    raw_fields: Callable[[bytes], Mapping[str, object]] = codec.unpack
    readable_identity: Callable[[Mapping[str, str]], dict[str, object]] = lambda _fields: {}
    #: The MAC travels as hex text (16 characters); otherwise as 8 binary bytes.
    mac_is_hex: bool = True
    #: The transmission time travels in field 7; otherwise in fields 13 and 12 (CUP).
    sends_field_7: bool = True
    #: ``Message``'s fields are the frame's fields, number for number; otherwise a report shows
    #: the frame's own (``raw_fields``).
    model_is_wire: bool = True


def _iso_encode(msg: Message, key: MacKey | None = None) -> bytes:
    return codec.encode(msg, key)


def _iso_decode(data: bytes, keys: codec.Keys | None = None) -> Message:
    return codec.decode(data, keys, "iso")


DIALECTS: dict[str, Dialect] = {
    "iso": Dialect("iso", _iso_encode, _iso_decode, codec.peek_mti, codec.wire_fields),
    "cup": Dialect("cup", cup.encode, cup.decode, cup.peek_mti, cup.wire_fields,
                   CupFraming(), CupFraming().reply(), cup.decode_fields, cup.readable_identity,
                   mac_is_hex=False, sends_field_7=False, model_is_wire=False),
    "iso-binary": Dialect("iso-binary", codec.encode_binary, codec.decode_binary, codec.peek_mti, codec.wire_fields,
                          raw_fields=lambda data: codec.unpack(codec.hex_bitmaps(data))),
}


#: Dialects a host of a profile's dialect answers a request in when the request came in them: the
#: same fields in another bitmap form, which the sender reads and a host can write back as they came.
ANSWER_LIKE_REQUEST: dict[str, frozenset[str]] = {"iso": frozenset({"iso", "iso-binary"})}


def answer_like(own: str, request: str) -> str:
    """The dialect a host speaking ``own`` answers a request in ``request`` (a ``codec.dialect_of``
    name) with: the request's own when it is a form of ``own``, else ``own``."""
    return request if request in ANSWER_LIKE_REQUEST.get(own, frozenset()) else own


def get(name: str = DEFAULT) -> Dialect:
    """The dialect called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown wire dialect {name!r} (known: {', '.join(sorted(DIALECTS))})") from None


def encode(msg: Message, key: MacKey | None = None, dialect: str = DEFAULT) -> bytes:
    """``codec.encode`` in the named dialect."""
    return get(dialect).encode(msg, key)


def decode(data: bytes, keys: codec.Keys | None = None, dialect: str = DEFAULT) -> Message:
    """``codec.decode`` in the named dialect."""
    return get(dialect).decode(data, keys)

"""Wire dialects: which bytes a possim ``Message`` becomes, and how they are framed on a stream.

- ``iso`` (the default): possim's ASCII ISO 8583 (``protocol.codec``), 2-byte length framing.
  Its bytes are exactly those possim has always sent.
- ``cup``: a China UnionPay POS terminal's format (``protocol.cup``): binary bitmap and BCD
  numbers, framed as 2-byte length + 5-byte TPDU + 6-byte header (``framing.CupFraming``).
- ``iso-binary``: ``iso`` with each bitmap as 8 raw bytes instead of 16 hex characters (what many
  hosts and load tools send, e.g. iso8583sim's default ``ascii-binary``), 2-byte length framing.
  No possim terminal speaks it; an ``iso`` host reads it and answers in it (``for_answer``).

Everything that turns messages into bytes asks this registry, so a profile picks its dialect
by name (``get("cup")``) and the terminal, host and transports need not know which it is.
Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from possim.protocol import codec, cup
from possim.protocol.framing import CupFraming, Framing, LengthFraming
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message

DEFAULT = "iso"


@dataclass(frozen=True, slots=True)
class TerminalRules:
    """How a terminal of the dialect's family runs its day, where that differs between families.

    The ``iso`` values are possim's generic terminal; ``protocol.cup.TERMINAL_RULES`` what CUP
    terminals do (``docs/cup-wire.md``). A terminal asks these instead of naming its profile.
    """

    #: Messages carry a batch number (CUP 60.2) and the batch closes (the number advances) after
    #: each settlement; without, the batch is every approved sale the journal holds.
    batch_numbers: bool = False
    #: Reversal reason (field 39) once a try was refused (CUP: 98 becomes 06); None keeps it.
    reason_after_refusal: str | None = None
    #: Sales one batch upload packs (CUP: 8 in field 48, then a batch-end upload, no second 0500,
    #: and the upload runs even when the batch balanced); 0: one 0320 per sale named by field 90,
    #: only when out of balance, then the totals once more.
    sales_per_upload: int = 0
    #: Completion advices still owed or given up are tried once more before the settlement.
    trickles_advices: bool = False
    #: Answer codes that mean "sign on again" (CUP: 77, and A0 for a MAC the host could not check).
    sign_on_again: frozenset[str] = frozenset({"77"})


ISO_RULES = TerminalRules()


@dataclass(frozen=True, slots=True)
class Dialect:
    """One wire format: encode/decode with the ``protocol.codec`` contract, plus its stream framing.

    ``framing`` is the terminal side's; a host answers with ``host_framing`` (for CUP the TPDU
    addresses swapped).
    """

    name: str
    encode: Callable[[Message, MacKey | None], bytes]
    decode: Callable[[bytes, codec.Keys | None], Message]
    peek_mti: Callable[[bytes], str]
    wire_fields: Callable[[bytes], dict[str, object]]
    framing: Framing = field(default_factory=LengthFraming)
    host_framing: Framing = field(default_factory=LengthFraming)
    rules: TerminalRules = ISO_RULES


def _iso_encode(msg: Message, key: MacKey | None = None) -> bytes:
    return codec.encode(msg, key)


def _iso_decode(data: bytes, keys: codec.Keys | None = None) -> Message:
    return codec.decode(data, keys, "iso")


DIALECTS: dict[str, Dialect] = {
    "iso": Dialect("iso", _iso_encode, _iso_decode, codec.peek_mti, codec.wire_fields),
    "cup": Dialect("cup", cup.encode, cup.decode, cup.peek_mti, cup.wire_fields,
                   CupFraming(), CupFraming().reply(),
                   TerminalRules(batch_numbers=True, reason_after_refusal=cup.REASON_AFTER_REFUSAL,
                                 sales_per_upload=cup.SALES_PER_UPLOAD, trickles_advices=True,
                                 sign_on_again=cup.SIGN_ON_AGAIN_CODES)),
    "iso-binary": Dialect("iso-binary", codec.encode_binary, codec.decode_binary, codec.peek_mti, codec.wire_fields),
}


#: The dialect a terminal or host profile (``pos_sim.config.PROFILES``) speaks: a CUP terminal
#: sends CUP bytes; possim's generic ISO terminal the ASCII ones.
PROFILE_DIALECTS: dict[str, str] = {"iso": "iso", "cup": "cup"}


def for_profile(profile: str) -> str:
    """The dialect name of a profile; a profile with no dialect of its own speaks the default."""
    return PROFILE_DIALECTS.get(profile, DEFAULT)


#: Dialects a host of a profile's dialect answers a request in when the request came in them: the
#: same fields in another bitmap form, which the sender reads and a host can write back as they came.
ANSWER_LIKE_REQUEST: dict[str, frozenset[str]] = {"iso": frozenset({"iso", "iso-binary"})}


def for_answer(profile: str, request: str) -> str:
    """The dialect a host of ``profile`` answers a request in ``request`` (a ``codec.dialect_of``
    name) with: the request's own when it is a form of the profile's dialect, else the profile's."""
    own = for_profile(profile)
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

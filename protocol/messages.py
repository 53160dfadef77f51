"""Typed ISO 8583 messages: the values a terminal and a host exchange, before they become bytes.

Amounts are integers in minor units (cents); fields keep their ISO 8583 string forms
(STAN ``"000042"``, transmission time ``"MMDDhhmmss"``) because those strings are what
hosts match on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from operator import attrgetter

from possim.protocol import mti as M

#: The host's idempotency key of a financial request: terminal id, STAN, transmission time.
Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class OriginalData:
    """Field 90: which earlier message a reversal or status query refers to."""

    mti: str
    stan: str
    transmission: str

    def key(self, tid: str) -> Key:
        """The host's idempotency key of the original: terminal, STAN, transmission time."""
        return (tid, self.stan, self.transmission)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One ISO 8583 message; ``None`` means the field is absent from the bitmap."""

    mti: str
    stan: str
    transmission: str
    tid: str
    mid: str | None = None
    pan: str | None = None
    processing_code: str | None = None
    amount: int | None = None
    local_time: str | None = None
    local_date: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    response_code: str | None = None
    status: str | None = None
    currency: str | None = None
    original: OriginalData | None = None
    #: Field 48 of a settlement (0500/0510): the 62 digits of ``protocol.cup.BatchTotals``.
    batch_totals: str | None = None
    #: Field 60: the terminal's life number (6 digits), sent by a terminal that signed on
    #: (``pos_sim.config.TerminalConfig.life``): a new one each time it starts on a new journal.
    life: str | None = None
    #: CUP field 60.2: the batch number (6 digits) the terminal's sales belong to; it advances
    #: after each settlement. ``None`` under ``iso``, which has no batch number on the wire.
    batch: str | None = None
    #: CUP field 60.3 when it is not the one ``protocol.cup`` derives from the MTI: the batch-end
    #: upload's 207 (batch balanced) or 202 (out of balance).
    network_code: str | None = None
    #: CUP field 48 of a batch upload (0320/0330): the count and the packed sales
    #: (``protocol.cup.UploadedSale``), or the batch-end upload's count.
    uploads: str | None = None
    #: CUP field 62 of a sign-on answer (0810), as hex: the working keys (PIK, then MAK), each
    #: encrypted under the terminal master key and followed by its check value
    #: (``protocol.cup.WorkingKeys``). ``None`` under ``iso``.
    working_keys: str | None = None

    @property
    def name(self) -> str:
        return M.NAMES.get(self.mti, self.mti)

    def key(self) -> Key:
        """Idempotency key of this message: terminal id + STAN + transmission time."""
        return (self.tid, self.stan, self.transmission)

    def response(self, response_code: str, **fields: object) -> Message:
        """The response to this request: same keys echoed back, as hosts do (F2-F13, F41, F42, F49).

        What ``dataclasses.replace`` does, without its per-call walk over the fields (a host
        answers every request with one).
        """
        return _replaced(self, mti=M.response_to(self.mti), response_code=response_code, **fields)

    @property
    def approved(self) -> bool:
        return self.response_code == "00"


_FIELD_NAMES = tuple(f.name for f in dataclass_fields(Message))
_field_values = attrgetter(*_FIELD_NAMES)


def _slot_init() -> Callable[..., None]:
    """``Message.__init__`` as ``dataclass`` writes it (the same keyword-only parameters and
    defaults, every field set), storing each field through its slot instead of
    ``object.__setattr__`` looked up per field: every frame decoded, every request and every
    answer builds one, and this halves what that costs. The instance stays frozen."""
    params = ", ".join(f.name if f.default is MISSING else f"{f.name}={f.default!r}" for f in dataclass_fields(Message))
    body = "\n".join(f"        _set_{name}(self, {name})" for name in _FIELD_NAMES)
    setters = ", ".join(f"_set_{name}" for name in _FIELD_NAMES)
    source = f"def _make({setters}):\n    def __init__(self, *, {params}):\n{body}\n    return __init__\n"
    namespace: dict[str, object] = {}
    exec(source, namespace)  # noqa: S102 - the source is built from Message's own field names
    make: Callable[..., Callable[..., None]] = namespace["_make"]  # type: ignore[assignment]
    init = make(*(getattr(Message, name).__set__ for name in _FIELD_NAMES))
    init.__qualname__ = "Message.__init__"
    init.__doc__ = Message.__init__.__doc__
    return init


setattr(Message, "__init__", _slot_init())  # noqa: B010 - mypy keeps the dataclass signature


def _replaced(msg: Message, **changes: object) -> Message:
    values = dict(zip(_FIELD_NAMES, _field_values(msg), strict=True))
    values.update(changes)
    return Message(**values)

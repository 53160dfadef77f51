"""Host behaviours a scenario can switch on: latency, declines, outages, crashes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from possim.protocol.latency import Latency


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval of run time [start, end) in seconds."""

    start: float
    end: float

    def __contains__(self, now: float) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True, slots=True)
class CrashRule:
    """Crash after committing the ``nth`` request of ``mti``, before replying; back after ``down_for``."""

    mti: str
    nth: int = 1
    down_for: float = 60.0


@dataclass(frozen=True, slots=True)
class BehaviourRule:
    """A scenario's ``[[host.behaviours]]``: the behaviour (``acquirer_sim.magic.TABLE``) of every sale
    matching all the keys given (exact amount in minor units, terminal id, card number)."""

    behaviour: str
    amount: int | None = None
    tid: str | None = None
    pan: str | None = None

    def matches(self, tid: str, pan: str | None, amount: int | None) -> bool:
        return ((self.amount is None or self.amount == amount) and (self.tid is None or self.tid == tid)
                and (self.pan is None or self.pan == pan))


@dataclass(frozen=True, slots=True)
class HostConfig:
    """``processing`` is the issuer round trip of a financial request; ``quick`` answers
    reversals, advices and status queries, which the acquirer settles from its own ledger.
    ``reversal_answers`` refuses the first reversals received, one code each, crediting
    nothing (a refused reversal is not a reversal); later ones are handled normally."""

    processing: Latency = Latency(value=0.2)
    quick: Latency = Latency(value=0.05)
    decline_pans: frozenset[str] = frozenset()
    decline_over: int | None = None
    issuer_unavailable: tuple[Window, ...] = ()
    crash_after_commit: tuple[CrashRule, ...] = ()
    accounts: dict[str, int] = field(default_factory=dict)
    default_balance: int = 100_000_000
    reversal_answers: tuple[str, ...] = ()
    epoch: datetime = datetime(2026, 11, 25, 10, 0, 0)
    #: ``cup``: the debit is committed when the issuer answers (after ``processing``), a status
    #: query meanwhile answers IN_PROGRESS, a duplicate original is answered 94, and an issuer
    #: timeout (``issuer_timeouts``) is answered ``issuer_timeout_code`` with the host reversing
    #: towards the issuer itself. ``iso`` keeps the host that debits on arrival.
    profile: str = "iso"
    #: Per card number, the decline the issuer gives it: 05 do not honour, 13 invalid amount,
    #: 14 invalid card, 51 insufficient funds, 55 wrong PIN.
    decline_codes: dict[str, str] = field(default_factory=dict)
    #: Windows in which the issuer does not answer the acquirer (CUP profile).
    issuer_timeouts: tuple[Window, ...] = ()
    #: The answer to the terminal when the issuer timed out: 98 (no answer) or 68 (too late).
    issuer_timeout_code: str = "98"
    #: Behaviours by amount, terminal or card (``acquirer_sim.magic``); honoured by ``MagicHost``.
    behaviours: tuple[BehaviourRule, ...] = ()
    #: Per-card limits on the money the ledger holds as taken (approved sales and holds not
    #: reversed): a sale that would take a card past ``card_amount_limit`` (minor units) is
    #: answered 61 (exceeds withdrawal amount limit), one past ``card_count_limit`` sales 65
    #: (exceeds withdrawal frequency limit). A refused sale books nothing: nothing to reverse.
    card_amount_limit: int | None = None
    card_count_limit: int | None = None

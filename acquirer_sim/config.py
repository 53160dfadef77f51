"""Host behaviours a scenario can switch on: latency, declines, outages, crashes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from protocol.latency import Latency


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

"""Monitoring: which terminals an acquirer's operations desk should look at, from recorded facts.

The acquirer FAQ tells a merchant to watch for tills that time out again and again and for
sales charged without a sale (单边账): both mean a bad line, a bad host route or a terminal
that needs attention before customers complain. An alert names a terminal whose count of
response timeouts (``ResponseTimeout`` events of the trace) or of orphaned debits (the
checker's findings) reaches a threshold. Both counts are read after the fact: nothing here
looks at, or shares code with, the terminal's recovery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from possim.protocol.events import Event, ResponseTimeout

#: What each alert counts, in the order views show them.
MEASURES = ("timeouts", "orphaned_debits")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """An alert when a terminal's count reaches its threshold: a few timeouts are a busy line,
    more are a broken one; one orphaned debit is already a customer charged without a sale."""

    timeouts: int = 3
    orphaned_debits: int = 1

    def of(self, measure: str) -> int:
        return int(getattr(self, measure))


@dataclass(frozen=True, slots=True)
class Alert:
    tid: str
    measure: str
    count: int
    threshold: int

    def as_dict(self) -> dict[str, Any]:
        return {"terminal": self.tid, "measure": self.measure, "count": self.count, "threshold": self.threshold}


class TimeoutTally:
    """Counts ``ResponseTimeout`` events per terminal as they are recorded: an emit to chain
    in front of a trace (or of nothing), so a fleet run without a trace still has the fact."""

    __slots__ = ("counts", "then")

    def __init__(self, then: Any = None) -> None:
        self.counts: Counter[str] = Counter()
        self.then = then

    def __call__(self, event: Event) -> None:
        if type(event) is ResponseTimeout:
            self.counts[event.tid] += 1
        if self.then is not None:
            self.then(event)


def timeouts_per_terminal(events: Iterable[Event]) -> Counter[str]:
    """The response timeouts of each terminal in a list of recorded events."""
    return Counter(e.tid for e in events if type(e) is ResponseTimeout)


def alerts(timeouts: Mapping[str, int], per_terminal: Mapping[str, Mapping[str, int]],
           thresholds: Thresholds | None = None) -> list[Alert]:
    """Every terminal over a threshold, worst first: ``per_terminal`` is the checker's counts."""
    thresholds = thresholds or Thresholds()
    counts = {"timeouts": timeouts,
              "orphaned_debits": {tid: c.get("orphaned_debits", 0) for tid, c in per_terminal.items()}}
    found = [Alert(tid, m, n, thresholds.of(m)) for m in MEASURES for tid, n in counts[m].items()
             if n >= thresholds.of(m)]
    return sorted(found, key=lambda a: (-MEASURES.index(a.measure), -a.count, a.tid))


def terminals(found: Iterable[Alert]) -> list[str]:
    """The terminal ids named by ``found``, each once, in order."""
    return list(dict.fromkeys(a.tid for a in found))

"""The card schedules ``possim fuzz`` draws: the space of ``pos_sim.testing.schedules(forgeries=True)``
in about half the Hypothesis choices, each made directly on the choice sequence.

Why: generation was half of every fuzzed example, and its cost grows with the number of
choices and the strategy layers (tuples, maps, samples) around each. Here each payment,
rule or outage is one span of plain integer draws: fields that belong together are one
draw over their combinations, ordered simplest first (a purchase on the default card, no
retry; drop the 1st 0210 to the terminal), and a field is drawn only where it means
something (a completion share for authorizations, a delay for delay and duplicate rules,
outages only when their gate opens, a query count for forged queries). Shrinking still
reaches a minimal schedule: lists shrink element by element, every draw shrinks to its
simplest value, and a closed gate removes a whole outage in one step.

The dictionaries are the ones ``pos_sim.testing`` builds, so a schedule found here is
written out and replayed exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

try:
    from hypothesis.internal.conjecture.data import ConjectureData
    from hypothesis.internal.conjecture.utils import many

    _IMPORTED = True
except ImportError:  # another Hypothesis: card_schedules falls back to the public strategy
    _IMPORTED = False
from hypothesis.strategies import SearchStrategy

from possim.pos_sim.testing import CARDS, MAX_OUTAGE, RULE_TARGETS, _schedule, _transactions

T = TypeVar("T")

#: (kind, card, customer pays again after a failure), simplest first: a purchase on the card with plenty.
TXN_SHAPES: tuple[tuple[str, str, bool], ...] = tuple(
    (kind, pan, retries) for kind in ("purchase", "auth") for pan in sorted(CARDS) for retries in (False, True))
#: (action, direction, MTI, nth), simplest first: drop the 1st 0210 on its way to the terminal.
RULE_SHAPES: tuple[tuple[str, str, str, int], ...] = tuple(
    (*target, nth) for target in RULE_TARGETS for nth in (1, 2, 3))
#: (kind, target sale, how it is signed) of a forgery.
FORGERY_SHAPES: tuple[tuple[str, int, str], ...] = tuple(
    (kind, target, mac) for kind in ("reversal", "approval", "query") for target in (1, 2, 3)
    for mac in ("wrong", "none"))
PARTITION_DIRECTIONS = ("both", "to_host", "to_terminal")
_OUTAGE = int(MAX_OUTAGE)
#: Span labels (any fixed integers): one per kind of gated outage, so the shrinker sees them apart.
_GATE_LABEL = 0x7F5E_0001


def _average(min_size: int, max_size: int) -> float:
    """The average list length ``st.lists`` aims at, so lists are as long as the public strategy's."""
    return min(max(min_size * 2, min_size + 5), 0.5 * (min_size + max_size))


def _list(data: ConjectureData, min_size: int, max_size: int, element: Callable[[ConjectureData], T]) -> list[T]:
    """A list drawn as ``st.lists`` draws one (one span per element), of plain elements."""
    with many(data, min_size, max_size, _average(min_size, max_size)) as elements:
        return [element(data) for _ in elements]


def _pick(data: ConjectureData, choices: tuple[T, ...]) -> T:
    return choices[data.draw_integer(0, len(choices) - 1)]


def _transaction(data: ConjectureData) -> tuple[str, int, str, int, bool, int]:
    kind, pan, retries = _pick(data, TXN_SHAPES)
    cents = data.draw_integer(1, 200_00)
    gap = data.draw_integer(0, 300)
    share = data.draw_integer(1, 100) if kind == "auth" else 100
    return kind, cents, pan, gap, retries, share


def _rule(data: ConjectureData) -> dict[str, Any]:
    action, direction, mti, nth = _pick(data, RULE_SHAPES)
    rule: dict[str, Any] = {"action": action, "direction": direction, "mti": mti, "nth": nth}
    if action != "drop":
        rule["delay"] = float(data.draw_integer(0, _OUTAGE))
    return rule


def _partition(data: ConjectureData) -> dict[str, Any]:
    start, length = data.draw_integer(0, 600), data.draw_integer(1, _OUTAGE)
    return {"start": float(start), "end": float(start + length), "direction": _pick(data, PARTITION_DIRECTIONS)}


def _crash(data: ConjectureData) -> dict[str, Any]:
    mti, nth = _pick(data, (("0200", 1), ("0200", 2), ("0200", 3), ("0100", 1), ("0100", 2), ("0100", 3)))
    return {"mti": mti, "nth": nth, "down_for": float(data.draw_integer(1, _OUTAGE))}


def _power_loss(data: ConjectureData) -> dict[str, Any]:
    return {"at": float(data.draw_integer(0, 600)), "down_for": float(data.draw_integer(1, _OUTAGE))}


def _forgery(data: ConjectureData) -> dict[str, Any]:
    at = data.draw_integer(0, 600)
    kind, target, mac = _pick(data, FORGERY_SHAPES)
    count = data.draw_integer(1, 5) if kind == "query" else 1
    return {"at": float(at), "kind": kind, "target": target, "mac": mac, "count": count}


def _sometimes(data: ConjectureData, threshold: int, max_size: int,
               element: Callable[[ConjectureData], dict[str, Any]]) -> list[dict[str, Any]]:
    """Outages in a share of schedules only: a gate drawn from 0-9 must reach ``threshold``
    (``pos_sim.testing._sometimes``); a closed gate draws nothing more."""
    data.start_span(_GATE_LABEL + threshold)
    try:
        return _list(data, 0, max_size, element) if data.draw_integer(0, 9) >= threshold else []
    finally:
        data.stop_span()


class CardSchedules(SearchStrategy[dict[str, Any]]):
    """Card payments with targeted faults, outages and forgeries, as ``possim fuzz`` draws them."""

    def __init__(self, max_transactions: int = 5, min_transactions: int = 1, max_rules: int = 6) -> None:
        super().__init__()
        self.max_transactions, self.min_transactions, self.max_rules = max_transactions, min_transactions, max_rules

    def do_draw(self, data: ConjectureData) -> dict[str, Any]:
        # The draw order of ``pos_sim.testing.schedules``: shrinking empties earlier lists first.
        txns = _list(data, self.min_transactions, self.max_transactions, _transaction)
        partitions = _sometimes(data, 6, 2, _partition)
        crashes = _sometimes(data, 7, 1, _crash)
        powers = _sometimes(data, 8, 1, _power_loss)
        rules = _list(data, 0, self.max_rules, _rule)
        forged = _sometimes(data, 6, 3, _forgery)
        return _schedule((_transactions(txns), partitions, crashes, powers, rules, forged))

    def __repr__(self) -> str:
        return f"CardSchedules(max_transactions={self.max_transactions}, min_transactions={self.min_transactions})"


#: The choice-sequence methods this module uses; Hypothesis keeps them internal, so they are
#: checked once rather than trusted: another Hypothesis may rename them.
_NEEDED = ("draw_integer", "start_span", "stop_span")


def compact_available() -> bool:
    """Whether the installed Hypothesis has the internals the compact strategy draws with."""
    return _IMPORTED and all(callable(getattr(ConjectureData, name, None)) for name in _NEEDED)


def card_schedules(max_transactions: int = 5, min_transactions: int = 1) -> SearchStrategy[dict[str, Any]]:
    """What ``possim fuzz`` draws without ``--wallet``: the compact strategy, or the public one
    (``pos_sim.testing.schedules``, same space, more draws) when Hypothesis's internals moved."""
    if compact_available():
        return CardSchedules(max_transactions, min_transactions)
    from possim.pos_sim.testing import schedules

    return schedules(max_transactions=max_transactions, min_transactions=min_transactions, forgeries=True)

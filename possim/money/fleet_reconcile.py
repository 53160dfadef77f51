"""End-of-day reconciliation (对账) of a fleet: every terminal's batch against the settlement of
the host shard that owns it, priced with its group's fees; the fleet is the sum of the parts.

Why per group and shard: a group may have its own merchant category (a fuel pump pays another
rate than a till), and a host shard settles only the terminals whose ids hash to it. So each
(group, shard) pair is reconciled by :func:`possim.judging.reconcile.reconcile` on its own terminals,
and the whole fleet, each group and each terminal are read from those parts. Like the
single-terminal reconciliation it reads recorded facts only: the journals and the ledgers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from possim.fleets.fleet import Fleet, FleetResult, group_name, simulate_fleet
from possim.judging.reconcile import Reconciliation, combine, reconcile
from possim.money.statement import ZERO
from possim.scenario import Scenario

#: The one kind of mismatch that moves no money (a reversal whose original never counted).
NO_MONEY = "reversal_without_original"


@dataclass(frozen=True, slots=True)
class TerminalMoney:
    """What one terminal leaves unreconciled: its mismatches and the money on each side."""

    tid: str
    group: str
    mismatches: int
    customer_charged_without_sale: Decimal
    merchant_goods_given_away: Decimal

    @property
    def at_stake(self) -> Decimal:
        return self.customer_charged_without_sale + self.merchant_goods_given_away


@dataclass
class FleetReconciliation:
    """The whole fleet's reconciliation, each group's, and the terminals that do not balance."""

    whole: Reconciliation
    groups: dict[str, Reconciliation]
    result: FleetResult
    group_of: dict[str, str] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.whole.balanced

    def terminals(self) -> list[TerminalMoney]:
        """Every terminal with a mismatch that moves money, the most money unreconciled first."""
        count: dict[str, int] = defaultdict(int)
        charged: dict[str, Decimal] = defaultdict(lambda: ZERO)
        given: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for m in self.whole.mismatches:
            if m.kind == NO_MONEY:
                continue  # listed in the fleet's mismatches; moves no money, as in Reconciliation.balanced
            count[m.tid] += 1
            if m.kind == "orphaned_debit":
                charged[m.tid] += m.host_amount
            elif m.kind == "phantom_approval":
                given[m.tid] += m.terminal_amount
        lines = [TerminalMoney(tid, self.group_of.get(tid, ""), n, charged[tid], given[tid])
                 for tid, n in count.items()]
        return sorted(lines, key=lambda t: (-t.at_stake, -t.mismatches, t.tid))

    def as_dict(self) -> dict[str, Any]:
        return {"balanced": self.balanced, "terminals": len(self.result.terminals), "hosts": self.result.hosts,
                "policy": self.result.policy, "seed": self.result.seed, "fleet": self.whole.as_dict(),
                "groups": {name: _totals(rec) for name, rec in self.groups.items()},
                "terminals_not_balanced": {t.tid: _terminal(t) for t in self.terminals()},
                "reversals_without_original": self.reversals_without_original}

    @property
    def reversals_without_original(self) -> int:
        return sum(1 for m in self.whole.mismatches if m.kind == NO_MONEY)


def _terminal(t: TerminalMoney) -> dict[str, Any]:
    return {"group": t.group, "mismatches": t.mismatches,
            "customer_charged_without_sale": str(t.customer_charged_without_sale),
            "merchant_goods_given_away": str(t.merchant_goods_given_away)}


def _totals(rec: Reconciliation) -> dict[str, Any]:
    """A part's totals without its per-sale lines (those are in the fleet's)."""
    return {k: v for k, v in rec.as_dict().items() if k not in ("lines", "mismatches")} | {
        "mismatches": len(rec.mismatches)}


def reconcile_fleet(scenario: Scenario, policy: str | None = None, seed: int | None = None) -> FleetReconciliation:
    """Run the fleet in memory, then reconcile each group on each host shard, and sum them."""
    parts: dict[int, list[Reconciliation]] = defaultdict(list)
    group_of: dict[str, str] = {}

    def read(fleet: Fleet) -> None:
        journals = fleet.journals
        for index, group in enumerate(scenario.model.terminals):
            fees = scenario.fee_schedule(group.category)
            for shard_index, shard in enumerate(fleet.hosts):
                tids = [m.tid for m in fleet.members.values() if m.seat.group == index and m.shard == shard_index]
                if tids:
                    parts[index].append(reconcile(journals, shard.ledger.conn, fees, tids))
                group_of.update((tid, group_name(scenario, index)) for tid in tids)

    result = simulate_fleet(scenario, policy, seed, before_close=read)
    groups = {group_name(scenario, index): combine(recs) for index, recs in sorted(parts.items())}
    whole = combine([rec for _, recs in sorted(parts.items()) for rec in recs])
    return FleetReconciliation(whole, groups, result, group_of)

"""A fleet's end of day: each group on each host shard reconciled with its own fees, summed honestly."""

from __future__ import annotations

import copy
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from possim.fleets import fleet_view
from possim.fleets.fleet import simulate_fleet
from possim.i18n import Tr
from possim.money.fleet_reconcile import reconcile_fleet
from possim.scenario import from_dict
from tests.fleets.test_fleet import SMALL
from tests.test_cli import possim


def _small(**group_changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SMALL)
    data["terminals"][1].update(group_changes)
    return data


def test_the_money_nobody_reconciles_is_the_money_the_checker_puts_at_risk() -> None:
    """Two independent readings of the same facts: the checker's verdict and the batch/settlement match."""
    sc = from_dict(_small())
    rec = reconcile_fleet(sc, "none")
    checked = simulate_fleet(sc, "none")
    at_risk = {line.tid for line in checked.terminals if line.at_risk}
    assert at_risk and {t.tid for t in rec.terminals()} == at_risk
    assert not rec.balanced
    assert rec.whole.customer_charged_without_sale == Decimal(checked.verdict.summary()["customer_loss"])
    assert sum((t.customer_charged_without_sale for t in rec.terminals()), Decimal(0)) == \
        rec.whole.customer_charged_without_sale
    assert rec.whole.settled_total - rec.whole.batch_total == rec.whole.customer_charged_without_sale \
        - rec.whole.merchant_goods_given_away


def test_the_fleet_is_the_sum_of_its_groups_and_each_group_pays_its_own_rate() -> None:
    sc = from_dict(_small(category="fuel"))
    rec = reconcile_fleet(sc, "reversal")
    assert rec.balanced and not rec.terminals()
    assert set(rec.groups) == {"tills", "kiosks"}
    assert rec.whole.batch_count == sum(g.batch_count for g in rec.groups.values())
    assert rec.whole.fees_total == sum((g.fees_total for g in rec.groups.values()), Decimal(0))
    tills, kiosks = sc.fee_schedule(None), sc.fee_schedule("fuel")
    for name, fees in (("tills", tills), ("kiosks", kiosks)):
        lines = rec.groups[name].lines
        assert lines and all(fees.fee(line.amount, line.instrument)[0] == line.fee for line in lines)
    assert {line.tid[:4] for line in rec.groups["kiosks"].lines} == {"KIOS"}
    assert tills.fee(Decimal("10.00"), "credit") != kiosks.fee(Decimal("10.00"), "credit")


def test_reconcile_of_a_fleet_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(_toml(_small()), encoding="utf-8")
    bad = possim("reconcile", str(path), "--policy", "none", "--json")
    assert bad.returncode == 1, bad.stderr
    got = json.loads(bad.stdout)
    assert got["balanced"] is False and got["terminals"] == 25 and got["terminals_not_balanced"]
    assert set(got["groups"]) == {"tills", "kiosks"}
    good = possim("reconcile", str(path), "--policy", "reversal")
    assert good.returncode == 0 and "every terminal balances" in good.stdout, good.stdout + good.stderr


def test_the_fleet_reconciliation_speaks_chinese() -> None:
    Tr.missing.clear()
    out = io.StringIO()
    sc = from_dict(_small())
    for policy in ("none", "reversal"):
        fleet_view.reconciliation(Console(file=out, width=160), reconcile_fleet(sc, policy), Tr("zh"))
    assert sorted(m for _, m in Tr.missing) == []
    assert "对账" in out.getvalue() or "不平" in out.getvalue()


def _toml(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)


def test_every_part_counts_in_the_fleet_even_groups_without_a_name() -> None:
    """Unnamed groups get distinct display names; the fleet is summed from every (group, shard) part."""
    data = _small()
    for group in data["terminals"]:
        group.pop("name", None)
    rec = reconcile_fleet(from_dict(data), "none")
    assert len(rec.groups) == 2
    assert rec.whole.batch_count == sum(g.batch_count for g in rec.groups.values())
    assert rec.whole.settled_count == sum(g.settled_count for g in rec.groups.values())
    assert rec.whole.settled_count >= len(rec.result.terminals)

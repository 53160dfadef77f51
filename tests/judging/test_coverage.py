"""Coverage rows for forgeries and MAC failures; the fuzz table lists the groups a batch draws;
the public strategy draws wallet payments and forgeries only when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings

from possim.fuzzing.fuzz import fuzz
from possim.judging.coverage import FORGERY, GROUPS, SITUATIONS, labels, situations
from possim.pos_sim.testing import schedules
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests.conftest import ROOT, SCENARIOS


def _seen(name: str, mac: bool = True, **extra: Any) -> set[str]:
    raw = load(SCENARIOS / f"{name}.toml").raw()
    raw = {**raw, "mac": mac, **extra}
    return situations(simulate(from_dict(raw), "reversal").trace.records)


def test_a_forged_reversal_is_refused_with_macs_and_moves_money_without() -> None:
    signed = _seen("forged-reversal")
    assert {"forged reversal refused", "MAC failure at the host (answered 63)"} <= signed
    assert "forged reversal accepted: money moved back" not in signed
    unsigned = _seen("forged-reversal", mac=False)
    assert "forged reversal accepted: money moved back" in unsigned
    assert "forged reversal refused" not in unsigned


def test_a_forged_approval_is_ignored_with_macs_and_shown_without() -> None:
    signed = _seen("forged-approval")
    assert {"forged approval ignored", "MAC failure at the terminal (answer refused)"} <= signed
    assert "forged approval accepted: goods left unpaid" not in signed
    unsigned = _seen("forged-approval", mac=False)
    assert "forged approval accepted: goods left unpaid" in unsigned
    assert "forged approval ignored" not in unsigned


def test_forged_queries_are_refused() -> None:
    queries = [{"at": 1.0, "kind": "query", "target": 2, "mac": "none", "count": 3}]
    transactions = [{"at": 0.0, "amount": "10.00"}, {"at": 30.0, "amount": "12.00"}]
    seen = _seen("forged-reversal", forgeries=queries, transactions=transactions)
    assert "forged query refused" in seen
    assert "forged query answered" not in seen


def test_honest_runs_show_no_forgery_situation() -> None:
    seen = situations(simulate(load(SCENARIOS / "reversal-lost.toml"), "reversal").trace.records)
    assert seen and not seen & set(labels(["forgery"]))


def test_every_situation_has_a_group_and_a_unique_label() -> None:
    assert {s.group for s in SITUATIONS} == set(GROUPS)
    assert len({s.label for s in SITUATIONS}) == len(SITUATIONS)
    assert all(s.group == "forgery" for s in FORGERY)


def test_card_fuzz_reaches_forgery_situations_and_says_so() -> None:
    found = fuzz("reversal", 120, 0)
    assert found.schedule is None
    assert found.groups == ("card", "forgery")
    assert found.coverage["forged reversal refused"] > 0
    assert found.coverage["MAC failure at the host (answered 63)"] > 0
    assert fuzz("none", 5, 0, wallet=True).groups == ("card", "wallet", "forgery")


def _fuzz_table(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "possim", "fuzz", *args], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300, check=False)
    return out.stdout


def test_the_fuzz_table_lists_the_groups_drawn(tmp_path: Path) -> None:
    cards = _fuzz_table("--policy", "reversal", "--examples", "30", "--out", str(tmp_path / "a.toml"))
    assert "forged reversal refused" in cards and "MAC failure at the host" in cards
    assert "wallet pay answer lost" not in cards
    wallet = _fuzz_table("--policy", "reversal", "--wallet", "--examples", "30", "--out", str(tmp_path / "b.toml"))
    assert "wallet pay answer lost" in wallet and "customer still paying" in wallet
    assert "forged wallet cancel or refund refused (40002)" in wallet and "forged reversal refused" in wallet
    assert "forgeries injected: " in wallet and "forgeries injected: " in cards


@settings(max_examples=60)
@given(schedules(max_transactions=3))
def test_the_default_strategy_draws_neither_wallets_nor_forgeries(schedule: dict[str, Any]) -> None:
    assert schedule["forgeries"] == []
    assert all(t.get("card_type") != "qr_wallet" for t in schedule["transactions"])


def _drawn(strategy: Any, n: int = 80) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    @settings(max_examples=n, database=None)
    @given(strategy)
    def collect(schedule: dict[str, Any]) -> None:
        out.append(schedule)

    collect()
    return out


def test_the_switches_put_wallet_payments_and_forgeries_in_the_mix() -> None:
    forged = _drawn(schedules(max_transactions=3, forgeries=True))
    assert any(s["forgeries"] for s in forged)
    wallet = _drawn(schedules(max_transactions=3, wallet=True))
    assert all(any(t.get("card_type") == "qr_wallet" for t in s["transactions"]) for s in wallet)
    assert all(s["forgeries"] == [] for s in wallet)
    both = _drawn(schedules(wallet=True, forgeries=True))
    assert any(s["forgeries"] for s in both)
    for s in both[:10]:
        from_dict(s)


@settings(max_examples=25, deadline=None)
@given(schedules(max_transactions=3, wallet=True, forgeries=True))
def test_the_readme_property_holds_with_wallets_and_forgeries(schedule: dict[str, Any]) -> None:
    verdict = simulate(from_dict(schedule), "reversal").verdict
    assert verdict.counts["orphaned_debits"] == 0
    assert verdict.counts["double_debits"] == 0
    assert verdict.counts["phantom_approvals"] == 0


def _by_definition(records: Any) -> set[str]:
    events = [r.event for r in records]
    return {s.label for s in SITUATIONS if s.seen(events)}


def test_the_one_pass_tally_sees_what_each_definition_sees_on_shipped_scenarios() -> None:
    """``situations`` dispatches on event classes in one pass; it must agree with every
    situation's own definition, including the forged approval the terminal accepted."""
    runs = [load(path) for path in sorted(SCENARIOS.glob("*.toml"))]
    runs.append(from_dict({**load(SCENARIOS / "forged-approval.toml").raw(), "mac": False}))
    reached: set[str] = set()
    for scenario in runs:
        if scenario.is_fleet:
            continue
        records = simulate(scenario, "reversal").trace.records
        seen = situations(records)
        assert seen == _by_definition(records), scenario
        reached |= seen
    assert "forged approval accepted: goods left unpaid" in reached and len(reached) > 20


@settings(max_examples=40, deadline=None)
@given(schedules(max_transactions=3, wallet=True, forgeries=True))
def test_the_one_pass_tally_agrees_with_the_definitions_on_generated_runs(schedule: dict[str, Any]) -> None:
    for mac in (True, False):
        records = simulate(from_dict({**schedule, "mac": mac}), "none").trace.records
        assert situations(records) == _by_definition(records)

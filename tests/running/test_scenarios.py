"""Every shipped scenario under every policy: its [expect] holds, and recovery leaves no damage."""

from __future__ import annotations

import pytest

from possim.judging.expect import failed_expectations
from possim.pos_sim.config import POLICIES
from possim.scenario import load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

#: One-terminal scenarios; fleets ([[terminals]]) are judged in tests/fleets/test_fleet.py.
FILES = [p for p in sorted(SCENARIOS.glob("*.toml")) + sorted(SCENARIOS.glob("regressions/*.toml"))
         if not load(p).is_fleet]
REQUIRED = {"response-lost", "request-lost", "slow-host", "reversal-lost", "host-crash-after-debit",
            "duplicate-request", "reversal-overtakes-original", "confirmation-lost", "flaky-network",
            "customer-retries", "terminal-power-loss"}


def test_the_required_scenarios_ship() -> None:
    assert {f.stem for f in FILES} >= REQUIRED


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_expectations_hold(path: object, policy: str) -> None:
    scenario = load(path)  # type: ignore[arg-type]
    result = simulate(scenario, policy)
    assert result.quiescent
    assert failed_expectations(scenario.model.expect, policy, result.verdict.summary()) == []


@pytest.mark.parametrize("policy", ["reversal", "query-then-reversal"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_recovery_policies_leave_no_orphan_double_or_phantom(path: object, policy: str) -> None:
    s = simulate(load(path), policy).verdict.summary()  # type: ignore[arg-type]
    assert (s["orphaned_debits"], s["double_debits"], s["phantom_approvals"], s["pending_reversals"]) == (0, 0, 0, 0)


def test_response_lost_without_recovery_loses_the_customers_money() -> None:
    s = simulate(load(SCENARIOS / "response-lost.toml"), "none").verdict.summary()
    assert s["orphaned_debits"] == 1 and s["customer_loss"] == "25.00" and s["unknown"] == 1


def test_every_scenario_explains_itself() -> None:
    for path in FILES:
        text = load(path).model.description.strip()
        assert len(text.split()) >= 30, f"{path.name}: the description should be a real paragraph"


def test_flaky_network_differs_by_seed_and_repeats_by_seed() -> None:
    scenario = load(SCENARIOS / "flaky-network.toml")
    a, b, c = (simulate(scenario, "reversal", seed).trace.lines() for seed in (7, 7, 8))
    assert a == b
    assert a != c

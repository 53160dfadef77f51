"""A scenario's [expect]: flat keys for every policy, a sub-table only where a policy differs."""

from __future__ import annotations

from typing import Any

import pytest

from possim.judging.expect import expectations_for, failed_expectations, validate_expect
from possim.pos_sim.policies import POLICY_NAMES
from possim.scenario import ScenarioError, from_dict
from possim.simulation import simulate

RESPONSE_LOST: dict[str, Any] = {
    "title": "The approval is lost",
    "description": "The 0210 is dropped on its way back to the terminal.",
    "faults": [{"action": "drop", "direction": "to_terminal", "mti": "0210", "nth": 1}],
    "transactions": [{"amount": "25.00"}],
}


@pytest.mark.parametrize("policy", POLICY_NAMES[1:])
def test_a_policy_without_its_own_table_is_held_to_the_flat_keys_only(policy: str) -> None:
    expect = {"double_debits": 0, POLICY_NAMES[0]: {"orphaned_debits": 1}}
    assert expectations_for(expect, policy) == {"double_debits": 0}
    assert expectations_for(expect, POLICY_NAMES[0]) == {"double_debits": 0, "orphaned_debits": 1}


def test_a_flat_key_binds_a_policy_that_has_no_table() -> None:
    expect = {"orphaned_debits": 0, "none": {"orphaned_debits": 1}}
    assert failed_expectations(expect, "reversal", {"orphaned_debits": 1}) == \
        ["orphaned_debits: expected 0, got 1"]
    assert failed_expectations(expect, "none", {"orphaned_debits": 1}) == []


def test_a_scenario_naming_one_policy_runs_under_every_policy() -> None:
    """Only 'none' has a table: the others are judged by the flat keys, and they hold."""
    scenario = from_dict({**RESPONSE_LOST, "expect": {"double_debits": 0, "phantom_approvals": 0,
                                                      "none": {"orphaned_debits": 1, "customer_loss": "25.00"}}})
    for policy in POLICY_NAMES:
        summary = simulate(scenario, policy).verdict.summary()
        assert failed_expectations(scenario.model.expect, policy, summary) == [], policy
    assert simulate(scenario, "reversal").verdict.summary()["orphaned_debits"] == 0


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_registered_policy_may_have_a_table(policy: str) -> None:
    validate_expect({policy: {"orphaned_debits": 0}})


@pytest.mark.parametrize(("expect", "fragment"), [
    ({"hope": 1}, "unknown expectation 'hope'"),
    ({"reversal": {"hope": 1}}, "unknown expectation 'reversal.hope'"),
    ({"reversal": {"none": {"orphaned_debits": 1}}}, "unknown expectation 'reversal.none'"),
    ({"reversal": 1}, "expect.reversal must be a table"),
    ({"reversal": {"orphaned_debits": "lots"}}, "expect.reversal.orphaned_debits: 'lots'"),
])
def test_bad_expectations_are_one_clear_line(expect: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_expect(expect)
    assert fragment in str(caught.value)
    with pytest.raises(ScenarioError) as bad:
        from_dict({**RESPONSE_LOST, "expect": expect})
    assert "\n" not in str(bad.value) and "expect" in str(bad.value)

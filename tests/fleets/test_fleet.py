"""Fleet scenarios: many terminals judged one by one and as a whole, host shards, the shipped chain."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tomli_w

from possim.fleets.fleet import Fleet, Starts, simulate_fleet
from possim.judging.expect import failed_expectations
from possim.protocol.shards import request_filter, request_topic, shard_of
from possim.scenario import ScenarioError, from_dict, load
from possim.simulation import horizon, simulate
from tests.conftest import SCENARIOS
from tests.test_cli import possim

SMALL: dict[str, Any] = {
    "title": "small fleet", "description": "two groups of terminals on a lossy link", "seed": 3, "hosts": 2,
    "network": {"to_terminal": {"loss": 0.2}},
    "transactions": [{"amount": "10.00", "count": 3, "every": 60}],
    "terminals": [
        {"name": "tills", "count": 20, "tid": "SHOP{n:04d}", "spread": 30},
        {"name": "kiosks", "count": 5, "tid": "KIOS{n:04d}", "policy": "reversal",
         "transactions": [{"amount": "5.00", "count": 2, "every": 100}]},
    ],
}


def test_every_terminal_has_its_own_schedule_and_the_totals_add_up() -> None:
    result = simulate_fleet(from_dict(SMALL))
    assert result.quiescent
    assert len(result.terminals) == 25
    assert result.verdict.counts["transactions"] == 20 * 3 + 5 * 2
    per = {line.tid: line for line in result.terminals}
    assert per["SHOP0001"].counts["transactions"] == 3 and per["KIOS0005"].counts["transactions"] == 2
    for key in ("approved", "unknown", "reversed", "orphaned_debits"):
        assert sum(line.counts.get(key, 0) for line in result.terminals) == result.verdict.counts[key]
    assert result.money_at_risk == result.verdict.customer_loss + result.verdict.merchant_loss


def test_groups_keep_their_policy_and_the_worst_terminals_lose_money() -> None:
    result = simulate_fleet(from_dict(SMALL))
    assert result.policy == "mixed"
    policies = result.by_policy()
    assert policies["none"]["orphaned_debits"] >= 1
    assert policies["reversal"]["orphaned_debits"] == 0
    worst = result.worst()
    assert worst and all(line.policy == "none" and line.at_risk > 0 for line in worst)
    assert [line.at_risk for line in worst] == sorted((line.at_risk for line in worst), reverse=True)


def test_a_policy_given_replaces_every_groups_and_recovers_the_whole_fleet() -> None:
    result = simulate_fleet(from_dict(SMALL), "reversal")
    assert result.policy == "reversal"
    assert result.verdict.settled and result.money_at_risk == 0 and result.worst() == []


def test_a_fleet_run_repeats_by_seed() -> None:
    a, b = (simulate_fleet(from_dict(SMALL)).summary() for _ in range(2))
    assert a == b
    assert simulate_fleet(from_dict(SMALL), seed=4).summary() != a


def test_terminals_are_spread_over_host_shards_by_a_fixed_mapping() -> None:
    result = simulate_fleet(from_dict(SMALL))
    shards = set(result.shard_of.values())
    assert shards == {0, 1}
    assert all(result.shard_of[tid] == shard_of(tid, 2) for tid in result.shard_of)
    assert shard_of("SHOP0001", 2) == shard_of("SHOP0001", 2) and shard_of("X", 1) == 0
    tid = "SHOP0001"
    assert request_topic(tid, 2) == f"possim/v1/shard/{shard_of(tid, 2)}/term/{tid}/req"
    assert request_filter(1, 2) == "possim/v1/shard/1/term/+/req"
    assert request_topic(tid, 1) == f"possim/v1/term/{tid}/req"


def test_the_trace_is_kept_only_when_asked_for_and_then_complete() -> None:
    assert simulate_fleet(from_dict(SMALL)).trace is None
    traced = simulate_fleet(from_dict(SMALL), trace=True)
    assert traced.trace is not None
    sent = [s for s in traced.trace.records if s.event.NAME == "payment_requested"]
    assert len(sent) == traced.verdict.counts["transactions"]


def test_a_fleet_without_a_trace_reaches_the_same_verdict_as_with_one() -> None:
    """Untraced drivers skip describing messages; what they do and what is journaled stays the same."""
    bare, traced = simulate_fleet(from_dict(SMALL)), simulate_fleet(from_dict(SMALL), trace=True)
    assert bare.verdict.summary() == traced.verdict.summary()
    assert bare.verdict.findings == traced.verdict.findings
    assert [(line.tid, dict(line.counts)) for line in bare.terminals] == \
        [(line.tid, dict(line.counts)) for line in traced.terminals]
    assert bare.verdict.counts["transactions"] > bare.verdict.counts["approved"] > 0  # the loss did something


def test_the_horizon_follows_the_latest_terminal() -> None:
    data = json.loads(json.dumps(SMALL))
    data["terminals"][0]["spread"] = 50_000
    assert horizon(from_dict(data)) >= 50_000 + 120


@pytest.mark.parametrize(("change", "message"), [
    ({"tid": "SHOP{n:05d}"}, "8 printable characters"),
    ({"tid": "SHOP"}, "needs {n}"),
    ({"tid": "S/{n:06d}"}, "without + # /"),
    ({"count": 0}, "greater than or equal to 1"),
    ({"name": "kiosks"}, "two groups are named 'kiosks'"),
])
def test_bad_groups_are_refused_in_one_line(change: dict[str, Any], message: str) -> None:
    data = json.loads(json.dumps(SMALL))
    data["terminals"][0].update(change)
    with pytest.raises(ScenarioError, match="terminals") as err:
        from_dict(data)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_two_groups_may_not_share_a_terminal_id() -> None:
    data = json.loads(json.dumps(SMALL))
    data["terminals"][1]["tid"] = "SHOP{n:04d}"
    with pytest.raises(ScenarioError, match="two groups"):
        from_dict(data)


def test_a_fleet_is_never_run_as_its_one_terminal() -> None:
    with pytest.raises(ScenarioError, match="fleet"):
        simulate(from_dict(SMALL))


def test_a_scenario_without_groups_is_the_one_terminal_of_before() -> None:
    sc = load(SCENARIOS / "response-lost.toml")
    assert not sc.is_fleet and sc.model.hosts == 1


@pytest.mark.parametrize("policy", ["none", "reversal", "query-then-reversal"])
def test_the_merchant_chain_meets_its_expectations(policy: str) -> None:
    sc = load(SCENARIOS / "merchant-chain.toml")
    result = simulate_fleet(sc, policy)
    assert result.quiescent and len(result.terminals) == 500 and result.hosts == 2
    assert failed_expectations(sc.model.expect, policy, result.verdict.summary()) == []
    assert (result.money_at_risk > 0) == (policy == "none")


def test_run_prints_the_fleet_summary_and_one_terminals_timeline(tmp_path: Any) -> None:
    toml = tmp_path / "small.toml"
    toml.write_text(tomli_w.dumps(SMALL))
    report = tmp_path / "r.html"
    out = possim("run", str(toml), "--terminal", "SHOP0002", "--report", str(report))
    assert out.returncode == 0, out.stderr
    assert "whole fleet" in out.stdout and "worst terminals" in out.stdout and "terminal SHOP0002" in out.stdout
    assert "SHOP0003 " not in out.stdout.split("terminal SHOP0002")[1]
    page = report.read_text()
    assert "every terminal (25)" in page and "terminal SHOP0002" in page
    js = json.loads(possim("run", str(toml), "--json").stdout)
    assert js["terminals"] == 25 and set(js["fleet"]["terminals"]) >= {"SHOP0001", "KIOS0005"}
    assert js["fleet"]["terminals"]["KIOS0001"]["policy"] == "reversal"
    bad = possim("run", str(toml), "--terminal", "NOPE0001")
    assert bad.returncode == 2 and "no such terminal" in bad.stderr
    bad = possim("run", str(toml), "--transport", "tcp")
    assert bad.returncode == 2 and "possim load" in bad.stderr


def test_an_untraced_fleet_describes_no_message_yet_marks_what_a_traced_one_does() -> None:
    described: list[str] = []
    seen: list[Any] = []

    def before_close(fleet: Fleet) -> None:
        seen.extend(m.driver for m in fleet.members.values())
        described.extend(type(d).__name__ for d in seen if d.tracing)
        described.extend("host" for shard in fleet.hosts if shard.driver is not None and shard.driver.tracing)

    untraced = simulate_fleet(from_dict(SMALL), before_close=before_close)
    traced = simulate_fleet(from_dict(SMALL), trace=True)
    assert len(seen) == 25 and described == []
    assert untraced.marks.timeouts and untraced.marks.timeouts == traced.marks.timeouts
    assert untraced.marks.started == traced.marks.started
    assert len(untraced.marks.started) == untraced.verdict.counts["transactions"]
    assert untraced.fleet_json() == traced.fleet_json() and untraced.summary() == traced.summary()


def test_sale_starts_are_a_mapping_of_transaction_ids_kept_in_an_array() -> None:
    starts = Starts()
    starts[7], starts[2], starts[5000] = 1.5, 0.0, 42.0
    assert len(starts) == 3 and list(starts) == [2, 7, 5000]
    assert starts == {2: 0.0, 7: 1.5, 5000: 42.0} and starts[7] == 1.5
    assert 3 not in starts and "7" not in starts and None not in starts and 10**9 not in starts
    del starts[7]
    assert dict(starts) == {2: 0.0, 5000: 42.0}
    with pytest.raises(KeyError):
        starts[7]
    with pytest.raises(KeyError):
        starts[-1] = 1.0

"""The policy recipe: a new recovery policy is one class and one registry line, in the test alone.

``query-twice-then-reversal`` asks the host twice for a sale of unknown fate and reverses it when
neither query is answered. It is defined here, registered for the test only (``REGISTRY.added``),
and run through the command line in-process: ``possim run`` accepts it by name, the trace shows
its queries and its reversal, and ``possim compare`` lists it beside the shipped policies.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

import tomli_w
from click.testing import CliRunner

import possim.cli
from possim.pos_sim.policies import REGISTRY, QueryThenReversalPolicy
from tests.conftest import SCENARIOS

TOY = "query-twice-then-reversal"


class QueryTwiceThenReversal(QueryThenReversalPolicy):
    """Query; when two queries go unanswered, reverse (the reversal record is armed before the sale)."""

    name = TOY

    def queries_allowed(self, configured: int) -> int:
        return 2


def _sent(trace: Path) -> Counter[str]:
    """How many requests of each MTI the run sent (host answers included), from the trace."""
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return Counter(e["mti"] for e in events if e["event"] == "msg_sent")


def _queries_unanswered(tmp_path: Path) -> Path:
    """response-lost, with the answers to the first two status queries lost as well."""
    doc = tomllib.loads((SCENARIOS / "response-lost.toml").read_text())
    doc["faults"] += [{"action": "drop", "direction": "to_terminal", "mti": "0610", "nth": n} for n in (1, 2)]
    doc["expect"] = {"orphaned_debits": 0, "double_debits": 0, "reversed": 1}
    path = tmp_path / "queries-unanswered.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_a_policy_defined_in_a_test_runs_through_the_cli(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with REGISTRY.added(QueryTwiceThenReversal()):
        out = CliRunner().invoke(possim.cli.cli, ["run", str(_queries_unanswered(tmp_path)), "--policy", TOY,
                                                  "--json", "--trace", str(trace)])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["policy"] == TOY
    assert (summary["reversed"], summary["orphaned_debits"], summary["pending_reversals"]) == (1, 0, 0)
    assert summary["quiescent"] and summary["expectations_failed"] == []
    sent = _sent(trace)
    assert (sent["0600"], sent["0400"]) == (2, 1)  # asked twice, then reversed once


def test_on_the_shipped_scenario_the_first_answer_settles_the_sale(tmp_path: Path) -> None:
    """Where the query is answered (response-lost as shipped) the toy policy finds the approval."""
    trace = tmp_path / "trace.jsonl"
    with REGISTRY.added(QueryTwiceThenReversal()):
        out = CliRunner().invoke(possim.cli.cli, ["run", "response-lost", "--policy", TOY, "--json",
                                                  "--trace", str(trace)])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert (summary["approved"], summary["reversed"], summary["orphaned_debits"]) == (1, 0, 0)
    sent = _sent(trace)
    assert (sent["0600"], sent["0400"]) == (1, 0)


def test_compare_lists_a_registered_policy_and_forgets_it_afterwards() -> None:
    """Five policies do not fit 80 columns in one table: the view shows them in two, names whole."""
    with REGISTRY.added(QueryTwiceThenReversal()):
        shown = CliRunner().invoke(possim.cli.cli, ["compare", "response-lost", "--no-timelines"],
                                   env={"COLUMNS": "80"})
        compared = CliRunner().invoke(possim.cli.cli, ["compare", "response-lost", "--no-timelines", "--json"])
    assert shown.exit_code == 0, shown.output
    assert all(name in shown.stdout for name in (*REGISTRY.names(), TOY))  # every name whole, none cut
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    assert compared.exit_code == 0, compared.output
    assert set(json.loads(compared.stdout)["policies"]) == {*REGISTRY.names(), TOY}
    refused = CliRunner().invoke(possim.cli.cli, ["run", "response-lost", "--policy", TOY, "--json"])
    assert refused.exit_code == 2 and TOY in refused.output

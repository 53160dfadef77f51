"""The in-memory run: its horizon follows the schedule, so nothing is cut off silently."""

from __future__ import annotations

from possim.scenario import from_dict
from possim.simulation import HORIZON, horizon, simulate


def test_a_schedule_longer_than_a_week_runs_to_its_end() -> None:
    # 200 sales an hour apart span 199 hours: more than the week a fixed horizon allowed.
    scenario = from_dict({"title": "t", "description": "d",
                          "transactions": [{"amount": "1.00", "count": 200, "every": 3600}]})
    assert horizon(scenario) == 199 * 3600 + HORIZON
    result = simulate(scenario, "reversal")
    assert result.quiescent
    assert result.verdict.counts["transactions"] == 200
    assert result.verdict.counts["approved"] == 200

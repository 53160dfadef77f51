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


def test_a_run_pauses_the_cyclic_collector_and_restores_it() -> None:
    import gc

    import pytest

    from possim.running.virtual_clock import run_uncollected

    assert gc.isenabled()
    with run_uncollected():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), run_uncollected():
        raise RuntimeError("a run that fails")
    assert gc.isenabled()
    gc.disable()
    try:
        with run_uncollected():
            pass
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()

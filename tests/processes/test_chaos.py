"""Chaos, shorter: terminal, acquirer and broker processes SIGKILLed at random lose no money.

The full run is ``make chaos`` (20 terminals, 20/20/10 kills); this one keeps the suite
short on 2 cores while still killing each kind of process with a real SIGKILL.
"""

from __future__ import annotations

from pathlib import Path

from possim.processes.chaos import ChaosPlan, run_chaos


def test_a_small_fleet_killed_at_random_ends_with_no_lost_money(tmp_path: Path) -> None:
    plan = ChaosPlan(terminals=4, acquirer_kills=3, terminal_kills=3, broker_kills=2, sales=6, seed=3)
    report = run_chaos(tmp_path, plan)
    assert report.kills == {"acquirer": 3, "terminal": 3, "broker": 2}
    s = report.summary
    assert s["transactions"] == 4 * 6
    assert s["approved"] + s["reversed"] + s["declined"] + s["failed"] == s["transactions"]
    assert (s["orphaned_debits"], s["double_debits"], s["phantom_approvals"], s["pending_reversals"]) == (0, 0, 0, 0)
    assert report.clean and s["settled"]

"""Monitoring alerts: terminals whose timeouts (from the recorded events) or orphaned debits (the
checker's findings) reach a threshold, in the fleet report and in ``possim load``."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from possim.fleets import fleet_view
from possim.fleets.alerts import Thresholds, alerts, timeouts_per_terminal
from possim.fleets.fleet import simulate_fleet
from possim.fleets.load import LoadPlan, run_load
from possim.scenario import ScenarioError, from_dict
from tests.fleets.test_fleet import SMALL


def test_a_terminal_is_named_when_its_count_reaches_the_threshold() -> None:
    per_terminal = {"A": {"orphaned_debits": 1}, "B": {"orphaned_debits": 0}, "C": {}}
    found = alerts({"A": 2, "B": 3, "C": 5}, per_terminal, Thresholds(timeouts=3, orphaned_debits=1))
    assert [(a.tid, a.measure, a.count) for a in found] == [("A", "orphaned_debits", 1), ("C", "timeouts", 5),
                                                            ("B", "timeouts", 3)]
    assert alerts({"A": 2}, per_terminal, Thresholds(timeouts=3, orphaned_debits=2)) == []


def test_the_fleet_counts_timeouts_as_its_trace_records_them() -> None:
    sc = from_dict(SMALL)
    quiet, traced = simulate_fleet(sc, "none"), simulate_fleet(sc, "none", trace=True)
    assert traced.trace is not None
    from_trace = timeouts_per_terminal(r.event for r in traced.trace.records)
    assert quiet.timeouts == dict(from_trace) and sum(from_trace.values()) > 0


def test_fleet_alerts_are_the_checkers_orphans_and_the_scenarios_thresholds() -> None:
    # each group its own policy: the kiosks reverse, so one of them times out without an orphan
    result = simulate_fleet(from_dict({**SMALL, "monitoring": {"timeouts": 2, "orphaned_debits": 1}}))
    named = {(a.tid, a.measure) for a in result.alerts()}
    orphaned = {tid for tid, c in result.verdict.per_terminal.items() if c.get("orphaned_debits", 0) >= 1}
    timed_out = {tid for tid, n in result.timeouts.items() if n >= 2}
    assert orphaned and timed_out - orphaned
    assert named == {(t, "orphaned_debits") for t in orphaned} | {(t, "timeouts") for t in timed_out}
    assert result.fleet_json()["alerts"][0]["measure"] == "orphaned_debits"
    strict = simulate_fleet(from_dict({**SMALL, "monitoring": {"timeouts": 1000, "orphaned_debits": 1000}}), "none")
    assert strict.alerts() == []


def test_the_fleet_views_show_the_alerts() -> None:
    result = simulate_fleet(from_dict(SMALL), "none")
    out = io.StringIO()
    fleet_view.summary(Console(file=out, width=160), result)
    first = result.alerts()[0]
    assert f"terminal {first.tid}: {first.count} orphaned debits (threshold 1)" in out.getvalue()
    page = fleet_view.render([result], "t")
    assert "monitoring alerts" in page and f"terminal {first.tid}:" in page


def test_a_bad_threshold_names_its_key() -> None:
    with pytest.raises(ScenarioError, match=r"monitoring\.timeouts"):
        from_dict({**SMALL, "monitoring": {"timeouts": 0}})


def test_load_names_the_terminals_over_threshold() -> None:
    plan = LoadPlan(terminals=6, rate=30, duration=1, policy="none", loss=0.3, timeout=0.3, seed=2,
                    thresholds=Thresholds(timeouts=2, orphaned_debits=1))
    report = asyncio.run(run_load(plan))
    d: dict[str, Any] = report.as_dict()
    orphaned = {tid for tid, c in report.verdict.per_terminal.items() if c.get("orphaned_debits", 0)}
    timed_out = {tid for tid, n in report.timeouts_per_terminal.items() if n >= 2}
    assert sum(report.timeouts_per_terminal.values()) == d["timeouts"] > 0
    assert set(d["alert_terminals"]) == orphaned | timed_out != set()
    assert d["alert_thresholds"] == {"timeouts": 2, "orphaned_debits": 1}


def test_load_cli_prints_the_alert_line(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "possim", "load", "--terminals", "4", "--rate", "20", "--duration", "1",
            "--loss", "0.4", "--timeout", "0.3", "--policy", "none", "--alert-orphans", "1"]
    done = subprocess.run([*args, "--json"], capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path)
    d = json.loads(done.stdout)
    text = subprocess.run([*args, "--no-progress"], capture_output=True, text=True, check=False, timeout=120,
                          cwd=tmp_path).stdout
    assert d["alert_terminals"]
    assert "monitoring: " + str(len(d["alert_terminals"])) + " terminal(s) over a threshold" in text
    bad = subprocess.run([*args, "--alert-timeouts", "0"], capture_output=True, text=True, check=False, timeout=120)
    assert bad.returncode == 2 and "--alert-timeouts" in bad.stderr

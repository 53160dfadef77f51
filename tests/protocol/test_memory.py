"""Memory per purchase: a run keeps what it needs, not every purchase's objects; a long trace goes to its file.

The bounds are counts of bytes (tracemalloc) compared between N and 2N purchases in one
process, never times: what a purchase adds is the difference, whatever the imports cost.
They are generous (several times today's figures) so that only a structural regression,
such as every purchase's trace events kept again, crosses them. SQLite's own pages (the
in-memory journals and ledgers) are outside tracemalloc and not counted here.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from possim.fleets.fleet import simulate_fleet
from possim.running.rig import Rig
from possim.running.virtual_clock import VirtualClock
from possim.scenario import Scenario, from_dict, load
from possim.simulation import simulate
from tests.conftest import SCENARIOS
from tests.fleets.test_fleet import SMALL
from tests.test_cli import possim


def _purchases(count: int, terminals: int = 0) -> Scenario:
    """``count`` purchases of 10.00 per terminal on a perfect link; ``terminals``: as a fleet of that many."""
    base = load(SCENARIOS / "response-lost.toml").model.model_dump()
    link = {"latency": {"value": 0.0}}
    base.update(network={"to_host": link, "to_terminal": link}, host={"processing": {"value": 0.0}}, faults=[],
                partitions=[], power_losses=[], transactions=[{"amount": "10.00", "count": count, "every": 60}])
    base.pop("expect", None)
    if terminals:
        base.pop("terminal", None)
        base["terminals"] = [{"name": "tills", "count": terminals, "tid": "T{n:07d}", "spread": 60}]
    return from_dict(base)


def _traced(run: Callable[[], Any]) -> tuple[int, int]:
    """Bytes still held once ``run``'s result is returned (the result kept alive), and the peak on the way."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = run()
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return held - base, peak - base


def _per_purchase(run: Callable[[int], Any], n: int) -> tuple[float, float]:
    """What each purchase adds, held and at the peak: the run of 2n purchases against the run of n."""
    run(n // 5)  # imports and caches loaded before anything is counted
    held_n, peak_n = _traced(lambda: run(n))
    held_2n, peak_2n = _traced(lambda: run(2 * n))
    return (held_2n - held_n) / n, (peak_2n - peak_n) / n


def test_a_fleet_without_a_trace_holds_nothing_per_purchase_once_judged() -> None:
    held, peak = _per_purchase(lambda n: simulate_fleet(_purchases(n // 10, terminals=10), "reversal"), 200)
    assert held < 1024, f"{held:.0f} bytes held per purchase"  # about 100 today
    assert peak < 12 * 1024, f"{peak:.0f} bytes per purchase at the peak"  # about 2,600 today: the checker's reading


def test_a_streamed_trace_is_not_held_in_memory(tmp_path: Path) -> None:
    held, _ = _per_purchase(lambda n: simulate(_purchases(n), "reversal", trace_to=tmp_path / f"{n}.jsonl"), 100)
    kept, _ = _per_purchase(lambda n: simulate(_purchases(n), "reversal"), 100)
    # Kept, the trace's eight events a purchase come to about 2,600 bytes on top of the rest (about 200:
    # the reconciliation's lines, which share their amounts, fees and rules); streamed, none of them stay.
    assert held < 1024, f"{held:.0f} bytes held per purchase with a streamed trace"
    assert kept - held > 1024, f"kept {kept:.0f} against streamed {held:.0f} bytes per purchase"


def test_a_run_without_a_trace_holds_under_a_kibibyte_per_purchase_and_counts_its_events() -> None:
    held, peak = _per_purchase(lambda n: simulate(_purchases(n), "reversal", trace=False), 100)
    assert held < 1024, f"{held:.0f} bytes held per purchase without a trace"  # about 200 today: fee lines
    # At the peak: the terminal's unsettled batch, the checker's one entry per ledger key and the
    # reconciliation's reading, about 2,400 today; the checker once read every row into lists (+1,000).
    assert peak < 3 * 1024, f"{peak:.0f} bytes per purchase at the peak"
    counted, kept = simulate(_purchases(20), "reversal", trace=False), simulate(_purchases(20), "reversal")
    assert counted.trace.counted and not counted.trace.records
    assert counted.summary() == kept.summary() and counted.reconciliation == kept.reconciliation
    for name in ("msg_sent", "txn_outcome", "run_finished"):
        assert counted.trace.count(name) == kept.trace.count(name) > 0


def test_the_rig_holds_one_payment_of_each_series_on_the_clock_at_a_time() -> None:
    base = _purchases(1000).model.model_dump()
    base["transactions"] = [{"amount": "10.00", "count": 1000, "every": 60},
                            {"amount": "20.00", "count": 500, "at": 30, "every": 60}]
    clock = VirtualClock()
    rig = Rig(from_dict(base), "reversal", 7, clock)
    rig.memory()
    rig.schedule_payments()
    assert clock.waiting == 2 and rig.scheduled_work == 1500
    assert clock.run()
    assert rig.finish(True, "memory").verdict.counts["approved"] == 1500


def test_a_streamed_trace_is_the_kept_trace_byte_for_byte(tmp_path: Path) -> None:
    scenario = load(SCENARIOS / "flaky-network.toml")
    kept = simulate(scenario)
    kept.trace.write(tmp_path / "kept.jsonl")
    streamed = simulate(scenario, trace_to=tmp_path / "streamed.jsonl")
    assert (tmp_path / "streamed.jsonl").read_bytes() == (tmp_path / "kept.jsonl").read_bytes()
    assert streamed.summary() == kept.summary()
    assert streamed.trace.streamed and not streamed.trace.records
    assert streamed.trace.count("msg_sent") == kept.trace.count("msg_sent") > 0


def test_a_fleet_streams_its_trace_with_the_same_verdict_and_marks(tmp_path: Path) -> None:
    scenario = from_dict(SMALL)
    kept = simulate_fleet(scenario, trace=True)
    assert kept.trace is not None
    kept.trace.write(tmp_path / "kept.jsonl")
    streamed = simulate_fleet(scenario, trace_to=tmp_path / "streamed.jsonl")
    assert (tmp_path / "streamed.jsonl").read_bytes() == (tmp_path / "kept.jsonl").read_bytes()
    assert streamed.summary() == kept.summary() and streamed.fleet_json() == kept.fleet_json()
    assert streamed.marks.started.keys() == kept.marks.started.keys()
    assert len(streamed.marks.timeouts) == len(kept.marks.timeouts) > 0


def test_possim_run_json_streams_the_trace_file(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    out = possim("run", str(SCENARIOS / "flaky-network.toml"), "--json", "--trace", str(trace))
    assert out.returncode in (0, 1), out.stderr
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["event"] == "run_started" and json.loads(lines[-1])["event"] == "run_finished"
    assert lines == simulate(load(SCENARIOS / "flaky-network.toml")).trace.lines()


def test_a_lean_run_holds_under_a_kibibyte_per_purchase_with_the_same_verdict(tmp_path: Path) -> None:
    def lean(n: int) -> Any:
        return simulate(_purchases(n), "reversal", trace_to=tmp_path / f"{n}.jsonl", reconciled=False)

    held, peak = _per_purchase(lean, 100)
    assert peak < 2.5 * 1024, f"{peak:.0f} bytes per purchase at the peak"  # about 1,700 today
    assert held < 1024, f"{held:.0f} bytes held per purchase without a kept trace or reconciliation"
    full, quick = simulate(_purchases(20), "reversal"), lean(20)
    assert quick.reconciliation is None and full.reconciliation is not None
    assert quick.summary() == full.summary()

"""One long in-memory run in its own process: seconds and peak resident memory, as JSON on stdout.

``bigrun.py fleet TERMINALS SALES``: a ``[[terminals]]`` fleet, each terminal paying ``SALES``
times (``possim.fleets.fleet.simulate_fleet``, trace off as ``possim run`` has it for fleets).
``bigrun.py one SALES``: that many purchases of one terminal (``simulate``, full trace).
``bigrun.py retained SALES``: that many purchases of one terminal without a trace (a one-terminal
fleet), and the memory the finished run still holds: resident set after the run, its result still
referenced and garbage collected, minus the resident set before it (after a warm-up run, so that
imports and first-use caches are not counted), per purchase.

Peak memory is the process's ``ru_maxrss``: each run has a process of its own. A fleet's
``cpu_seconds`` (the process's CPU time over the run) beside its wall ``seconds`` tells a run
slowed by a busy machine from a slow run.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import purchases

from possim.scenario import from_dict


def _fleet_scenario(terminals: int, sales: int) -> Any:
    data = purchases(sales, every=60.0).model.model_dump()
    data.pop("terminal", None)
    data["terminals"] = [{"name": "tills", "count": terminals, "tid": "T{n:07d}", "spread": 60}]
    return from_dict(data)


def resident_bytes() -> int:
    """The process's resident set now (Linux: /proc/self/statm), not its peak."""
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def retained(sales: int) -> dict[str, Any]:
    from possim.fleets.fleet import simulate_fleet

    simulate_fleet(_fleet_scenario(1, 20), "reversal")  # warm-up: imports, caches, first allocations
    scenario = _fleet_scenario(1, sales)
    gc.collect()
    before = resident_bytes()
    start = time.perf_counter()
    result = simulate_fleet(scenario, "reversal")
    seconds = time.perf_counter() - start
    gc.collect()
    held = resident_bytes() - before
    assert result.quiescent and result.verdict.counts["approved"] == sales, result.verdict.summary()
    return {"seconds": seconds, "purchases": sales, "trace_records": 0, "retained_bytes": held,
            "retained_bytes_per_purchase": held / sales}


def fleet(terminals: int, sales: int) -> dict[str, Any]:
    from possim.fleets.fleet import simulate_fleet

    scenario = _fleet_scenario(terminals, sales)
    start, cpu = time.perf_counter(), time.process_time()
    result = simulate_fleet(scenario, "reversal")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    approved = result.verdict.counts["approved"]
    assert result.quiescent and approved == terminals * sales, result.verdict.summary()
    return {"seconds": seconds, "cpu_seconds": cpu, "purchases": approved, "trace_records": 0}


def one(count: int) -> dict[str, Any]:
    from possim.simulation import simulate

    start = time.perf_counter()
    result = simulate(purchases(count, every=5.0), "reversal")
    seconds = time.perf_counter() - start
    assert result.quiescent and result.verdict.counts["approved"] == count, result.verdict.summary()
    return {"seconds": seconds, "purchases": count, "trace_records": len(result.trace.records)}


def main() -> None:
    mode, sizes = sys.argv[1], [int(a) for a in sys.argv[2:]]
    got = {"fleet": fleet, "one": one, "retained": retained}[mode](*sizes)
    got["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    got["purchases_per_s"] = got["purchases"] / got["seconds"]
    print(json.dumps(got))


if __name__ == "__main__":
    main()

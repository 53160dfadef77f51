"""One long in-memory run in its own process: seconds and peak resident memory, as JSON on stdout.

``bigrun.py fleet TERMINALS SALES``: a ``[[terminals]]`` fleet, each terminal paying ``SALES``
times (``possim.fleets.fleet.simulate_fleet``, trace off as ``possim run`` has it for fleets).
``bigrun.py one SALES``: that many purchases of one terminal with the trace written to a file as the
run goes, as ``possim run NAME --json --trace FILE`` runs it (``simulate(trace_to=...)``, no
end-of-day reconciliation kept).
``bigrun.py retained SALES [reconciled]``: that many purchases of one terminal without a trace
(``simulate(trace=False)``, as ``possim run NAME --json`` runs it: only the verdict kept, or with
``reconciled`` the end-of-day reconciliation too), and the memory the finished run still holds:
resident set after the run, its result still referenced and garbage collected, minus the resident
set before it (after a warm-up run, so that imports and first-use caches are not counted), per purchase.

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
import tempfile
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


def retained(sales: int, reconciled: bool = False) -> dict[str, Any]:
    from possim.simulation import simulate

    simulate(purchases(20, every=5.0), "reversal", trace=False)  # warm-up: imports, caches, first allocations
    scenario = purchases(sales, every=5.0)
    gc.collect()
    before = resident_bytes()
    start = time.perf_counter()
    result = simulate(scenario, "reversal", trace=False, reconciled=reconciled)
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

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.jsonl"
        start = time.perf_counter()
        result = simulate(purchases(count, every=5.0), "reversal", trace_to=path, reconciled=False)
        seconds = time.perf_counter() - start
        with path.open("rb") as f:
            lines = sum(1 for _ in f)
        size = path.stat().st_size
    assert result.quiescent and result.verdict.counts["approved"] == count, result.verdict.summary()
    return {"seconds": seconds, "purchases": count, "trace_records": lines, "trace_bytes": size}


def main() -> None:
    mode, sizes = sys.argv[1], [int(a) for a in sys.argv[2:] if a.isdigit()]
    if mode == "retained":
        got = retained(sizes[0], reconciled="reconciled" in sys.argv[2:])
    else:
        got = {"fleet": fleet, "one": one}[mode](*sizes)
    got["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    got["purchases_per_s"] = got["purchases"] / got["seconds"]
    print(json.dumps(got))


if __name__ == "__main__":
    main()

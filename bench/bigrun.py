"""One long in-memory run in its own process: seconds and peak resident memory, as JSON on stdout.

``bigrun.py fleet TERMINALS SALES``: a ``[[terminals]]`` fleet, each terminal paying ``SALES``
times (``possim.fleet.simulate_fleet``, trace off as ``possim run`` has it for fleets).
``bigrun.py one SALES``: that many purchases of one terminal (``simulate``, full trace).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import purchases

from possim.scenario import from_dict


def fleet(terminals: int, sales: int) -> dict[str, Any]:
    from possim.fleet import simulate_fleet

    data = purchases(sales, every=60.0).model.model_dump()
    data.pop("terminal", None)
    data["terminals"] = [{"name": "tills", "count": terminals, "tid": "T{n:07d}", "spread": 60}]
    scenario = from_dict(data)
    start = time.perf_counter()
    result = simulate_fleet(scenario, "reversal")
    seconds = time.perf_counter() - start
    approved = result.verdict.counts["approved"]
    assert result.quiescent and approved == terminals * sales, result.verdict.summary()
    return {"seconds": seconds, "purchases": approved, "trace_records": 0}


def one(count: int) -> dict[str, Any]:
    from possim.simulation import simulate

    start = time.perf_counter()
    result = simulate(purchases(count, every=5.0), "reversal")
    seconds = time.perf_counter() - start
    assert result.quiescent and result.verdict.counts["approved"] == count, result.verdict.summary()
    return {"seconds": seconds, "purchases": count, "trace_records": len(result.trace.records)}


def main() -> None:
    got = fleet(int(sys.argv[2]), int(sys.argv[3])) if sys.argv[1] == "fleet" else one(int(sys.argv[2]))
    got["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    got["purchases_per_s"] = got["purchases"] / got["seconds"]
    print(json.dumps(got))


if __name__ == "__main__":
    main()

"""One long in-memory run in its own process: seconds and peak resident memory, as JSON on stdout."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import purchases

from possim.simulation import simulate


def main() -> None:
    count = int(sys.argv[1])
    scenario = purchases(count, every=5.0)
    start = time.perf_counter()
    result = simulate(scenario, "reversal")
    seconds = time.perf_counter() - start
    assert result.quiescent and result.verdict.counts["approved"] == count, result.verdict.summary()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "max_rss_mib": peak, "purchases_per_s": count / seconds,
                      "trace_records": len(result.trace.records)}))


if __name__ == "__main__":
    main()

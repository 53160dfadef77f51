"""possim benchmarks: figures, and ratios against baselines measured in the same run.

Run with ``make bench``. Nothing here is a pass/fail test; goals are printed next to figures.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from possim.scenario import from_dict, load  # noqa: E402
from possim.simulation import simulate  # noqa: E402
from protocol import codec  # noqa: E402
from protocol.messages import Message  # noqa: E402


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    flaky = load(ROOT / "scenarios" / "flaky-network.toml")
    quiet = from_dict({**flaky.model.model_dump(), "network": {}, "host": {}})
    t_flaky = best_of(lambda: simulate(flaky, "reversal"))
    t_quiet = best_of(lambda: simulate(quiet, "reversal"))
    print(f"flaky-network, 200 transactions, policy reversal: {t_flaky * 1000:8.1f} ms wall (goal < 2000 ms)")
    print(f"  baseline, same 200 transactions on a perfect link: {t_quiet * 1000:8.1f} ms  "
          f"-> faults cost x{t_flaky / t_quiet:.2f}")
    virtual = simulate(flaky, "reversal").end_time
    print(f"  virtual time simulated: {virtual:,.0f} s -> {virtual / t_flaky:,.0f}x faster than real time")

    msg = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001", mid="MERCHANT0000001",
                  pan="4000000000000002", processing_code="000000", amount=2500, currency="978")
    n = 5000
    t_codec = best_of(lambda: [codec.decode(codec.encode(msg)) for _ in range(n)], 3)
    print(f"ISO 8583 encode+decode (pyiso8583): {n / t_codec:,.0f} per s")
    small = load(ROOT / "scenarios" / "response-lost.toml")
    runs = 300
    t_small = best_of(lambda: [simulate(small, "reversal") for _ in range(runs)], 3)
    print(f"response-lost runs per second (one core): {runs / t_small:,.0f}")
    bench_drivers()
    bench_fuzz()


def bench_drivers() -> None:
    """Why the in-memory mode uses a discrete-event loop: the same runs on asyncio + looptime."""
    from drivers import simulate_on_looptime

    for name, reps in (("response-lost", 200), ("flaky-network", 3)):
        sc = load(ROOT / "scenarios" / f"{name}.toml")
        heap = simulate(sc, "reversal").verdict.summary()
        loop = simulate_on_looptime(sc, "reversal").verdict.summary()
        same = all(heap[k] == loop[k] for k in ("orphaned_debits", "double_debits", "approved", "reversed"))
        t_heap = best_of(lambda sc=sc, reps=reps: [simulate(sc, "reversal") for _ in range(reps)], 3) / reps
        t_loop = best_of(lambda sc=sc, reps=reps: [simulate_on_looptime(sc, "reversal") for _ in range(reps)], 3) / reps
        print(f"{name}: discrete-event heap {1 / t_heap:8,.1f} runs/s | asyncio+looptime {1 / t_loop:8,.1f} runs/s "
              f"-> heap x{t_loop / t_heap:.2f} faster; same verdict: {same}")


def bench_fuzz() -> None:
    from possim.fuzz import fuzz

    n = 600
    start = time.perf_counter()
    found = fuzz("reversal", n, seed=1, min_transactions=5, max_transactions=5)
    elapsed = time.perf_counter() - start
    assert found.schedule is None
    five = load(ROOT / "scenarios" / "response-lost.toml")
    five = from_dict({**five.model.model_dump(), "transactions": [{"amount": "10.00", "count": 5, "every": 40}]})
    t_plain = best_of(lambda: [simulate(five, "reversal") for _ in range(100)], 3) / 100
    print(f"fuzz, 5-transaction schedules, policy reversal: {n / elapsed:,.0f} examples per s (goal >= 300)")
    print(f"  baseline, a fixed 5-transaction scenario without Hypothesis: {1 / t_plain:,.0f} runs per s "
          f"-> generation and checking cost x{(elapsed / n) / t_plain:.2f}")


if __name__ == "__main__":
    main()

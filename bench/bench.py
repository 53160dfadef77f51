"""possim benchmarks: every goal of the speed issue, each beside a baseline measured in the same run.

Run with ``make bench`` (``python bench/bench.py [--quick]``). Nothing here is a pass/fail
test: each figure is printed with its baseline, the ratio and the goal, met or not met,
and everything is written to ``bench/results.json``.

Honesty rules this file keeps: nothing is cached between repetitions (the codec parses
every frame of every run; only the frame parsed just before is remembered); project and
baseline run the same schedules, in turns, in the same process state; a baseline does
the same work per purchase (the codec ceiling encodes and decodes the 0200 and the 0210
one purchase exchanges); a capability possim does not have yet is printed as
"not measured" with the reason, never as a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import Row  # noqa: E402


def section(rows: list[Row], title: str, body: Callable[[list[Row]], object]) -> object:
    """Run one section, print its rows; a section that cannot run says why in a row of its own."""
    print(f"\n== {title}", flush=True)
    start, before = time.perf_counter(), len(rows)
    got: object = None
    try:
        got = body(rows)
    except Exception as exc:  # a missing broker or library must not hide the other figures
        rows.append(Row(title, None, "", note=f"{type(exc).__name__}: {exc}"))
        traceback.print_exc(limit=3)
    for row in rows[before:]:
        print("\n".join(row.lines()), flush=True)
    print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)
    return got


def drivers(rows: list[Row], quick: bool) -> None:
    """Why the in-memory mode uses a discrete-event heap: the same runs on asyncio + looptime."""
    try:
        from drivers import simulate_on_looptime
    except ImportError:
        rows.append(Row("discrete-event heap vs asyncio+looptime", None, "runs/s",
                        note="looptime is not installed (pip install -e '.[bench]')"))
        return
    from common import interleaved

    from possim.scenario import load
    from possim.simulation import simulate

    for name, reps in (("response-lost", 40 if quick else 150), ("flaky-network", 1 if quick else 3)):
        sc = load(ROOT / "scenarios" / f"{name}.toml")
        heap, loop = simulate(sc, "reversal").verdict.summary(), simulate_on_looptime(sc, "reversal").verdict.summary()
        same = all(heap[k] == loop[k] for k in ("orphaned_debits", "double_debits", "approved", "reversed"))
        t = interleaved({"heap": lambda sc=sc, n=reps: [simulate(sc, "reversal") for _ in range(n)],
                         "loop": lambda sc=sc, n=reps: [simulate_on_looptime(sc, "reversal") for _ in range(n)]}, 3)
        rows.append(Row(f"{name}, policy reversal, discrete-event heap", reps / t["heap"], "runs/s", reps / t["loop"],
                        "the same runs on asyncio + looptime", note=f"informative; same verdict: {same}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run, not the figures")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()
    quick = args.quick
    started, load_before = time.perf_counter(), os.getloadavg()
    print(f"possim bench on {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {load_before[0]:.2f}{' (quick)' if quick else ''}", flush=True)

    import fuzzing
    import inmemory
    import network

    from possim.progress import bar

    rows: list[Row] = []
    with bar("possim bench", 6) as step:  # a bar of the sections on stderr, when it is a terminal
        ceiling = section(rows, "in memory", lambda r: inmemory.run(r, quick))
        step(1)
        if isinstance(ceiling, float):
            section(rows, "long run", lambda r: inmemory.hundred_thousand(r, ceiling, quick))
        step(2)
        section(rows, "MQTT", lambda r: network.run_mqtt_rows(r, quick))
        step(3)
        section(rows, "TCP", lambda r: network.run_tcp_rows(r, quick))
        step(4)
        section(rows, "fuzz", lambda r: fuzzing.run(r, quick))
        step(5)
        section(rows, "in-memory drivers", lambda r: drivers(r, quick))
        step(6)

    goals = [r for r in rows if r.target]
    print("\n== goals")
    for r in goals:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[r.met]
        ratio = f"ratio {r.ratio:.2f}" if r.ratio is not None else "no ratio"
        figure = f"{r.figure:,.1f} {r.unit}" if r.figure is not None else "-"
        print(f"  [{verdict:>12}] {r.goal}: {figure}, {ratio} (goal {r.target})")
    elapsed = time.perf_counter() - started
    print(f"\nbench took {elapsed:.0f} s; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    Path(args.out).write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick, "seconds": elapsed,
        "python": platform.python_version(), "cores": os.cpu_count(),
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "rows": [r.as_dict() for r in rows]}, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

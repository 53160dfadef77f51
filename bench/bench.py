"""possim benchmarks: every goal of the speed issue, each beside a baseline measured in the same run.

Run with ``make bench`` (``python bench/bench.py [--quick] [--only SECTIONS]``). Nothing here
is a pass/fail test: each figure is printed with its baseline, the ratio and the goal, met or
not met, and everything is written to ``bench/results.json`` with the load average before and
after. ``docs/speed.md`` describes every row.

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


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def _in_memory(rows: list[Row], quick: bool) -> None:
    import inmemory

    inmemory.run(rows, quick)


def _long_runs(rows: list[Row], quick: bool) -> None:
    import inmemory

    inmemory.long_runs(rows, quick)


def _mqtt(rows: list[Row], quick: bool) -> None:
    import network

    network.run_mqtt_rows(rows, quick)


def _tcp(rows: list[Row], quick: bool) -> None:
    import network

    network.run_tcp_rows(rows, quick)


def _latency(rows: list[Row], quick: bool) -> None:
    import latency

    latency.run(rows, quick)


def _fuzz(rows: list[Row], quick: bool) -> None:
    import fuzzing

    fuzzing.run(rows, quick)


def _drivers(rows: list[Row], quick: bool) -> None:
    drivers(rows, quick)


#: The sections in the order they run: name (for --only) -> (title, body).
SECTIONS: dict[str, tuple[str, Callable[[list[Row], bool], None]]] = {
    "memory": ("in memory", _in_memory),
    "long": ("long runs and memory", _long_runs),
    "mqtt": ("MQTT", _mqtt),
    "tcp": ("TCP", _tcp),
    "latency": ("latency under load (possim load)", _latency),
    "fuzz": ("fuzz", _fuzz),
    "drivers": ("in-memory drivers", _drivers),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run, not the figures")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--only", default="", metavar="NAMES",
                        help=f"run only these sections, comma-separated ({', '.join(SECTIONS)})")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if only - set(SECTIONS):
        parser.error(f"--only: unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}; "
                     f"known: {', '.join(SECTIONS)}")
    quick = args.quick
    started, load_before = time.perf_counter(), os.getloadavg()
    from possim.views.progress import bar

    print(f"possim bench on {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average (1, 5, 15 min) {_load(load_before)}"
          f"{' (quick)' if quick else ''}", flush=True)

    rows: list[Row] = []
    chosen = [name for name in SECTIONS if not only or name in only]
    with bar("possim bench", len(chosen)) as step:  # a bar of the sections on stderr, when it is a terminal
        for i, name in enumerate(chosen, start=1):
            title, body = SECTIONS[name]
            section(rows, title, lambda r, body=body: body(r, quick))  # type: ignore[misc]
            step(i)

    goals = [r for r in rows if r.target]
    print("\n== goals")
    for r in goals:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[r.met]
        ratio = f"ratio {r.ratio:.2f}" if r.ratio is not None else "no ratio"
        figure = f"{r.figure:,.1f} {r.unit}" if r.figure is not None else "-"
        base = f" vs {r.baseline:,.1f} ({r.baseline_name})" if r.baseline is not None else ""
        print(f"  [{verdict:>12}] {r.goal}: {figure}{base}, {ratio} (goal {r.target})")
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print(f"\nbench took {elapsed:.0f} s; load average (1, 5, 15 min) {_load(load_before)} before, "
          f"{_load(load_after)} after")
    Path(args.out).write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick, "seconds": elapsed,
        "sections": chosen,
        "python": platform.python_version(), "cores": os.cpu_count(),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "rows": [r.as_dict() for r in rows]}, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

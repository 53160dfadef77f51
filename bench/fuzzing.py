"""Fuzz figures: examples per second for 5-sale schedules, one and two workers, against the same
schedules run without Hypothesis (simulation, checker verdict and coverage tally, nothing generated)."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any
from unittest.mock import patch

from common import Row

import possim.fuzzing.fuzz as fuzz_module
from possim.fuzzing.fuzz import fuzz, lighter_gc, violations
from possim.fuzzing.fuzz_workers import fuzz_parallel
from possim.judging.coverage import tally
from possim.scenario import from_dict
from possim.simulation import simulate


def recorded_fuzz(examples: int, seed: int) -> tuple[float, float, list[dict[str, Any]]]:
    """One-worker fuzz (the plain search), keeping every schedule it generated: examples per second,
    CPU milliseconds per example, the schedules."""
    schedules: list[dict[str, Any]] = []

    def record(schedule: dict[str, Any], *rest: Any) -> Any:
        schedules.append(schedule)
        return from_dict(schedule, *rest)

    with patch.object(fuzz_module, "from_dict", record):
        start, cpu = time.perf_counter(), time.process_time()
        found = fuzz("reversal", examples, seed=seed, min_transactions=5, max_transactions=5)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert found.schedule is None and found.examples == examples
    return examples / elapsed, cpu * 1000 / examples, schedules[:examples]


def replay(schedules: list[dict[str, Any]]) -> tuple[float, float]:
    """The fuzz loop's own work on given schedules: build, simulate, judge, tally. No generation.
    Examples per second and CPU milliseconds per example."""
    coverage: Counter[str] = Counter()
    start, cpu = time.perf_counter(), time.process_time()
    with lighter_gc():  # the collector settings the search runs under
        for schedule in schedules:
            result = simulate(from_dict(schedule), "reversal")
            violations(result)
            tally(coverage, result.trace.records)
    return len(schedules) / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / len(schedules)


def _cpu() -> float:
    """CPU seconds of this process and of its finished (joined) children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run(rows: list[Row], quick: bool) -> None:
    examples = 200 if quick else 600
    one, one_cpu, schedules = recorded_fuzz(examples, seed=1)
    plain, plain_cpu = replay(schedules)
    start, cpu = time.perf_counter(), _cpu()
    found = fuzz_parallel("reversal", examples, 1, 2, None, 5, 5)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    two = found.examples / elapsed
    # CPU time beside wall time: on a machine busy with other work the wall figures fall, and
    # "cores used" below 2 shows the two workers did not get two cores.
    cpu_note = {"cpu_ms_per_example": round(one_cpu, 3), "baseline_cpu_ms_per_example": round(plain_cpu, 3)}
    rows.append(Row("fuzz, 5-sale schedules, policy reversal, --workers 1", one, "examples/s", plain,
                    "the same schedules without Hypothesis, one core",
                    note=(f"informative (the goal is for 2 cores: next row); {examples} examples; "
                          "ratio = share of time left to the simulation"), extra=cpu_note))
    rows.append(Row("fuzz, 5-sale schedules, policy reversal, --workers 2 (merged coverage)", two, "examples/s", plain,
                    "the same schedules without Hypothesis, one core", ">= 300 examples/s on 2 cores", two >= 300,
                    f"{found.examples} examples; worker 0 searches in the parent, the time includes starting worker 1; "
                    f"cores used {cpu / elapsed:.2f} of 2",
                    {"cpu_ms_per_example": round(cpu * 1000 / found.examples, 3),
                     "cores_used": round(cpu / elapsed, 2)}))

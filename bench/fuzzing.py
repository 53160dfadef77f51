"""Fuzz figures: examples per second for 5-sale schedules, one and two workers, against the same
schedules run without Hypothesis (simulation, checker verdict and coverage tally, nothing generated)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from common import Row

import possim.fuzz as fuzz_module
from possim.coverage import tally
from possim.fuzz import fuzz, violations
from possim.fuzz_workers import fuzz_parallel
from possim.scenario import from_dict
from possim.simulation import simulate


def recorded_fuzz(examples: int, seed: int) -> tuple[float, list[dict[str, Any]]]:
    """One-worker fuzz (the plain search), keeping every schedule it generated."""
    schedules: list[dict[str, Any]] = []
    real = fuzz_module.from_dict

    def record(schedule: dict[str, Any], *rest: Any) -> Any:
        schedules.append(schedule)
        return real(schedule, *rest)

    fuzz_module.from_dict = record  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        found = fuzz("reversal", examples, seed=seed, min_transactions=5, max_transactions=5)
        elapsed = time.perf_counter() - start
    finally:
        fuzz_module.from_dict = real
    assert found.schedule is None and found.examples == examples
    return examples / elapsed, schedules[:examples]


def replay(schedules: list[dict[str, Any]]) -> float:
    """The fuzz loop's own work on given schedules: build, simulate, judge, tally. No generation."""
    coverage: Counter[str] = Counter()
    start = time.perf_counter()
    for schedule in schedules:
        result = simulate(from_dict(schedule), "reversal")
        violations(result)
        tally(coverage, result.trace.records)
    return len(schedules) / (time.perf_counter() - start)


def run(rows: list[Row], quick: bool) -> None:
    examples = 200 if quick else 600
    one, schedules = recorded_fuzz(examples, seed=1)
    plain = replay(schedules)
    start = time.perf_counter()
    found = fuzz_parallel("reversal", examples, 1, 2, None, 5, 5)
    two = found.examples / (time.perf_counter() - start)
    rows.append(Row("fuzz, 5-sale schedules, policy reversal, --workers 1", one, "examples/s", plain,
                    "the same schedules without Hypothesis, one core", ">= 300 examples/s", one >= 300,
                    f"{examples} examples; ratio = share of time left to the simulation"))
    rows.append(Row("fuzz, 5-sale schedules, policy reversal, --workers 2 (merged coverage)", two, "examples/s", plain,
                    "the same schedules without Hypothesis, one core", ">= 300 examples/s on 2 cores", two >= 300,
                    f"{found.examples} examples; worker 0 searches in the parent, the time includes starting worker 1"))

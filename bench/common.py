"""Shared pieces of the bench: timing, the purchase scenario, result rows and their verdicts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (A B C A B C ...) so machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def purchases(count: int, every: float = 5.0, policy_seed: int = 1) -> Any:
    """``count`` purchases of 10.00 by one terminal on a perfect link to a host that answers at once."""
    from possim.scenario import from_dict, load

    base = load(ROOT / "scenarios" / "response-lost.toml").model.model_dump()
    link = {"latency": {"value": 0.0}}
    base.update(network={"to_host": link, "to_terminal": link}, host={"processing": {"value": 0.0}}, faults=[],
                partitions=[], power_losses=[], seed=policy_seed,
                transactions=[{"amount": "10.00", "count": count, "every": every}])
    base.pop("expect", None)
    return from_dict(base)


@dataclass
class Row:
    """One goal of the issue: the figure, its baseline from the same run, the ratio and the verdict."""

    goal: str
    figure: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline:
            return None
        return self.figure / self.baseline

    def lines(self) -> list[str]:
        verdict = {True: "MET", False: "NOT MET", None: "-"}[self.met]
        if self.figure is None:
            head = f"{self.goal}: not measured: {self.note}"
        else:
            head = f"{self.goal}: {self.figure:,.1f} {self.unit}"
        out = [head]
        if self.baseline is not None:
            ratio = f" -> ratio {self.ratio:.2f}" if self.ratio is not None else ""
            out.append(f"    baseline ({self.baseline_name}): {self.baseline:,.1f} {self.unit}{ratio}")
        if self.target:
            out.append(f"    goal: {self.target} -> {verdict}")
        if self.note and self.figure is not None:
            out.append(f"    note: {self.note}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}

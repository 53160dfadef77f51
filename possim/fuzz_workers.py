"""``possim fuzz --workers N``: the search spread over N processes, coverage merged, shrinking at home.

Why: Hypothesis generation and the simulation are both pure Python on one core; fuzzing
is embarrassingly parallel, so N processes try N times as many schedules per second.

How: worker ``i`` runs its own generation-only search (``Phase.generate``) from the seed
``seed + i * 2**32`` over its share of the examples and reports its progress, its
coverage and the first violating schedule it meets. The first violation stops every
worker (they stop before their next example and still report their coverage). The
parent then shrinks it by replaying that worker's search with shrinking on (``fuzz``
with the worker's seed and share: the same generator, so the same first violation);
should the replay not meet it, the worker's schedule is returned unshrunk. One worker
is ``possim.fuzz.fuzz`` itself, unchanged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from possim.coverage import tally
from possim.fuzz import FuzzResult, fuzz, groups_for, violations
from possim.fuzz import strategy as fuzz_strategy
from possim.scenario import from_dict
from possim.simulation import simulate

#: How many examples a worker runs between progress reports.
_REPORT_EVERY = 10


class _Stopped(BaseException):
    """Raised inside a worker's search once another worker found a violation.

    A ``BaseException``, so Hypothesis lets it through at once instead of treating it as
    the property failing.
    """


@dataclass(frozen=True)
class _Job:
    index: int
    policy: str
    examples: int
    seed: int
    max_transactions: int
    min_transactions: int
    wallet: bool = False


def worker_seed(seed: int, index: int) -> int:
    """Worker ``index``'s generator seed: worker 0 keeps ``seed``; the others never overlap it."""
    return seed + index * 2**32


def shares(examples: int, workers: int) -> list[int]:
    """``examples`` split as evenly as possible over ``workers`` (none of them empty)."""
    workers = max(1, min(workers, examples))
    return [examples // workers + (1 if i < examples % workers else 0) for i in range(workers)]


def fuzz_parallel(policy: str, examples: int, seed: int, workers: int,
                  progress: Callable[[int], None] | None = None, max_transactions: int = 5,
                  min_transactions: int = 1, wallet: bool = False) -> FuzzResult:
    """Like ``fuzz``, over ``workers`` processes; ``workers == 1`` is ``fuzz`` itself."""
    if workers <= 1:
        return fuzz(policy, examples, seed, progress, max_transactions, min_transactions, wallet=wallet)
    jobs = [_Job(i, policy, n, worker_seed(seed, i), max_transactions, min_transactions, wallet)
            for i, n in enumerate(shares(examples, workers))]
    ctx = _context()
    stop, reports = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_work, args=(job, stop, reports), daemon=True) for job in jobs]  # type: ignore[attr-defined]
    for proc in procs:
        proc.start()
    try:
        counts, coverage, found = _collect(procs, stop, reports, progress)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    out = FuzzResult(policy, examples=sum(counts.values()), coverage=coverage, groups=groups_for(wallet))
    if found is not None:
        index, schedule = found
        _shrink(out, jobs[index], schedule)
    return out


def _context() -> BaseContext:
    """Fork where the platform has it (workers start at once with everything imported)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _collect(procs: list[Any], stop: Any, reports: Any, progress: Callable[[int], None] | None
             ) -> tuple[dict[int, int], Counter[str], tuple[int, dict[str, Any]] | None]:
    """Read the workers' reports until each has finished; the first violation stops them all."""
    counts: dict[int, int] = {}
    coverage: Counter[str] = Counter()
    found: tuple[int, dict[str, Any]] | None = None
    done: set[int] = set()
    while len(done) < len(procs):
        try:
            kind, index, count, *rest = reports.get(timeout=0.2)
        except queue.Empty:
            _check_alive(procs, done)
            continue
        counts[index] = count
        if kind == "done":
            done.add(index)
            coverage.update(rest[0])
            if rest[1] is not None and found is None:
                found = (index, rest[1])
                stop.set()
        if progress:
            progress(sum(counts.values()))
    return counts, coverage, found


def _check_alive(procs: list[Any], done: set[int]) -> None:
    for index, proc in enumerate(procs):
        if index not in done and not proc.is_alive() and proc.exitcode != 0:
            raise RuntimeError(f"fuzz worker {index} died with exit code {proc.exitcode}")


def _work(job: _Job, stop: Any, reports: Any) -> None:
    """One worker's search: generation only, its coverage and first violation reported to the parent."""
    coverage: Counter[str] = Counter()
    count = [0]

    def violated(schedule: dict[str, Any]) -> bool:
        if stop.is_set():
            raise _Stopped
        result = simulate(from_dict(schedule), job.policy)
        count[0] += 1
        tally(coverage, result.trace.records)
        if count[0] % _REPORT_EVERY == 0:
            reports.put(("progress", job.index, count[0]))
        return bool(violations(result))

    config = settings(max_examples=job.examples, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
    # The same strategies as ``fuzz`` draws from, so the parent's replay meets the same schedules.
    strategy = fuzz_strategy(job.max_transactions, job.min_transactions, job.wallet)
    schedule: dict[str, Any] | None = None
    with contextlib.suppress(NoSuchExample, _Stopped):
        schedule = find(strategy, violated, settings=config, random=random.Random(job.seed))
    reports.put(("done", job.index, count[0], coverage, schedule))


def _shrink(out: FuzzResult, job: _Job, schedule: dict[str, Any]) -> None:
    """Shrink the worker's violation here by replaying its search; keep it unshrunk if the replay misses."""
    replay = fuzz(job.policy, job.examples, job.seed, None, job.max_transactions, job.min_transactions,
                  wallet=job.wallet)
    if replay.schedule is not None and replay.result is not None:
        out.schedule, out.result = replay.schedule, replay.result
        return
    out.schedule, out.result = schedule, simulate(from_dict(schedule), job.policy)

"""``possim fuzz --workers N``: the search spread over N processes, coverage merged, shrinking at home.

Why: Hypothesis generation and the simulation are both pure Python on one core; fuzzing
is embarrassingly parallel, so N processes try N times as many schedules per second.

How: worker ``i`` searches from the seed ``seed + i * 2**32`` over its share of the
examples and reports its progress, its coverage and the first violating schedule it
meets. Worker 0 is the parent itself: it searches its share with ``possim.fuzzing.fuzz.fuzz``
while the other processes start (no process sits idle waiting, one fewer to start), and
reads their reports between its examples. The others run a generation-only search
(``Phase.generate``). The first violation stops every worker (they stop before their
next example and still report their coverage). One found at home is shrunk at once; one
found elsewhere is shrunk by replaying that worker's search here with shrinking on
(``fuzz`` with the worker's seed and share: the same generator, so the same first
violation); should the replay not meet it, the worker's schedule is returned unshrunk.
One worker is ``possim.fuzzing.fuzz.fuzz`` itself, unchanged.

Ctrl-C: the workers ignore SIGINT (a terminal sends it to the whole process group); the
parent stops them as it stops them for a violation, collects their counts and coverage,
and returns what ran, with the first violation met (unshrunk when a worker met it).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from possim.fuzzing.fuzz import (
    Beside,
    FuzzResult,
    Stopped,
    fuzz,
    groups_for,
    hypothesis_constants_only,
    lighter_gc,
    violations,
)
from possim.fuzzing.fuzz import strategy as fuzz_strategy
from possim.judging.coverage import tally
from possim.scenario import from_dict
from possim.simulation import simulate

#: How many examples a worker runs between progress reports.
_REPORT_EVERY = 10


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
    with lighter_gc():  # before the fork, so the workers inherit it
        home, board = _search(jobs, progress)
    out = FuzzResult(policy, examples=sum(board.counts.values()), coverage=home.coverage + board.coverage,
                     groups=groups_for(wallet), interrupted=board.interrupted)
    if home.schedule is not None:
        out.schedule, out.result = home.schedule, home.result
    elif board.found is not None:
        index, schedule = board.found
        if out.interrupted:  # no replay to shrink it: what ran is reported now
            out.schedule, out.result = schedule, simulate(from_dict(schedule), policy)
        else:
            _shrink(out, jobs[index], schedule)
    return out


def _search(jobs: list[_Job], progress: Callable[[int], None] | None) -> tuple[FuzzResult, _Board]:
    """Start the workers 1.. , search worker 0's share here, then wait for the others' reports."""
    ctx = _context()
    stop, reports = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_work, args=(job, stop, reports), daemon=True)  # type: ignore[attr-defined]
             for job in jobs[1:]]
    for proc in procs:
        proc.start()
    board = _Board(len(jobs), progress)
    previous = _on_ctrl_c(board, stop)
    try:
        home = _search_at_home(jobs[0], stop, reports, board)
        board.count(0, home.examples)
        board.interrupted = board.interrupted or home.interrupted
        if home.interrupted:
            stop.set()
        try:
            board.wait(procs, reports)
        except KeyboardInterrupt:  # while waiting for the others: stop them, still collect what they did
            board.interrupted = True
            stop.set()
            board.wait(procs, reports)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    return home, board


def _on_ctrl_c(board: _Board, stop: Any) -> Any:
    """Ctrl-C in the parent: stop the workers, and interrupt the search here, but never in the middle
    of reading the report queue (an interrupted read can leave its lock held or lose a report, and the
    parent would then wait for the workers' last reports forever). Returns the handler it replaced
    (``None`` off the main thread, where no handler can be set)."""

    def handle(_signum: int, _frame: Any) -> None:
        board.interrupted = True
        stop.set()
        if not board.reading:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handle)


def _context() -> BaseContext:
    """Fork where the platform has it (workers start at once with everything imported)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _search_at_home(job: _Job, stop: Any, reports: Any, board: _Board) -> FuzzResult:
    """Worker 0's share, searched here while the others start: its first violation stops them and
    is shrunk at once; a violation reported by another worker stops it before its next example."""

    def stopped() -> bool:
        board.drain(reports)
        return board.found is not None or board.interrupted

    return fuzz(job.policy, job.examples, job.seed, lambda n: board.count(0, n), job.max_transactions,
                job.min_transactions, wallet=job.wallet, beside=Beside(stopped, stop.set))


class _Board:
    """The workers' reports as they come: examples per worker, merged coverage, the first violation."""

    def __init__(self, workers: int, progress: Callable[[int], None] | None) -> None:
        self.counts: dict[int, int] = dict.fromkeys(range(workers), 0)
        self.coverage: Counter[str] = Counter()
        self.found: tuple[int, dict[str, Any]] | None = None
        self.done: set[int] = set()
        self.progress = progress
        self.interrupted = False
        #: Reading the report queue: a Ctrl-C then only sets ``interrupted`` (see ``_on_ctrl_c``).
        self.reading = False

    def count(self, index: int, examples: int) -> None:
        self.counts[index] = examples
        if self.progress:
            self.progress(sum(self.counts.values()))

    def take(self, report: tuple[Any, ...]) -> None:
        kind, index, examples, *rest = report
        if kind == "done":
            self.done.add(index)
            self.coverage.update(rest[0])
            if rest[1] is not None and self.found is None:
                self.found = (index, rest[1])
        self.count(index, examples)

    def drain(self, reports: Any) -> None:
        """Take every report already waiting, without blocking (called before each home example)."""
        while True:
            try:
                self.take(self._read(reports, None))
            except queue.Empty:
                return

    def wait(self, procs: list[Any], reports: Any) -> None:
        """Read the other workers' reports until each has finished."""
        while len(self.done) < len(procs):
            try:
                self.take(self._read(reports, 0.2))
            except queue.Empty:
                _check_alive(procs, self.done)

    def _read(self, reports: Any, timeout: float | None) -> Any:
        """One report (``timeout`` None: only one already waiting); Ctrl-C waits until the read is over."""
        self.reading = True
        try:
            return reports.get_nowait() if timeout is None else reports.get(timeout=timeout)
        finally:
            self.reading = False


def _check_alive(procs: list[Any], done: set[int]) -> None:
    for index, proc in enumerate(procs, start=1):
        if index not in done and not proc.is_alive() and proc.exitcode != 0:
            raise RuntimeError(f"fuzz worker {index} died with exit code {proc.exitcode}")


def _work(job: _Job, stop: Any, reports: Any) -> None:
    """One worker's search: generation only, its coverage and first violation reported to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    coverage: Counter[str] = Counter()
    count = [0]

    def violated(schedule: dict[str, Any]) -> bool:
        if stop.is_set():
            raise Stopped
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
    with contextlib.suppress(NoSuchExample, Stopped), hypothesis_constants_only():  # as the parent's replay
        schedule = find(strategy, violated, settings=config, random=random.Random(job.seed))
    if schedule is not None:
        stop.set()  # the others stop before their next example
    reports.put(("done", job.index, count[0], coverage, schedule))


def _shrink(out: FuzzResult, job: _Job, schedule: dict[str, Any]) -> None:
    """Shrink the worker's violation here by replaying its search; keep it unshrunk if the replay misses."""
    replay = fuzz(job.policy, job.examples, job.seed, None, job.max_transactions, job.min_transactions,
                  wallet=job.wallet)
    if replay.schedule is not None and replay.result is not None:
        out.schedule, out.result = replay.schedule, replay.result
        return
    out.schedule, out.result = schedule, simulate(from_dict(schedule), job.policy)

"""``possim fuzz --workers N``: shares, merged coverage, a stop at the first violation, shrinking in the parent."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from possim.fuzzing.fuzz import fuzz, violations
from possim.fuzzing.fuzz_workers import fuzz_parallel, shares, worker_seed


def test_examples_are_split_evenly_and_never_into_empty_shares() -> None:
    assert shares(10, 3) == [4, 3, 3]
    assert shares(2, 8) == [1, 1]
    assert sum(shares(1001, 4)) == 1001


def test_worker_seeds_differ_and_worker_zero_keeps_the_seed() -> None:
    assert worker_seed(5, 0) == 5
    assert len({worker_seed(s, i) for s in range(3) for i in range(4)}) == 12


def test_one_worker_is_the_plain_search() -> None:
    """--workers 1 runs ``fuzz`` itself: same count, same coverage, same (absent) violation."""
    plain = fuzz("reversal", 40, seed=3)
    one = fuzz_parallel("reversal", 40, 3, 1)
    assert (one.examples, one.coverage, one.schedule) == (plain.examples, plain.coverage, plain.schedule)


def test_two_workers_try_every_example_and_merge_their_coverage() -> None:
    seen: list[int] = []
    found = fuzz_parallel("reversal", 60, 1, 2, seen.append)
    assert found.schedule is None and found.examples == 60
    assert seen[-1] == 60 and seen == sorted(seen)
    assert found.coverage["response lost after host approval"] > 0
    alone = [fuzz("reversal", n, seed=worker_seed(1, i)).coverage for i, n in enumerate(shares(60, 2))]
    assert found.coverage == alone[0] + alone[1]


def test_the_first_violation_stops_the_workers_and_is_shrunk_in_the_parent() -> None:
    found = fuzz_parallel("none", 2000, 0, 2)
    assert found.schedule is not None and found.result is not None
    assert found.examples < 2000  # stopped early
    assert violations(found.result) == ["orphaned_debits"]
    assert len(found.schedule["transactions"]) == 1  # shrunk
    faults = found.schedule["faults"] + found.schedule["partitions"] + found.schedule["host"]["crash_after_commit"]
    assert len(faults) == 1


def test_a_violation_met_by_another_worker_is_replayed_and_shrunk_here() -> None:
    """Worker 0 searches in the parent; with seed 5 its share of 4 holds no violation and worker 1's does."""
    assert fuzz("none", 4, seed=worker_seed(5, 0)).schedule is None
    assert fuzz("none", 4, seed=worker_seed(5, 1)).schedule is not None
    found = fuzz_parallel("none", 8, 5, 2)
    assert found.schedule is not None and found.result is not None
    assert violations(found.result) == ["orphaned_debits"]
    assert found.schedule["faults"] == [{"action": "drop", "direction": "to_terminal", "mti": "0210", "nth": 1}]
    assert len(found.schedule["transactions"]) == 1


def test_fuzz_cli_with_two_workers_writes_a_replayable_violation(tmp_path: Path) -> None:
    out = tmp_path / "found.toml"
    done = subprocess.run([sys.executable, "-m", "possim", "fuzz", "--policy", "none", "--workers", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "fault coverage" in done.stdout
    assert tomllib.loads(out.read_text())["policy"] == "none"
    replay = subprocess.run([sys.executable, "-m", "possim", "run", str(out), "--policy", "none", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 1, replay.stdout  # it expects the fixed behaviour: the bug is still there
    assert json.loads(replay.stdout)["orphaned_debits"] == 1


def test_fuzz_cli_refuses_zero_workers() -> None:
    done = subprocess.run([sys.executable, "-m", "possim", "fuzz", "--workers", "0"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_two_workers_draw_wallet_schedules_when_asked() -> None:
    """--wallet reaches the workers: their schedules hold QR wallet payments."""
    found = fuzz_parallel("reversal", 12, 2, 2, wallet=True)
    assert found.examples == 12 or found.schedule is not None
    wallet_only = {"customer confirmed on the phone", "customer still paying (USERPAYING)",
                   "customer paid again by QR or card"}
    assert wallet_only & set(found.coverage)

"""``possim load`` small and bounded over memory, TCP and MQTT; shards' ledgers merged by ``possim check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from possim.broker import Broker
from tests.conftest import SCENARIOS
from tests.test_cli import possim


def _load(*args: str) -> dict[str, object]:
    out = possim("load", "--no-progress", "--json", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    report: dict[str, object] = json.loads(out.stdout)
    return report


@pytest.mark.parametrize("transport", ["memory", "tcp"])
def test_a_small_load_settles_with_percentiles_and_every_host_serves(transport: str) -> None:
    r = _load("--terminals", "20", "--rate", "40", "--duration", "1", "--transport", transport, "--hosts", "2")
    assert r["sales_completed"] == r["transactions"] == 40
    assert (r["orphaned_debits"], r["double_debits"], r["phantom_approvals"], r["pending_reversals"]) == (0, 0, 0, 0)
    per_host = r["requests_per_host"]
    assert isinstance(per_host, list) and len(per_host) == 2 and all(n > 0 for n in per_host)
    lat = r["latency_ms"]
    assert isinstance(lat, dict) and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def test_a_lossy_load_under_reversal_reverses_and_stays_clean() -> None:
    r = _load("--terminals", "10", "--rate", "20", "--duration", "2", "--loss", "0.2", "--policy", "reversal",
              "--timeout", "0.5")
    assert r["timeouts"] > 0 and r["reversed"] > 0
    assert (r["orphaned_debits"], r["double_debits"], r["pending_reversals"]) == (0, 0, 0)


def test_loss_hits_answers_too_over_every_transport() -> None:
    """--loss loses messages in each direction: without recovery a lost answer is an orphaned debit,
    over TCP as in memory (answers from a real socket pass the terminals' fault layer too)."""
    args = ("--terminals", "20", "--rate", "20", "--duration", "3", "--loss", "0.2", "--policy", "none",
            "--timeout", "2")  # generous: on a busy machine only a lost answer, not a slow one, times out
    got = {}
    for transport in ("memory", "tcp"):
        out = possim("load", "--no-progress", "--json", "--transport", transport, *args)
        assert out.returncode == 1, out.stdout + out.stderr  # orphaned debits: the run is not clean
        got[transport] = json.loads(out.stdout)
    assert got["memory"]["orphaned_debits"] > 0 and got["tcp"]["orphaned_debits"] > 0


def test_a_small_load_over_mqtt_with_two_shards(broker: Broker) -> None:
    r = _load("--terminals", "10", "--rate", "20", "--duration", "1", "--transport", "mqtt", "--hosts", "2",
              "--broker", broker.url)
    assert r["sales_completed"] == 20 and r["orphaned_debits"] == 0 and r["double_debits"] == 0
    per_host = r["requests_per_host"]
    assert isinstance(per_host, list) and sum(per_host) == 20 and all(n > 0 for n in per_host)


@pytest.mark.parametrize("args", [
    ("--transport", "tcp", "--connect", "192.0.2.1:8583"),
    ("--transport", "memory", "--connect", "127.0.0.1:8583"),
    ("--transport", "tcp", "--connect", "nonsense"),
])
def test_remote_or_bad_targets_are_refused_in_one_line(args: tuple[str, ...]) -> None:
    out = possim("load", "--no-progress", *args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def _run_as(tmp_path: Path, tid: str, name: str) -> tuple[Path, Path]:
    """One approved sale by terminal ``tid``, its ledger and journal kept (a shard's files)."""
    text = (SCENARIOS / "duplicate-request.toml").read_text()
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(text + f'\n[terminal]\ntid = "{tid}"\n' if "[terminal]" not in text
                        else text.replace("[terminal]", f'[terminal]\ntid = "{tid}"', 1))
    ledger, journal = tmp_path / f"{name}.ledger", tmp_path / f"{name}.journal"
    out = possim("run", str(scenario), "--policy", "reversal", "--ledger", str(ledger), "--journal", str(journal),
                 "--json")
    assert out.returncode == 0, out.stderr
    return ledger, journal


def test_check_merges_the_ledgers_of_host_shards(tmp_path: Path) -> None:
    (l1, j1), (l2, j2) = _run_as(tmp_path, "SHOP0001", "a"), _run_as(tmp_path, "SHOP0002", "b")
    both = possim("check", "--journal", str(j1), "--journal", str(j2), "--ledger", str(l1), "--ledger", str(l2),
                  "--json")
    assert both.returncode == 0, both.stdout + both.stderr
    merged = json.loads(both.stdout)
    assert merged["transactions"] == 2 and merged["phantom_approvals"] == 0 and merged["settled"]
    folder = tmp_path / "ledgers"
    folder.mkdir()
    for ledger in (l1, l2):
        ledger.rename(folder / ledger.name)
    by_folder = possim("check", "--journal", str(j1), "--journal", str(j2), "--ledger", str(folder), "--json")
    assert json.loads(by_folder.stdout) == merged
    one = possim("check", "--journal", str(j1), "--journal", str(j2), "--ledger", str(folder / l1.name), "--json")
    assert one.returncode == 1 and json.loads(one.stdout)["phantom_approvals"] >= 1

"""The possim command as a user runs it: a real subprocess, real exit codes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from tests.conftest import SCENARIOS

POSSIM = [sys.executable, "-m", "possim"]
KEYS = {"transactions", "approved", "declined", "orphaned_debits", "double_debits", "phantom_approvals",
        "pending_reversals", "open_holds", "customer_loss"}


def possim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSSIM, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("policy, orphans", [("none", 1), ("reversal", 0), ("query", 0), ("query-then-reversal", 0)])
def test_run_json_response_lost(policy: str, orphans: int) -> None:
    out = possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", policy, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary.keys() >= KEYS
    assert summary["orphaned_debits"] == orphans
    assert (summary["customer_loss"] != "0.00") == (policy == "none")
    assert summary["double_debits"] == 0 and summary["pending_reversals"] == 0


def test_run_prints_a_timeline_and_the_verdict() -> None:
    out = possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", "none")
    assert out.returncode == 0
    assert "0210" in out.stdout and "LOST" in out.stdout and "TIMEOUT" in out.stdout
    assert "orphaned debits" in out.stdout


def test_trace_is_byte_identical_for_a_seed_and_differs_for_another(tmp_path: Path) -> None:
    files = []
    for i, seed in enumerate(("7", "7", "8")):
        path = tmp_path / f"t{i}.jsonl"
        assert possim("run", str(SCENARIOS / "flaky-network.toml"), "--seed", seed, "--trace", str(path),
                      "--json").returncode == 0
        files.append(path.read_bytes())
    assert files[0] == files[1]
    assert files[0] != files[2]
    first = json.loads(files[0].splitlines()[1])
    assert {"t", "event"} <= first.keys()
    events = {json.loads(line)["event"] for line in files[0].splitlines()}
    assert {"msg_sent", "msg_received", "net_dropped", "timer_fired", "ledger_debit", "txn_outcome"} <= events


def test_check_determinism_reports_identical_runs() -> None:
    out = possim("run", str(SCENARIOS / "flaky-network.toml"), "--check-determinism")
    assert out.returncode == 0 and "identical" in out.stdout


def test_failed_expectation_exits_1(tmp_path: Path) -> None:
    text = (SCENARIOS / "response-lost.toml").read_text().replace('customer_loss = "25.00"', 'customer_loss = "0.00"')
    (tmp_path / "wrong.toml").write_text(text)
    out = possim("run", str(tmp_path / "wrong.toml"), "--policy", "none", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["expectations_failed"] == ["customer_loss: expected 0.00, got 25.00"]


@pytest.mark.parametrize("content, needle", [
    (None, "no such scenario file"),
    ("title = 'x'\ndescription = [", "not valid TOML"),
    ("title = 'x'\ndescription = 'y'\n[[transactions]]\namount = '-1'\n", "transactions.0.amount"),
    ("title = 'x'\ndescription = 'y'\nbogus = 1\n[[transactions]]\namount = '1.00'\n", "bogus"),
    ("title = 'x'\ndescription = 'y'\n[[faults]]\naction='drop'\ndirection='to_host'\nmti='9999'\n"
     "[[transactions]]\namount = '1.00'\n", "faults.0.mti"),
])
def test_bad_scenario_exits_2_with_one_line_naming_file_and_key(tmp_path: Path, content: str | None,
                                                                  needle: str) -> None:
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    out = possim("run", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "bad.toml" in lines[0] and needle in lines[0]
    assert "Traceback" not in out.stderr


def test_unknown_policy_exits_2() -> None:
    out = possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", "pray")
    assert out.returncode == 2
    choices = ", ".join(f"'{name}'" for name in POLICY_REGISTRY.names())
    assert out.stderr.strip().splitlines() == [f"possim: error: Invalid value for '--policy': 'pray' is not one of "
                                               f"{choices}."]


def test_existing_ledger_file_is_never_touched(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"precious")
    out = possim("run", str(SCENARIOS / "response-lost.toml"), "--ledger", str(ledger))
    assert out.returncode == 2 and ledger.read_bytes() == b"precious"


def test_ledger_and_journal_files_are_real_sqlite(tmp_path: Path) -> None:
    import sqlite3

    out = possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", "reversal", "--json",
                 "--ledger", str(tmp_path / "l.db"), "--journal", str(tmp_path / "j.db"))
    assert out.returncode == 0
    kinds = [k for (k,) in sqlite3.connect(tmp_path / "l.db").execute("SELECT kind FROM entries ORDER BY id")]
    assert kinds == ["debit", "credit"]
    status = sqlite3.connect(tmp_path / "j.db").execute("SELECT status, reversal FROM journal").fetchall()
    assert status == [("reversed", "acked")]


def test_compare_shows_every_policy() -> None:
    out = possim("compare", str(SCENARIOS / "response-lost.toml"), "--no-timelines")
    assert out.returncode == 0
    for policy in POLICY_REGISTRY.names():
        assert policy in out.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", str(SCENARIOS / "response-lost.toml"), "--trace", "/nonexistent-dir/t.jsonl"], "does not exist"),
    (["run", str(SCENARIOS / "response-lost.toml"), "--report", "/nonexistent-dir/r.html"], "does not exist"),
    (["fuzz", "--out", "/nonexistent-dir/f.toml"], "does not exist"),
    (["run", str(SCENARIOS / "response-lost.toml"), "--transport", "pigeon"], "'pigeon' is not one of"),
    (["run", str(SCENARIOS / "response-lost.toml"), "--bogus-flag"], "No such option"),
    (["acquirer", "--broker", "mqtt://127.0.0.1:1"], "cannot reach MQTT broker"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    out = possim(*args)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr, out.stderr


def test_acquirer_refuses_a_file_that_is_not_a_ledger_and_leaves_it_alone(tmp_path: Path) -> None:
    junk = tmp_path / "ledger.db"
    junk.write_bytes(b"this is not a database")
    out = possim("acquirer", "--broker", "mqtt://127.0.0.1:1", "--ledger", str(junk))
    assert out.returncode == 2 and "not a possim ledger" in out.stderr
    assert junk.read_bytes() == b"this is not a database"


def test_shipped_scenarios_run_by_name_from_anywhere(tmp_path: Path) -> None:
    out = subprocess.run([*POSSIM, "run", "customer-retries", "--policy", "none", "--json"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["double_debits"] == 1


def test_list_names_every_shipped_scenario() -> None:
    out = possim("list")
    assert out.returncode == 0
    names = {line.split()[0] for line in out.stdout.splitlines()}
    assert names == {p.stem for p in SCENARIOS.glob("*.toml")}


def test_one_bad_transaction_is_reported_once(tmp_path: Path) -> None:
    """A bad item is not also reported as a missing transaction."""
    path = tmp_path / "bad.toml"
    path.write_text("title = 'x'\ndescription = 'y'\n[[transactions]]\namount = '1.005'\n")
    out = possim("run", str(path))
    assert out.returncode == 2 and "more problem" not in out.stderr and "transactions.0.amount" in out.stderr
    path.write_text("title = 'x'\ndescription = 'y'\ntransactions = []\n")
    out = possim("run", str(path))
    assert out.returncode == 2 and "at least one [[transactions]] is needed" in out.stderr


BASE = "title = 'x'\ndescription = 'y'\n"


@pytest.mark.parametrize("content, needle", [
    (BASE + "[[transactions]]\namount = '10000000000.00'\n",
     "transactions.0.amount: amount '10000000000.00' is beyond"),
    (BASE + "[[transactions]]\namount = '1e30'\n", "transactions.0.amount: amount '1e30' is beyond"),
    (BASE + "[host]\ndefault_balance = '1e30'\n[[transactions]]\namount = '1.00'\n", "host.default_balance"),
    (BASE + "[host.accounts]\n4000000000000002 = '1e30'\n[[transactions]]\namount = '1.00'\n", "host.accounts"),
    (BASE + "[network.to_host.latency]\ndist = 'lognormal'\nvalue = 1e300\nsigma = 1.0\n"
            "[[transactions]]\namount = '1.00'\n", "network.to_host.latency.value"),
    (BASE + "[host.processing]\ndist = 'lognormal'\nvalue = 1e300\n[[transactions]]\namount = '1.00'\n",
     "host.processing.value"),
    (BASE + "policy = 'reversal'\n[terminal]\nbackoff_factor = 1e308\n[[transactions]]\namount = '1.00'\n",
     "terminal: backoff_factor is too large"),
    (BASE + "[[transactions]]\namount = '1.00'\nat = inf\n", "transactions.0.at: Input should be a finite number"),
    (BASE + "[[transactions]]\namount = '1.00'\nevery = nan\ncount = 2\n", "transactions.0.every"),
    (BASE + "[network.to_host]\nloss = nan\n[[transactions]]\namount = '1.00'\n", "network.to_host.loss"),
    (BASE + "[terminal]\nresponse_timeout = inf\n[[transactions]]\namount = '1.00'\n", "terminal.response_timeout"),
    (BASE + "[[partitions]]\nstart = 0\nend = inf\n[[transactions]]\namount = '1.00'\n", "partitions.0.end"),
])
def test_values_no_run_can_reach_are_one_line_and_exit_2(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "extreme.toml"
    path.write_text(content)
    out = possim("run", str(path), "--json")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("possim: error: ") and "extreme.toml" in out.stderr and needle in out.stderr


def test_largest_field_4_amount_still_runs(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(BASE + "[host]\ndefault_balance = '9999999999.99'\n[[transactions]]\namount = '9999999999.99'\n")
    out = possim("run", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["approved"] == 1


@pytest.mark.parametrize("policies", ["", " , ", "none,pray"])
def test_compare_refuses_an_empty_or_unknown_policy_list(policies: str) -> None:
    out = possim("compare", "response-lost", "--policies", policies, "--no-timelines")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--policies" in out.stderr, out.stderr


def test_compare_exits_1_when_a_policy_breaks_the_expectations(tmp_path: Path) -> None:
    text = (SCENARIOS / "response-lost.toml").read_text().replace("reversed = 1", "reversed = 2")
    (tmp_path / "wrong.toml").write_text(text)
    out = possim("compare", str(tmp_path / "wrong.toml"), "--no-timelines")
    assert out.returncode == 1
    assert "policy reversal: expectation failed: reversed: expected 2, got 1" in out.stdout
    assert "policy none: expectation failed" not in out.stdout
    only_none = possim("compare", str(tmp_path / "wrong.toml"), "--no-timelines", "--policies", "none")
    assert only_none.returncode == 0, only_none.stdout


def test_time_scale_is_a_finite_positive_number() -> None:
    for value in ("nan", "inf", "0", "-1", "1000"):
        out = possim("run", "response-lost", "--transport", "tcp", "--time-scale", value)
        assert out.returncode == 2 and "--time-scale" in out.stderr, (value, out.stderr)


def test_every_option_and_command_has_help() -> None:
    from possim.cli import cli

    for name, command in cli.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"

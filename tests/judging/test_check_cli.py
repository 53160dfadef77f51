"""``possim check`` on files left by a run: many journals, one ledger, exit 1 while money is owed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

POSSIM = [sys.executable, "-m", "possim"]

#: The response and every reversal are lost: the reversal is still owed when the run ends.
OWED = """
title = "reversal still owed"
description = "The 0210 and every 0400/0401 are lost; the terminal gives up retrying."
[terminal]
reversal_attempts = 2
backoff_initial = 1
[network.to_host]
loss = 0.0
[[faults]]
action = "drop"
direction = "to_terminal"
mti = "0210"
[[partitions]]
start = 1
end = 100000
direction = "to_host"
[[transactions]]
amount = "25.00"
"""


def _possim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSSIM, *args], capture_output=True, text=True, timeout=120, check=False)


def test_check_exits_1_while_a_reversal_is_pending(tmp_path: Path) -> None:
    scenario = tmp_path / "owed.toml"
    scenario.write_text(OWED, encoding="utf-8")
    journal, ledger = tmp_path / "j.db", tmp_path / "l.db"
    _possim("run", str(scenario), "--policy", "reversal", "--journal", str(journal), "--ledger", str(ledger), "--json")
    done = _possim("check", "--journal", str(journal), "--ledger", str(ledger), "--json")
    verdict = json.loads(done.stdout)
    assert verdict["pending_reversals"] == 1 and verdict["settled"] is False
    assert done.returncode == 1


def test_check_judges_a_folder_of_journals_against_one_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    folder = tmp_path / "journals"
    folder.mkdir()
    _possim("run", "response-lost", "--policy", "reversal", "--journal", str(folder / "POS00001.db"),
            "--ledger", str(ledger))
    done = _possim("check", "--journal", str(folder), "--ledger", str(ledger), "--json")
    verdict = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert verdict["transactions"] == 1 and verdict["reversed"] == 1 and verdict["orphaned_debits"] == 0


def test_check_refuses_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a database", encoding="utf-8")
    done = _possim("check", "--journal", str(bogus), "--ledger", str(bogus))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_check_exits_1_while_escalated_money_awaits_the_acquirers_refund(tmp_path: Path) -> None:
    """CUP: the reversal's tries ran out and the case went to the acquirer; until its error handling
    refunds the 25.00 the customer is out of pocket, so the run is not settled."""
    journal, ledger = tmp_path / "J.db", tmp_path / "L.db"
    run = _possim("run", "reversal-escalated", "--profile", "cup", "--journal", str(journal), "--ledger", str(ledger),
                  "--json")
    assert run.returncode == 0, run.stderr
    owed = _possim("check", "--journal", str(journal), "--ledger", str(ledger), "--json")
    verdict = json.loads(owed.stdout)
    assert (verdict["escalated"], verdict["customer_loss"], verdict["settled"]) == (1, "25.00", False)
    assert owed.returncode == 1
    refund = _possim("acquirer-errors", "--journal", str(journal), "--ledger", str(ledger))
    assert refund.returncode == 0, refund.stderr
    done = _possim("check", "--journal", str(journal), "--ledger", str(ledger), "--json")
    assert json.loads(done.stdout)["customer_loss"] == "0.00" and done.returncode == 0, done.stdout


def test_check_counts_an_open_hold_as_money_at_risk(tmp_path: Path) -> None:
    """The completion advice is lost under policy none: 100.00 stays blocked on the card."""
    journal, ledger = tmp_path / "j.db", tmp_path / "l.db"
    _possim("run", "confirmation-lost", "--policy", "none", "--journal", str(journal), "--ledger", str(ledger))
    done = _possim("check", "--journal", str(journal), "--ledger", str(ledger), "--json")
    verdict = json.loads(done.stdout)
    assert (verdict["open_holds"], verdict["money_on_hold"], verdict["merchant_loss"]) == (1, "100.00", "0.00")
    assert done.returncode == 1 and verdict["settled"] is False
    text = _possim("check", "--journal", str(journal), "--ledger", str(ledger))
    assert "money on hold: 100.00" in text.stdout
    recovered = tmp_path / "r"
    recovered.mkdir()
    _possim("run", "confirmation-lost", "--policy", "reversal", "--journal", str(recovered / "j.db"),
            "--ledger", str(recovered / "l.db"))
    clean = _possim("check", "--journal", str(recovered / "j.db"), "--ledger", str(recovered / "l.db"), "--json")
    assert json.loads(clean.stdout)["money_on_hold"] == "0.00" and clean.returncode == 0, clean.stdout

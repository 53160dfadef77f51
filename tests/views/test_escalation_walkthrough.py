"""Escalation end to end with the real commands: the CUP terminal gives up on its reversal, the
acquirer's statement lists the charge, reconciliation names the remedy, the error-handling run
refunds it and the next day's statement shows the refund (README: "Escalation, statement and
error handling")."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

POSSIM = [sys.executable, "-m", "possim"]


def possim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSSIM, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_escalated_reversal_is_charged_on_day_one_and_refunded_on_day_two(tmp_path: Path) -> None:
    run = possim("run", "reversal-escalated", "--profile", "cup", "--journal", "J.db", "--ledger", "L.db", "--json",
                 cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["escalated"] == 1 and summary["orphaned_debits"] == 0

    day1 = possim("statement", "L.db", "--scenario", "reversal-escalated", "--out", "day1.csv", cwd=tmp_path)
    assert day1.returncode == 0, day1.stderr
    [charge] = _rows(tmp_path / "day1.csv")
    assert (charge["terminal"], charge["amount"], charge["adjustments"]) == ("POS00001", "25.00", "0.00")

    recon = possim("reconcile", "J.db", "--statement", "day1.csv", cwd=tmp_path)
    assert recon.returncode == 1  # the statement and the merchant's records disagree
    assert "Charged without a sale" in recon.stdout and charge["rrn"] in recon.stdout
    assert "ask the acquirer for error handling" in recon.stdout

    errors = possim("acquirer-errors", "--journal", "J.db", "--ledger", "L.db", cwd=tmp_path)
    assert errors.returncode == 0, errors.stderr
    assert "refunded 25.00" in errors.stdout + errors.stderr

    day2 = possim("statement", "L.db", "--scenario", "reversal-escalated", "--date", "2026-11-26", "--out",
                  "day2.csv", cwd=tmp_path)
    assert day2.returncode == 0, day2.stderr
    [refund] = _rows(tmp_path / "day2.csv")
    assert (refund["rrn"], refund["adjustments"], refund["fee"]) == (charge["rrn"], "-25.00", "-0.15")

    again = possim("acquirer-errors", "--journal", "J.db", "--ledger", "L.db", cwd=tmp_path)
    assert again.returncode == 0 and "refunded 25.00" not in again.stdout + again.stderr  # money goes back once

"""Wallet payments between separate processes: ``possim acquirer`` serves the wallet gateway over its
ledger file, ``possim terminal`` runs QR payments, ``possim check`` judges journal and ledger."""

from __future__ import annotations

import json
from pathlib import Path

from possim.broker import free_port
from tests.conftest import SCENARIOS
from tests.procs import check, fleet, query

SCALE = "0.1"


def test_a_slow_customer_over_tcp_between_processes_loses_nothing(tmp_path: Path) -> None:
    """qr-user-paying-timeout under query-then-reversal: USERPAYING, queries, the cancel at the limit
    closes the order, the customer's late confirmation is refused; no money lost."""
    url = f"tcp://127.0.0.1:{free_port()}"
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    scenario = str(SCENARIOS / "qr-user-paying-timeout.toml")
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--scenario", scenario, "--time-scale", SCALE], tmp_path / "acquirer.log")
        acquirer.start().wait_event("acquirer_ready")
        terminal = make("terminal", ["terminal", scenario, "--transport", "tcp", "--connect", url, "--tid",
                                     "POS00001", "--policy", "query-then-reversal", "--journal", str(journal),
                                     "--time-scale", SCALE], tmp_path / "terminal.log")
        code, out = terminal.start().finish(timeout=120)
        assert code == 0, terminal.tail()
        summary = json.loads(out)
        assert summary["transactions"] == 1 and summary["failed"] == 1 and summary["quiescent"]
        # the gateway woke for the customer after the cancel closed the order: the confirmation was refused
        acquirer.wait_event("wallet_confirm_refused", timeout=60, state="CLOSED")
        assert acquirer.logged("wallet_trade_closed")
        assert not acquirer.logged("wallet_charged")
        assert acquirer.stop() == 0

    code, verdict, err = check(journal, ledger)
    assert code == 0, err
    assert verdict["settled"] is True
    for key in ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds"):
        assert verdict[key] == 0, key
    assert verdict["customer_loss"] == verdict["merchant_loss"] == "0.00"
    assert query(ledger, "SELECT state FROM wallet_trades") == [("CLOSED",)]
    assert query(journal, "SELECT COUNT(*) FROM wallet_journal") == [(1,)]


def test_without_recovery_the_split_run_shows_the_wallet_keeping_the_money(tmp_path: Path) -> None:
    """The same payment under ``none``: the checker of the split run finds the orphaned wallet charge,
    so the check above can fail."""
    url = f"tcp://127.0.0.1:{free_port()}"
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    scenario = str(SCENARIOS / "qr-user-paying-timeout.toml")
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--scenario", scenario, "--time-scale", SCALE], tmp_path / "acquirer.log")
        acquirer.start().wait_event("acquirer_ready")
        terminal = make("terminal", ["terminal", scenario, "--transport", "tcp", "--connect", url, "--tid",
                                     "POS00001", "--policy", "none", "--journal", str(journal), "--time-scale",
                                     SCALE], tmp_path / "terminal.log")
        code, _ = terminal.start().finish(timeout=120)
        assert code == 0, terminal.tail()
        acquirer.wait_event("wallet_charged", timeout=60)  # the customer confirms after the screen said failed
        assert acquirer.stop() == 0

    code, verdict, err = check(journal, ledger)
    assert code == 1, err
    assert verdict["orphaned_debits"] == 1 and verdict["customer_loss"] == "25.00"

"""Real processes that lose nothing: terminals and an acquirer killed with SIGKILL, then restarted.

Every process here is a real ``possim`` command talking through a real Mosquitto, with real
SQLite files, killed with a real signal. Tests wait for the processes' structlog lines (read
from their stderr log files) or for ledger rows, never for a guessed amount of time, and
every process is stopped and reaped when the test ends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from possim.broker import Broker
from tests.conftest import SCENARIOS
from tests.procs import check, fleet, query

#: slow-host at this scale: the host debits at once and answers 4.5 s later; the terminal
#: would give up after 3 s. The kill comes long before either.
SLOW_SCALE = "0.1"


@pytest.mark.parametrize("policy, outcome", [("reversal", "reversed"), ("query-then-reversal", "approved")])
def test_terminal_killed_after_its_0200_left_resumes_from_its_journal(
        broker: Broker, tmp_path: Path, policy: str, outcome: str) -> None:
    """The issue's orphan: a terminal dies with its sale debited and unanswered, and comes back.

    The 0200 is in the journal and on the ledger; only the restarted terminal, restored from
    its journal, can reverse it (or, asking first, learn it was approved and finish the sale).
    """
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    tid = "PROCK001" if policy == "reversal" else "PROCK002"
    slow = str(SCENARIOS / "slow-host.toml")
    with fleet() as proc:
        acquirer = proc("acquirer", ["acquirer", "--broker", broker.url, "--ledger", str(ledger), "--scenario", slow,
                                     "--time-scale", SLOW_SCALE, "--client-id", f"acq-{tid}"],
                        tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        term_args = ["terminal", slow, "--broker", broker.url, "--tid", tid, "--policy", policy,
                     "--journal", str(journal), "--time-scale", SLOW_SCALE]
        first = proc("terminal", term_args, tmp_path / "terminal-1.log").start()
        sent = first.wait_event("msg_sent", side="terminal", mti="0200")
        # The host has debited the sale (its answer is still 4.5 s away): waiting for that
        # makes sure the kill leaves money on the ledger that only the recovery can give back.
        acquirer.wait_event("ledger_debit", tid=tid, stan=sent["stan"])
        assert first.kill() == -9
        assert not [e for e in first.events() if e.get("event") == "msg_received"], "the answer came before the kill"
        assert query(journal, "SELECT stan, status FROM journal") == [(sent["stan"], "pending")]

        second = proc("terminal", term_args, tmp_path / "terminal-2.log").start()
        code, out = second.finish()
        assert code == 0, second.tail()
        assert json.loads(out)["pending_reversals"] == 0
        assert acquirer.stop() == 0
    code, summary, err = check(journal, ledger)
    assert code == 0, (summary, err)
    assert (summary["orphaned_debits"], summary["pending_reversals"], summary["double_debits"],
            summary["phantom_approvals"]) == (0, 0, 0, 0)
    assert summary["transactions"] == 1 and summary[outcome] == 1
    kinds = [k for (k,) in query(ledger, "SELECT kind FROM entries WHERE tid = ? ORDER BY id", tid)]
    assert kinds == (["debit", "credit"] if outcome == "reversed" else ["debit"])

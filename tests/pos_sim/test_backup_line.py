"""The backup line: a terminal with two host addresses leaves the primary after timeouts in a row or
when it cannot connect, and whatever it sends next (the reversal of a sale sent on the primary
included) goes over the backup, to the same acquirer ledger.

In memory: the shipped scenario under every policy, and the line logic alone. Over TCP: two real
``possim acquirer`` processes on one ledger file, the primary SIGKILLed after it debited a sale and
before it answered; every wait is on a log line or the end of a process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from possim.i18n import Tr
from possim.pos_sim.config import POLICIES
from possim.processes.broker import free_port
from possim.protocol import events as ev
from possim.protocol.lines import Line, Lines
from possim.running.realtime import run_tcp
from possim.scenario import ScenarioError, from_dict, load
from possim.simulation import simulate
from possim.views.lesson import point
from tests.conftest import SCENARIOS
from tests.procs import check, fleet, query


class _Sink:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.got.append(data)


def test_lines_switch_after_n_timeouts_in_a_row_and_an_answer_starts_the_count_again() -> None:
    primary, backup, events = _Sink(), _Sink(), []
    lines = Lines("POS00001", [Line("a", primary), Line("b", backup)], 2, lambda: 0.0, events.append)
    lines.timed_out()
    lines.answered()
    lines.timed_out()
    lines.send(b"x")
    assert (primary.got, backup.got) == ([b"x"], [])
    lines.timed_out()
    lines.send(b"y")
    assert backup.got == [b"y"]
    assert events == [ev.LineSwitched("POS00001", "a", "b", "timeouts")]


@pytest.mark.parametrize("policy", POLICIES)
def test_the_shipped_scenario_fails_over_and_reverses_over_the_backup(policy: str) -> None:
    result = simulate(load(SCENARIOS / "backup-line.toml"), policy)
    records = result.trace.records
    switched = [r for r in records if isinstance(r.event, ev.LineSwitched)]
    assert [(s.event.before, s.event.after, s.event.reason) for s in switched] == [("primary", "backup", "timeouts")]
    # nothing reaches the host over the cut primary after the switch, and the last sales go over the backup
    assert result.verdict.counts["double_debits"] == 0
    credited = [r for r in records if isinstance(r.event, ev.LedgerReversalCredited)]
    if policy == "reversal":
        assert len(credited) == 1 and credited[0].t > switched[0].t  # the primary's sale, reversed via the backup
        assert result.verdict.settled
    if policy == "none":
        assert result.verdict.counts["orphaned_debits"] == 1 and not credited
    assert any("backup line" in action for action in point(result, Tr("en")).actions)  # what the merchant does


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["none", "reversal"])
async def test_one_process_over_tcp_fails_over_as_in_memory(policy: str) -> None:
    """Terminal and host in one process: both lines are the one connection, the outage still cuts the primary."""
    path = SCENARIOS / "backup-line.toml"
    result = await run_tcp(load(path), policy, 1, 0.05)
    assert result.quiescent
    mem = simulate(load(path), policy).verdict.summary()
    keys = ("approved", "reversed", "orphaned_debits", "double_debits", "customer_loss")
    assert tuple(result.verdict.summary()[k] for k in keys) == tuple(mem[k] for k in keys)
    assert [r.event.reason for r in result.trace.records if isinstance(r.event, ev.LineSwitched)] == ["timeouts"]


def test_an_outage_must_name_a_line_of_the_terminal() -> None:
    raw = {"title": "t", "description": "d", "terminal": {"hosts": ["a", "b"]},
           "line_outages": [{"host": "c", "start": 0, "end": 1}], "transactions": [{"amount": "1.00"}]}
    with pytest.raises(ScenarioError, match="line_outages"):
        from_dict(raw)


TID = "POSLINE1"
#: The primary debits at once and answers 5 s later: it is killed in between. Short terminal timers.
SCENARIO = {"title": "One sale, two lines", "description": "The host answers a sale 5 s after debiting it.",
            "seed": 1, "host": {"processing": {"dist": "constant", "value": 5.0}},
            "terminal": {"response_timeout": 3, "reversal_timeout": 3, "backoff_initial": 0.5, "failover_after": 2},
            "transactions": [{"at": 0, "amount": "12.00"}]}


def test_primary_killed_mid_sale_the_reversal_arrives_over_the_backup(tmp_path: Path) -> None:
    ledger, journal, scenario = tmp_path / "ledger.db", tmp_path / "journal.db", tmp_path / "sale.toml"
    scenario.write_text(tomli_w.dumps(SCENARIO), encoding="utf-8")
    primary_url, backup_url = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    with fleet() as proc:
        primary = proc("primary", ["acquirer", "--transport", "tcp", "--listen", primary_url, "--ledger", str(ledger),
                                   "--scenario", str(scenario)], tmp_path / "primary.log").start()
        primary.wait_event("acquirer_ready")
        backup = proc("backup", ["acquirer", "--transport", "tcp", "--listen", backup_url, "--ledger", str(ledger),
                                 "--scenario", str(scenario)], tmp_path / "backup.log").start()
        backup.wait_event("acquirer_ready")
        terminal = proc("terminal", ["terminal", str(scenario), "--transport", "tcp", "--connect", primary_url,
                                     "--connect", backup_url, "--tid", TID, "--policy", "reversal",
                                     "--journal", str(journal)], tmp_path / "terminal.log").start()
        sent = terminal.wait_event("msg_sent", side="terminal", mti="0200")
        primary.wait_event("ledger_debit", tid=TID, stan=sent["stan"])
        assert primary.kill() == -9  # the debit is booked, the answer never leaves
        code, out = terminal.finish(120)
        assert code == 0, terminal.tail()
        assert json.loads(out)["reversed"] == 1
        switched = terminal.wait_event("line_switched")
        assert (switched["before"], switched["after"]) == (primary_url, backup_url)
        credited = backup.wait_event("ledger_reversal_credited", tid=TID, orig_stan=sent["stan"])
        assert credited["mti"] in ("0400", "0401")
        assert backup.stop() == 0
    assert not [e for e in primary.events() if e.get("event", "").startswith("ledger_reversal")]
    code, summary, err = check(journal, ledger)
    assert code == 0, err
    assert (summary["orphaned_debits"], summary["reversed"], summary["customer_loss"]) == (0, 1, "0.00")
    moves = query(ledger, "SELECT kind, amount FROM entries WHERE tid = ? ORDER BY id", TID)
    assert moves == [("debit", 1200), ("credit", 1200)]

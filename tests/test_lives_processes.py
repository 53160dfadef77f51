"""A terminal process that lost its journal: noticed at sign-on, refused, then sold as a replacement.

Real ``possim terminal`` and ``possim acquirer`` processes over TCP, a real ledger file, a real
SIGKILL. Every wait is on a log line or the end of a process, never on a guessed time.
"""

from __future__ import annotations

import json
from pathlib import Path

import tomli_w

from possim.broker import free_port
from tests.procs import fleet, query

TID = "POSLIFE1"
#: The acquirer debits at once and answers 5 s later: the kill comes in between.
SCENARIO = {"title": "One sale at a slow host", "description": "The host answers a sale 5 s after debiting it.",
            "seed": 1, "host": {"processing": {"dist": "constant", "value": 5.0}},
            "transactions": [{"at": 0, "amount": "12.00"}]}


def test_terminal_restarted_without_its_journal_refuses_then_sells_as_a_replacement(tmp_path: Path) -> None:
    ledger, journal, scenario = tmp_path / "ledger.db", tmp_path / "journal.db", tmp_path / "sale.toml"
    scenario.write_text(tomli_w.dumps(SCENARIO), encoding="utf-8")
    url = f"tcp://127.0.0.1:{free_port()}"
    args = ["terminal", str(scenario), "--transport", "tcp", "--connect", url, "--tid", TID, "--policy", "reversal",
            "--journal", str(journal)]
    with fleet() as proc:
        acquirer = proc("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--scenario", str(scenario)], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        first = proc("terminal-1", args, tmp_path / "terminal-1.log").start()
        old = first.wait_event("terminal_signed_on")
        sent = first.wait_event("msg_sent", side="terminal", mti="0200")
        acquirer.wait_event("ledger_debit", tid=TID, stan=sent["stan"])
        assert first.kill() == -9
        assert not [e for e in first.events() if e.get("event") == "msg_received" and e.get("mti") == "0210"]
        for file in tmp_path.glob("journal.db*"):  # the journal is lost, write-ahead log and all
            file.unlink()

        refused_log = tmp_path / "terminal-2.log"
        code, out = proc("terminal-2", [*args, "--no-log"], refused_log).start().finish()
        assert (code, out) == (3, "")
        [line] = refused_log.read_text().splitlines()
        assert line.startswith(f"possim: refused: terminal {TID} has no journal, but the host knows it from an "
                               "earlier life") and "--replacement" in line

        replacement = proc("terminal-3", [*args, "--replacement"], tmp_path / "terminal-3.log").start()
        code, out = replacement.finish()
        assert code == 0, replacement.tail()
        assert json.loads(out)["approved"] == 1
        new = replacement.wait_event("terminal_signed_on")
        assert new["life"] != old["life"] and (old["earlier"], new["earlier"]) == (False, True)

        resumed = proc("terminal-4", args, tmp_path / "terminal-4.log").start()  # its own journal now: resumes
        code, out = resumed.finish()
        assert code == 0, resumed.tail()
        assert resumed.wait_event("terminal_signed_on")["life"] == new["life"]
        assert [e for e in resumed.events() if e.get("event") == "msg_sent" and e.get("mti") == "0200"] == []
        assert acquirer.stop() == 0
    refusals = [e for e in acquirer.events() if e.get("event") in ("duplicate_original", "life_refused",
                                                                    "duplicate_key_conflict")]
    assert refusals == []  # every request of the new life was new to the host: no earlier life's answer
    debits = query(ledger, "SELECT e.stan, e.transmission, k.life FROM entries e JOIN key_lives k "
                           "USING (tid, stan, transmission) WHERE e.kind = 'debit' AND e.tid = ? ORDER BY e.id", TID)
    assert [life for _, _, life in debits] == [old["life"], new["life"]]  # each sale booked once, by its own life
    assert len({(stan, when) for stan, when, _ in debits}) == 2
    assert query(ledger, "SELECT life, earlier, count FROM lives WHERE tid = ?", TID) == [(new["life"], 1, 2)]
    # The first life's answer fell due 5 s after its debit, the terminal killed: no route to it, or,
    # once a newer life had signed on, withheld from that life's connection. Either way recorded as
    # not delivered; the replacement's answer was written to its open connection.
    delivered = query(ledger, "SELECT stan, transmission, delivered FROM deliveries WHERE tid = ?", TID)
    assert sorted((stan, when, flag) for stan, when, flag in delivered) == sorted(
        (stan, when, int(life == new["life"])) for stan, when, life in debits)
    undelivered = [e for e in acquirer.events() if e.get("event") in ("tcp_no_route", "answer_withheld")]
    assert [(e["tid"], e.get("life", old["life"])) for e in undelivered] == [(TID, old["life"])]

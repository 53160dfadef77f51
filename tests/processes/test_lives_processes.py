"""Terminal processes and lives: a lost journal noticed at sign-on, refused, then sold or settled as a
replacement; a terminal answered 77 that signs on again.

Real ``possim terminal``, ``possim settle`` and ``possim acquirer`` processes over TCP, a real ledger
file, a real SIGKILL; for 77, possim's own host served over real TCP in the test, with another device
signing on at the moment the sale arrives. Every wait is on a log line or the end of a process, never
on a guessed time.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from pathlib import Path

import pytest
import tomli_w

from possim.acquirer_sim.host import AcquirerHost, HostAction
from possim.processes import keys
from possim.processes.broker import free_port
from possim.protocol import codec
from possim.protocol import mti as M
from possim.protocol.framing import Deframer
from possim.protocol.messages import Message
from tests.conform_hosts import serving
from tests.procs import POSSIM, check, event_of, fleet, query, run

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


#: One sale answered at once: the terminal that made it ends by itself.
QUICK_SALE = {"title": "One sale", "description": "One sale at a host that answers at once.", "seed": 1,
              "transactions": [{"at": 0, "amount": "12.00"}]}


def test_settle_on_a_lost_journal_refuses_then_settles_as_a_replacement(tmp_path: Path) -> None:
    """``possim settle`` as ``possim terminal``: a new journal for a known id is refused (exit 3, one
    line) unless --replacement; the replacement signs on as a new life and settles its own (empty)
    batch, which the acquirer, still counting the lost journal's sale, answers out of balance."""
    ledger, scenario = tmp_path / "ledger.db", tmp_path / "sale.toml"
    scenario.write_text(tomli_w.dumps(QUICK_SALE), encoding="utf-8")
    url = f"tcp://127.0.0.1:{free_port()}"
    common = [str(scenario), "--transport", "tcp", "--connect", url, "--tid", TID, "--policy", "reversal"]
    with fleet() as proc:
        acquirer = proc("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger)],
                        tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        seller = proc("terminal", ["terminal", *common, "--journal", str(tmp_path / "lost.db")],
                      tmp_path / "terminal.log").start()
        code, out = seller.finish()
        assert (code, json.loads(out)["approved"]) == (0, 1), seller.tail()
        old = seller.wait_event("terminal_signed_on")

        fresh = [*common, "--journal", str(tmp_path / "new.db")]
        refused_log = tmp_path / "settle-refused.log"
        code, out = proc("settle-refused", ["settle", *fresh, "--no-log"], refused_log).start().finish()
        assert (code, out) == (3, "")
        [line] = refused_log.read_text().splitlines()
        assert line.startswith(f"possim: refused: terminal {TID} has no journal") and "--replacement" in line

        settler = proc("settle", ["settle", *fresh, "--replacement"], tmp_path / "settle.log").start()
        code, out = settler.finish()
        assert code == 0, settler.tail()
        assert json.loads(out)["settlement"] == "out of balance after batch upload"
        new = settler.wait_event("terminal_signed_on")
        assert new["life"] != old["life"] and new["earlier"] is True
        sent = [e["mti"] for e in settler.events() if e.get("event") == "msg_sent"]
        assert sent == ["0800", "0500", "0500"]  # a new life, then its (empty) batch: no upload to make
        assert acquirer.stop() == 0
    checked = [e for e in acquirer.events() if e.get("event") == "settlement_checked"]
    assert [(e["terminal_count"], e["host_count"], e["balanced"]) for e in checked] == [(0, 1, False)] * 2
    assert query(ledger, "SELECT life, count FROM lives WHERE tid = ?", TID) == [(new["life"], 2)]
    assert query(ledger, "SELECT kind, amount FROM entries WHERE tid = ?", TID) == [("debit", 1200)]


class _TakenOverHost(AcquirerHost):
    """possim's host, where another device with the terminal's id signs on (life 999999) just before the
    terminal's first sale arrives: the sale is from a life that is no longer current, answered 77."""

    taken_over = False

    def _request(self, now: float, msg: Message) -> list[HostAction]:
        if msg.mti == M.PURCHASE and not self.taken_over:
            self.taken_over = True
            other = Message(mti=M.SIGN_ON, stan="000900", transmission=msg.transmission, tid=msg.tid, mid=msg.mid,
                            life="999999")
            self._sign_on(now, other)
        return super()._request(now, msg)


#: One sale; told it failed, the customer pays again a second later (the operator rings it up again).
RETRIED_SALE = {"title": "A sale rung up again", "description": "The customer pays again after a failed screen.",
                "seed": 1, "transactions": [{"at": 0, "amount": "12.00", "customer_retries": True,
                                             "retry_after": 1}]}


@pytest.mark.asyncio
async def test_a_terminal_process_answered_77_signs_on_again_and_the_sale_rung_up_again_is_charged_once(
        tmp_path: Path) -> None:
    ledger, journal, scenario = tmp_path / "ledger.db", tmp_path / "journal.db", tmp_path / "sale.toml"
    scenario.write_text(tomli_w.dumps(RETRIED_SALE), encoding="utf-8")
    async with serving(_TakenOverHost, ledger) as port:
        done = await run("terminal", str(scenario), "--transport", "tcp", "--connect", f"tcp://127.0.0.1:{port}",
                         "--tid", TID, "--policy", "reversal", "--journal", str(journal), "--insecure")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["transactions"], summary["approved"], summary["failed"]) == (2, 1, 1)
    events = [e for e in map(event_of, done.stderr.splitlines()) if e is not None]
    sent = [e["mti"] for e in events if e.get("event") == "msg_sent"]
    assert sent == ["0800", "0200", "0800", "0200"]  # signed on, 77, signed on afresh, the sale rung up again
    [again] = [e for e in events if e.get("event") == "sign_on_again"]
    lives = [(e["life"], e["earlier"]) for e in events if e.get("event") == "terminal_signed_on"]
    assert len(lives) == 2 and lives[0][0] == lives[1][0] and lives[1][1] is True  # its own life, not refused
    assert query(journal, "SELECT txn_id, status, display, stan FROM journal ORDER BY txn_id") == [
        (1, "failed", "SIGN ON AGAIN - NOT CHARGED", again["stan"]),
        (2, "approved", "APPROVED", query(ledger, "SELECT stan FROM entries")[0][0])]
    assert query(ledger, "SELECT kind, amount FROM entries") == [("debit", 1200)]  # charged once
    assert query(ledger, "SELECT life, count FROM lives WHERE tid = ?", TID) == [(lives[0][0], 3)]
    code, verdict, err = check(journal, ledger)
    assert code == 0 and verdict["settled"] is True, err


def _exchange(port: int, frame: bytes) -> Message:
    """One frame over a fresh raw TCP connection (2-byte length), as a stranger on the network sends it; its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(struct.pack(">H", len(frame)) + frame)
        deframer, answers = Deframer(), []
        while not answers:
            chunk = sock.recv(4096)
            assert chunk, "the acquirer closed the connection without answering"
            answers = deframer.feed(chunk)
    return codec.decode(answers[0])


def test_a_replayed_sign_on_of_an_ended_life_does_not_take_the_terminal_id_back(tmp_path: Path) -> None:
    """A wiretap kept the 0800 of a life that ended (its device was replaced). Sent again from a raw
    socket it would make that life current again: every sale of the terminal now selling would be
    answered 77 (not charged), wallet requests 20000, as long as the stranger repeats it. A sign-on
    the host already took is no new life: refused, nothing changed."""
    ledger, keys_file, scenario = tmp_path / "ledger.db", tmp_path / "keys.json", tmp_path / "sale.toml"
    scenario.write_text(tomli_w.dumps(QUICK_SALE), encoding="utf-8")
    assert subprocess.run([*POSSIM, "keys", "--out", str(keys_file), "--terminal", TID],
                          capture_output=True, check=False).returncode == 0
    key = keys.load(keys_file).mac_key(TID)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    ended = Message(mti=M.SIGN_ON, stan="000001", transmission="1207120000", tid=TID, mid="MERCHANT0000001",
                    currency="978", life="111111")
    captured = codec.encode(ended, key)  # the ended life's genuine sign-on, MAC and all
    with fleet() as proc:
        acquirer = proc("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--keys", str(keys_file)], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        assert _exchange(port, captured).response_code == "00"  # the old device's life begins
        replacement = proc("terminal", ["terminal", str(scenario), "--transport", "tcp", "--connect", url, "--tid",
                                        TID, "--journal", str(tmp_path / "journal.db"), "--keys", str(keys_file),
                                        "--replacement"], tmp_path / "terminal.log").start()
        code, out = replacement.finish()
        assert code == 0 and json.loads(out)["approved"] == 1, replacement.tail()
        life = replacement.wait_event("terminal_signed_on")["life"]
        assert query(ledger, "SELECT life FROM lives WHERE tid = ?", TID) == [(life,)]

        replayed = _exchange(port, captured)
        assert replayed.response_code != "00"
        assert query(ledger, "SELECT life FROM lives WHERE tid = ?", TID) == [(life,)]  # still the replacement's
        refused = acquirer.wait_event("life_refused", tid=TID, stan="000001")
        assert refused["life"] == "111111" and refused["current"] == life
        assert acquirer.stop() == 0

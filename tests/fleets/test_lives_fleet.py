"""A fleet of 20 terminal processes, one SIGKILLed after its debit and restarted with its journal lost.

Real ``possim terminal`` and ``possim acquirer --magic`` processes over TCP, a real ledger file, a
real SIGKILL, real ISO 8583 copies of the killed life's requests. The victim's second sale is a
magic amount (cents 01: "answer-lost"): the host debits it and never hands its answer over, so the
kill lands between debit and delivery for certain, and the till never sees that sale. Its first
sale was answered and completed at the till; only its journal is lost with the kill. ``possim
check`` must tell the two apart from recorded facts: the sale at risk is the one whose answer the
ledger says never left. Every wait is on a log line, the end of a process or an answer on a socket.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import tomli_w

from possim.cli.processes import _LOST_SALE, _LOST_TOTALS
from possim.i18n import Tr
from possim.processes.broker import free_port
from possim.protocol import codec
from possim.protocol.framing import Deframer, frame
from possim.protocol.messages import Message
from tests.procs import POSSIM, fleet, query

FLEET = 20
#: Seconds a wait may take: 21 Python processes start at once on a busy 2-core machine.
SLOW = 240.0
TIDS = [f"POSFLT{n:02d}" for n in range(1, FLEET + 1)]
VICTIM = TIDS[0]
PLAIN = {"title": "Two sales", "description": "Two plain purchases.",
         "transactions": [{"amount": "10.00", "count": 2, "every": 0.3}]}
#: 30.01: the magic host debits it and loses its answer (acquirer_sim.magic, cents 01).
VICTIM_DAY = {"title": "A sale, then one whose answer is lost", "description": "12.00 answered, 30.01 not.",
              "transactions": [{"at": 0, "amount": "12.00"}, {"at": 0.3, "amount": "30.01"}]}
AGAIN = {"title": "One sale", "description": "The replacement's first sale.",
         "transactions": [{"at": 0, "amount": "15.00"}]}


def _write(path: Path, scenario: dict[str, Any]) -> str:
    path.write_text(tomli_w.dumps(scenario), encoding="utf-8")
    return str(path)


def _terminal(url: str, tid: str, scenario: str, journal: Path, *extra: str) -> list[str]:
    return ["terminal", scenario, "--transport", "tcp", "--connect", url, "--tid", tid, "--policy", "reversal",
            "--journal", str(journal), *extra]


def _replay(port: int, requests: list[Message]) -> list[Message]:
    """Send copies of requests on one fresh connection; the host's answer to each, in order."""
    answers: list[Message] = []
    deframer = Deframer()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for request in requests:
            sock.sendall(frame(codec.encode(request)))
            got: list[bytes] = []
            while not got:
                chunk = sock.recv(4096)
                assert chunk, "the host closed the connection instead of answering"
                got = list(deframer.feed(chunk))
            answers.extend(codec.decode(data) for data in got)
    return answers


def _copy(stan: str, transmission: str, pan: str, amount: int, life: str | None) -> Message:
    """A sale request as the ledger booked it, under ``life`` (None: a terminal that did not sign on)."""
    return Message(mti="0200", stan=stan, transmission=transmission, tid=VICTIM, mid="MERCHANT0000001", pan=pan,
                   processing_code="000000", amount=amount, currency="978", life=life)


def _check(journals: Path, ledger: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSSIM, "check", "--journal", str(journals), "--ledger", str(ledger), *extra],
                          capture_output=True, text=True, timeout=60)


def test_fleet_terminal_killed_after_its_debit_loses_its_journal_and_check_names_the_sale_at_risk(
        tmp_path: Path) -> None:
    ledger, journals = tmp_path / "ledger.db", tmp_path / "journals"
    journals.mkdir()
    plain, day, again = (_write(tmp_path / f"{n}.toml", s) for n, s in
                         (("plain", PLAIN), ("victim", VICTIM_DAY), ("again", AGAIN)))
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with fleet() as proc:
        acquirer = proc("acquirer", ["acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger),
                                     "--magic"], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready", SLOW)
        victim = proc(VICTIM, _terminal(url, VICTIM, day, journals / f"{VICTIM}.db"),
                      tmp_path / f"{VICTIM}.log").start()
        others = [proc(tid, _terminal(url, tid, plain, journals / f"{tid}.db"), tmp_path / f"{tid}.log").start()
                  for tid in TIDS[1:]]
        old = victim.wait_event("terminal_signed_on", SLOW)
        lost = acquirer.wait_event("ledger_debit", SLOW, tid=VICTIM, amount=3001)  # committed: the debit is certain
        assert victim.kill() == -9
        answered = [e for e in victim.events() if e.get("event") == "msg_received" and e.get("mti") == "0210"]
        assert [e["stan"] for e in answered if e["stan"] == lost["stan"]] == []  # the till never saw it
        assert len(answered) == 1  # the 12.00 sale: answered, completed at the till
        for other in others:
            code, out = other.finish(SLOW)
            assert code == 0, other.tail()
            assert json.loads(out)["approved"] == 2
        for file in journals.glob(f"{VICTIM}.db*"):  # the journal is lost, write-ahead log and all
            file.unlink()

        # The killed life's two sales as the ledger booked them, sent again as a terminal that lost
        # its journal and did not sign on would send them (no life): refused 77, before any sign-on.
        booked = query(ledger, "SELECT o.stan, o.transmission, o.pan, o.amount FROM originals o JOIN key_lives k "
                               "USING (tid, stan, transmission) WHERE o.tid = ? AND k.life = ? ORDER BY o.stan",
                       VICTIM, old["life"])
        assert [amount for *_, amount in booked] == [1200, 3001]
        bare = [_copy(stan, tx, pan, amount, None) for stan, tx, pan, amount in booked]
        assert [(a.mti, a.stan, a.response_code) for a in _replay(port, bare)] == [("0210", c.stan, "77") for c in bare]

        replacement = proc(f"{VICTIM}-2", _terminal(url, VICTIM, again, journals / f"{VICTIM}.db", "--replacement"),
                           tmp_path / f"{VICTIM}-2.log").start()
        code, out = replacement.finish(SLOW)
        assert code == 0, replacement.tail()
        assert json.loads(out)["approved"] == 1
        new = replacement.wait_event("terminal_signed_on")
        assert new["life"] != old["life"] and new["earlier"] is True

        # After the replacement's sign-on, copies under the killed life's number: refused 77 as well.
        dead = [_copy(stan, tx, pan, amount, old["life"]) for stan, tx, pan, amount in booked]
        assert [(a.mti, a.stan, a.response_code) for a in _replay(port, dead)] == [("0210", c.stan, "77") for c in dead]
        assert acquirer.stop() == 0
    refused = [e for e in acquirer.events() if e.get("event") == "life_refused" and e.get("tid") == VICTIM]
    assert Counter((e["stan"], e.get("life"), e["current"], e["rc"]) for e in refused) == Counter(
        [*((c.stan, None, old["life"], "77") for c in bare), *((c.stan, old["life"], new["life"], "77") for c in dead)])

    # Nothing sold twice: one debit per key, every terminal's sales once, no money moved back.
    debits = query(ledger, "SELECT tid, COUNT(*) FROM entries WHERE kind = 'debit' GROUP BY tid, stan, transmission")
    assert {count for _, count in debits} == {1}
    per_tid = {tid: sum(1 for t, _ in debits if t == tid) for tid in TIDS}
    assert per_tid == {**dict.fromkeys(TIDS[1:], 2), VICTIM: 3}
    assert query(ledger, "SELECT COUNT(*) FROM entries WHERE kind != 'debit'") == [(0,)]
    # The fact the checker judges by: the 12.00 answer left on the victim's connection, the 30.01 one never did.
    delivered = query(ledger, "SELECT stan, transmission, delivered FROM deliveries WHERE tid = ?", VICTIM)
    assert [row for row in delivered if row[:2] in {b[:2] for b in booked}] == [(*booked[0][:2], 1)]

    _judged_from_facts(journals, ledger, VICTIM, old["life"], [(stan, tx) for stan, tx, *_ in booked])


def _judged_from_facts(journals: Path, ledger: Path, tid: str, life: str, keys: list[tuple[str, str]]) -> None:
    """``possim check`` on every journal left (the victim's lost life has none): of that life's two
    sales, the answered one completed at the till, the one whose answer never left really at risk."""
    (done, _), (risky, _) = keys
    judged = _check(journals, ledger, "--json")
    assert judged.returncode == 1, judged.stderr  # money at risk: not settled
    verdict = json.loads(judged.stdout)
    assert verdict["lost_journal"]["at_risk"] == {"sales": 1, "amount": "30.01"}
    assert verdict["lost_journal"]["completed"] == {"sales": 1, "amount": "12.00"}
    assert [(s["stan"], s["life"], s["judgement"]) for s in verdict["lost_journal"]["sales"]] == [
        (done, life, "completed"), (risky, life, "at_risk")]
    assert (verdict["approved"], verdict["double_debits"], verdict["orphaned_debits"], verdict["phantom_approvals"],
            verdict["customer_loss"]) == ((FLEET - 1) * 2 + 1, 0, 1, 0, "30.01")
    texts = {lang: _check(journals, ledger, "--lang", lang).stdout for lang in ("en", "zh")}
    for lang, text in texts.items():
        tr = Tr(lang)
        assert tr(_LOST_SALE["at_risk"], tid=tid, life=life, stan=risky, amount="30.01") in text
        assert tr(_LOST_SALE["completed"], tid=tid, life=life, stan=done, amount="12.00") in text
        assert tr(_LOST_TOTALS, completed=1, completed_amount="12.00", at_risk=1, at_risk_amount="30.01") in text
    assert ("really at risk: debited, terminal never saw the answer: terminal "
            f"{tid} life {life} stan {risky} amount 30.01") in texts["en"]
    assert texts["zh"] != texts["en"]  # the Chinese catalogue answered

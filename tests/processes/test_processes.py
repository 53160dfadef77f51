"""Real processes that lose nothing: terminals and an acquirer killed with SIGKILL, then restarted.

Every process here is a real ``possim`` command talking through a real Mosquitto, with real
SQLite files, killed with a real signal. Tests wait for the processes' structlog lines (read
from their stderr log files) or for ledger rows, never for a guessed amount of time, and
every process is stopped and reaped when the test ends.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from possim.processes.broker import Broker
from possim.protocol.validation import luhn_ok
from tests.conftest import SCENARIOS
from tests.procs import POSSIM, check, fleet, query, wait_for

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
        assert not [e for e in first.events() if e.get("event") == "msg_received"
                    and e.get("mti") != "0810"], "the answer came before the kill"
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


QUEUED = 3000
QUEUE_TIDS = [f"PROCQ{i:03d}" for i in range(1, 11)]


def _card(n: int) -> str:
    """The ``n``-th of a few test card numbers, with its Luhn check digit (the host checks it)."""
    body = f"400000000{n:06d}"
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def _queued_requests() -> list[tuple[str, bytes]]:
    """3,000 distinct, valid purchases (ten terminals, distinct STANs): (topic, ISO 8583 bytes)."""
    from possim.protocol import codec
    from possim.protocol.messages import Message
    from possim.protocol.mqtt import requests_topic

    out = []
    for n in range(QUEUED):
        tid = QUEUE_TIDS[n % len(QUEUE_TIDS)]
        msg = Message(mti="0200", stan=f"{n // len(QUEUE_TIDS) + 1:06d}", transmission="1125100000", tid=tid,
                      pan=_card(n % 7), processing_code="000000", amount=100 + n % 50, currency="978")
        out.append((requests_topic(tid), codec.encode(msg)))
    return out


async def _publish_qos1(url: str, requests: list[tuple[str, bytes]]) -> None:
    """A raw aiomqtt client: every publish is acknowledged by the broker (PUBACK) before this returns."""
    import asyncio

    import aiomqtt

    from possim.protocol.mqtt import BrokerAddress

    address = BrokerAddress.parse(url)
    async with aiomqtt.Client(address.host, address.port, identifier="proc-queue-publisher") as client:
        client.pending_calls_threshold = len(requests)  # 100 in flight at a time is the intent, not a leak
        for i in range(0, len(requests), 100):
            await asyncio.gather(*(client.publish(t, d, qos=1) for t, d in requests[i:i + 100]))


def _wait_for_originals(ledger: Path, expected: int, stall: float = 20.0) -> None:
    """Until the ledger holds ``expected`` originals; a count that stops growing for ``stall``
    seconds short of it fails at once with what was lost (a wait for a deadline would only
    say it took too long)."""
    import time

    progress: dict[str, float] = {"count": -1, "since": time.monotonic()}

    def done() -> bool:
        count = int(query(ledger, "SELECT COUNT(*) FROM originals")[0][0])
        if count != progress["count"]:
            progress.update(count=count, since=time.monotonic())
        assert time.monotonic() - progress["since"] < stall, f"stuck at {count} of {expected} originals"
        return count >= expected

    # Polled gently: each read holds a shared lock the acquirer's next commit must wait out.
    wait_for(done, 300, f"{expected} originals on the ledger", every=0.5)


def _debits(acquirer: Any) -> int:
    return sum(e.get("event") == "ledger_debit" for e in acquirer.events())


def test_queued_qos1_requests_survive_an_acquirer_killed_while_working_through_them(
        own_broker: Broker, tmp_path: Path) -> None:
    """QoS 1 is acknowledged after the ledger commit, so a SIGKILL loses no request and repeats none.

    The kill may land mid-commit; the restarted acquirer recovers its ledger on open.
    """
    import asyncio
    import time

    ledger = tmp_path / "ledger.db"
    args = ["acquirer", "--broker", own_broker.url, "--ledger", str(ledger), "--client-id", "proc-queue-acquirer"]
    with fleet() as proc:
        acquirer = proc("acquirer", args, tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")  # its session now exists on the broker
        assert acquirer.stop() == 0
        asyncio.run(_publish_qos1(own_broker.url, _queued_requests()))
        acquirer.start()
        acquirer.wait_event("acquirer_ready")
        # The kill lands wherever the acquirer is 2 s into the backlog, as in the run; on a
        # fast disk the backlog may be nearly done by then, so the kill comes earlier once a third
        # of it is debited: either way it lands mid-backlog.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _debits(acquirer) < QUEUED // 3:
            time.sleep(0.01)
        assert acquirer.kill() == -9
        before_kill = _debits(acquirer)
        assert 0 < before_kill < QUEUED, f"{before_kill} debits before the kill: it did not land mid-backlog"
        acquirer.start()
        wait_for(lambda: acquirer.logged("acquirer_ready") or acquirer.exit_code() is not None, 60,
                 "the restarted acquirer to be ready or to exit")
        assert acquirer.logged("acquirer_ready"), acquirer.tail()
        _wait_for_originals(ledger, QUEUED)
        assert acquirer.stop() == 0
    originals = query(ledger, "SELECT COUNT(*), COUNT(DISTINCT tid || stan || transmission) FROM originals")
    debits = query(ledger, "SELECT COUNT(*), COUNT(DISTINCT tid || stan || transmission) FROM entries "
                           "WHERE kind = 'debit'")
    assert originals == [(QUEUED, QUEUED)]
    assert debits == [(QUEUED, QUEUED)]
    assert query(ledger, "SELECT COUNT(*) FROM entries WHERE kind != 'debit'") == [(0,)]
    print(f"debits before the kill: {before_kill}; redeliveries absorbed: "
          f"{query(ledger, 'SELECT SUM(duplicates) FROM originals')[0][0]}")


def _sales(path: Path, count: int) -> str:
    """A plain day at the till: ``count`` purchases a third of a second apart, nothing goes wrong."""
    path.write_text(tomli_w.dumps({
        "title": f"{count} sales", "description": "Plain purchases for a terminal id used again.",
        "transactions": [{"amount": "12.50", "count": count, "every": 0.3}]}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("journals", ["same", "new"])
def test_same_terminal_id_run_twice_gets_a_debit_for_every_approved_sale(
        broker: Broker, tmp_path: Path, journals: str) -> None:
    """Keys never repeat: the STAN carries on in the journal and field 7 follows the wall clock.

    ``same``: the second run resumes the first one's journal; the day goes on with three more
    sales, the three already journaled are not paid again. ``new``: the second run starts from
    an empty journal (STAN 000001 again), declared a replacement (without that it would refuse
    to sell: ``tests/processes/test_lives_processes.py``); its new life and the wall clock in field 7 keep
    its keys apart. Each run's sign-on takes a STAN too.
    """
    ledger, tid = tmp_path / "ledger.db", f"PROCT{'S' if journals == 'same' else 'N'}01"
    paths = [tmp_path / "journal-1.db", tmp_path / ("journal-1.db" if journals == "same" else "journal-2.db")]
    three = _sales(tmp_path / "three.toml", 3)
    days = [three, _sales(tmp_path / "six.toml", 6) if journals == "same" else three]
    with fleet() as proc:
        acquirer = proc("acquirer", ["acquirer", "--broker", broker.url, "--ledger", str(ledger), "--client-id",
                                     f"acq-{tid}"], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        for n, (day, journal) in enumerate(zip(days, paths, strict=True), 1):
            again = ["--replacement"] if journals == "new" and n == 2 else []
            term = proc("terminal", ["terminal", day, "--broker", broker.url, "--tid", tid, "--policy", "reversal",
                                     "--journal", str(journal), *again], tmp_path / f"terminal-{n}.log").start()
            code, out = term.finish()
            assert code == 0, term.tail()
            assert json.loads(out)["approved"] == (3 * n if journals == "same" else 3)  # the journal's sales
            [finished] = [e for e in term.events() if e.get("event") == "run_finished"]
            # Its own outcomes only: without the host's ledger it has no verdict on money to give.
            assert finished["approved"] == json.loads(out)["approved"] and finished["pending_reversals"] == 0
            assert not {"phantom_approvals", "orphaned_debits", "double_debits", "merchant_loss",
                        "customer_loss"} & set(finished)
        assert acquirer.stop() == 0
    approved = [row for p in dict.fromkeys(paths)
                for row in query(p, "SELECT tid, stan, transmission FROM journal WHERE status = 'approved'")]
    debited = query(ledger, "SELECT tid, stan, transmission FROM entries WHERE kind = 'debit'")
    assert len(approved) == 6 and len(set(approved)) == 6
    assert sorted(debited) == sorted(approved)
    assert query(ledger, "SELECT COUNT(*) FROM entries WHERE kind != 'debit'") == [(0,)]
    if journals == "new":  # two lives of one terminal id, each with its basket-1..3: six sales, no double debit
        both = subprocess.run([*POSSIM, "check", "--journal", str(paths[0]), "--journal", str(paths[1]),
                               "--ledger", str(ledger), "--json"], capture_output=True, text=True, timeout=60)
        summary = json.loads(both.stdout)
        assert both.returncode == 0, (summary, both.stderr)
        assert (summary["approved"], summary["double_debits"], summary["orphaned_debits"],
                summary["phantom_approvals"], summary["customer_loss"]) == (6, 0, 0, 0, "0.00")
    if journals == "same":
        stans = [s for (s,) in query(paths[0], "SELECT stan FROM journal ORDER BY txn_id")]
        assert stans == [f"{n:06d}" for n in (2, 3, 4, 6, 7, 8)]  # 000001 and 000005: the two sign-ons
        code, summary, err = check(paths[0], ledger)
        assert code == 0, (summary, err)
        assert (summary["approved"], summary["orphaned_debits"], summary["double_debits"],
                summary["phantom_approvals"], summary["pending_reversals"]) == (6, 0, 0, 0, 0)

"""The CUP terminal's day as CUP terminals run it (``dialects.TerminalRules``): batch numbers that
advance after each settlement, packed batch uploads with a batch end and no second 0500, stored
advices tried before settling, reason 06 after a refused reversal, field 38 in the reversal, and
A0 as "sign on again". The ISO terminal's day is checked unchanged alongside."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost, AwaitIssuer
from possim.acquirer_sim.ledger import Ledger
from possim.pos_sim.actions import Action, CloseBatch
from possim.pos_sim.journal import SCHEMA, Journal
from possim.pos_sim.terminal import Terminal
from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol.messages import Message
from tests.acquirer_sim.test_host import purchase_bytes
from tests.helpers import new_host, new_terminal, purchase, replies, sends


def _run(terminal: Terminal, host: Any, actions: list[Action], lose: frozenset[str] = frozenset(),
         now: float = 0.0) -> list[Action]:
    """Play the exchanges to the end (MTIs in ``lose`` never reach the host); every action seen."""
    seen = list(actions)
    while actions:
        now += 1
        out: list[Action] = []
        for send in sends(actions):
            if send.mti not in lose:
                for reply in replies(host.receive(now, send.data)):
                    out += terminal.receive(now, reply.data)
        if not sends(out) and terminal.inflight is not None:
            out += terminal.timer_fired(now + 100, "response")
        actions = out
        seen += actions
    return seen


def _sent(actions: list[Action]) -> list[Message]:
    return [codec.decode(s.data) for s in sends(actions)]


def test_a_cup_day_packs_the_upload_ends_the_batch_and_opens_the_next() -> None:
    """Ten sales: balanced, uploaded anyway (8 + 2 in field 48), a batch end 202, no second 0500;
    the next settlement is batch 2 with nothing of batch 1 in it."""
    terminal, host = new_terminal(profile="cup"), new_host()
    for n in range(1, 11):
        _run(terminal, host, terminal.request_payment(n, purchase(n, amount=100 * n)))
    first = _run(terminal, host, terminal.settle(100))
    sent = _sent(first)
    assert [m.mti for m in sent] == [M.SETTLEMENT, M.BATCH_UPLOAD, M.BATCH_UPLOAD, M.BATCH_UPLOAD]
    assert {m.batch for m in sent} == {"000001"}
    packed = [cup.unpack_uploads(m.uploads or "") for m in sent[1:3]]
    assert [len(p) for p in packed] == [8, 2]
    assert [s.amount for p in packed for s in p] == [100 * n for n in range(1, 11)]
    assert (sent[3].network_code, sent[3].uploads) == (cup.BATCH_END_BALANCED, "0010")
    assert not [a for a in first if isinstance(a, ev.SettlementFailed)], "every upload answered 00"
    assert [a for a in first if isinstance(a, CloseBatch)] == [CloseBatch(2, 0, tuple(range(1, 11)), 1)]
    assert ev.BatchClosed("POS00001", "000001", "000002") in first
    second = _sent(_run(terminal, host, terminal.settle(200), now=200))
    assert [m.mti for m in second] == [M.SETTLEMENT, M.BATCH_UPLOAD]
    assert {m.batch for m in second} == {"000002"}
    assert cup.BatchTotals.from_field48(second[0].batch_totals or "").debit_count == 0
    assert second[1].uploads == "0000" and second[1].network_code == cup.BATCH_END_BALANCED
    assert host.ledger.batch_totals("POS00001") == (0, 0), "the host closed batch 1 at its batch end"


def test_the_batch_number_survives_a_restart_through_the_journal() -> None:
    journal = Journal(":memory:", "POS00001")
    terminal, host = new_terminal(profile="cup"), new_host()
    _run(terminal, host, terminal.request_payment(1, purchase(1)))
    for action in _run(terminal, host, terminal.settle(10)):
        if isinstance(action, CloseBatch):
            journal.close_batch(action.batch, action.settled_through, action.settled, action.closed)
    restarted = new_terminal(profile="cup")
    restarted.resume_batch(*journal.batch(), journal.settled())
    restarted.restore(20, [r.snapshot() for r in terminal.records.values()])
    sent = _sent(_run(restarted, host, restarted.settle(30), now=30))
    assert [(m.mti, m.batch) for m in sent] == [(M.SETTLEMENT, "000002"), (M.BATCH_UPLOAD, "000002")]
    assert journal.batch() == (2, 0) and journal.settled() == {1: 1}


def test_a_sale_approved_after_its_batch_closed_is_in_the_next_batch_whatever_its_id() -> None:
    """Transaction 5 sells; transaction 3's answer is lost and its status query unanswered, so batch 1
    closes without it. Approved later by its status answer, it is in batch 2: the closed batch is the
    set of sales it held, not "every id up to the highest", which would leave 3 out of every batch."""
    journal = Journal(":memory:", "POS00001")
    terminal, host = new_terminal("query", profile="cup", query_interval=1000.0), new_host()
    _run(terminal, host, terminal.request_payment(1, purchase(5, amount=500)))
    [sale] = sends(terminal.request_payment(10, purchase(3, amount=300)))
    host.receive(11, sale.data)  # debited; the answer never reaches the terminal
    assert [m.mti for m in _sent(terminal.timer_fired(40, "response"))] == [M.STATUS_QUERY]
    terminal.timer_fired(70, "response")  # the query goes unanswered: asked again 1000 s later
    assert terminal.records[3].status == "unknown"
    first = _run(terminal, host, terminal.settle(71), now=71)
    assert cup.BatchTotals.from_field48(_sent(first)[0].batch_totals or "").debit_amount == 500
    later = _run(terminal, host, terminal.timer_fired(1100, "retry"), now=1100)
    assert terminal.records[3].status == "approved", later
    second = _run(terminal, host, terminal.settle(1200), now=1200)
    sent = _sent(second)
    assert sent[0].batch == "000002"
    totals = cup.BatchTotals.from_field48(sent[0].batch_totals or "")
    assert (totals.debit_amount, totals.debit_count) == (300, 1)
    closes = [a for a in first + second if isinstance(a, CloseBatch)]
    assert closes == [CloseBatch(2, 0, (5,), 1), CloseBatch(3, 0, (3,), 2)]
    for close in closes:
        journal.close_batch(close.batch, close.settled_through, close.settled, close.closed)
    assert journal.settled() == {5: 1, 3: 2}


def test_stored_advices_are_tried_once_more_before_the_settlement() -> None:
    terminal, host = new_terminal(policy="none", profile="cup", completion_advice=True), new_host()
    _run(terminal, host, terminal.request_payment(1, purchase(1, amount=900, kind="auth")),
         lose=frozenset({M.ADVICE, M.ADVICE_REPEAT}))
    sent = _sent(_run(terminal, host, terminal.settle(500), now=500))
    assert [m.mti for m in sent][:2] == [M.ADVICE_REPEAT, M.SETTLEMENT], "the advice goes before the 0500"
    assert host.ledger.batch_totals("POS00001")[1] == 0 or sent[1].batch_totals is not None


def test_a_refused_reversal_says_06_and_carries_the_authorization_code() -> None:
    """A sale the terminal cancels after the host approved it (as after a chip decline): its reversal
    copies field 38; after a refused try the reason is 06, not 98 again (``MakeReversalPack``)."""
    terminal = new_terminal(profile="cup")
    host = new_host(reversal_answers=("05",))
    actions = terminal.request_payment(1, purchase(1))
    sale = _sent(actions)[0]
    reply = replies(host.receive(1, sends(actions)[0].data))[0]
    approved = codec.decode(reply.data)
    txn = terminal.records[1]
    txn.auth_code = approved.auth_code  # the answer came, but the terminal still cancels the sale
    terminal.inflight = None
    seen = _run(terminal, host, terminal.reverse(2, txn) + terminal.timer_fired(2, "retry"), now=2)
    seen += _run(terminal, host, terminal.timer_fired(10_000, "retry"), now=10_000)  # after the backoff
    reversals = [m for m in _sent(seen) if m.mti == M.REVERSAL]
    assert [m.response_code for m in reversals] == ["98", "06"]
    assert {m.auth_code for m in reversals} == {approved.auth_code}
    assert {m.stan for m in reversals} == {sale.stan}


def test_a0_makes_a_signed_on_cup_terminal_sign_on_again() -> None:
    terminal = new_terminal(profile="cup", life="000007")
    sign_on = terminal.start(0)
    assert _sent(sign_on)[0].mti == M.SIGN_ON and _sent(sign_on)[0].batch == "000001"
    signed = codec.decode(replies(new_host().receive(0, sends(sign_on)[0].data))[0].data)
    terminal.receive(1, codec.encode(signed, dialect="cup"))
    sale = terminal.request_payment(2, purchase(1))
    request = _sent(sale)[0]
    answer = codec.encode(request.response("A0"), dialect="cup")
    after = terminal.receive(3, answer)
    assert any(isinstance(a, ev.SignOnAgain) for a in after)
    assert [codec.decode(s.data).mti for s in sends(after)] == [M.SIGN_ON]


def test_the_iso_terminal_keeps_its_day() -> None:
    """No batch number, no packed upload, no batch end: balanced is one 0500."""
    terminal, host = new_terminal(), new_host()
    _run(terminal, host, terminal.request_payment(1, purchase(1)))
    seen = _run(terminal, host, terminal.settle(10))
    assert [(m.mti, m.batch) for m in _sent(seen)] == [(M.SETTLEMENT, None)]
    assert not [a for a in seen if isinstance(a, CloseBatch)]


def test_the_host_reads_packed_sales_by_trace_and_card_and_refuses_a_bad_field_48() -> None:
    host = new_host()
    terminal = new_terminal(profile="cup")
    _run(terminal, host, terminal.request_payment(1, purchase(1, amount=700)))
    sale = terminal.records[1]
    packed = cup.pack_uploads([cup.UploadedSale(sale.stan, sale.pan, 700),
                               cup.UploadedSale("000099", sale.pan, 100)])
    upload = Message(mti=M.BATCH_UPLOAD, stan="000050", transmission="1125120000", tid="POS00001",
                     batch="000001", uploads=packed)
    actions = host.receive(5, codec.encode(upload, dialect="cup"))
    received = [a for a in actions if isinstance(a, ev.BatchUploadReceived)]
    assert [(r.orig_stan, r.outcome) for r in received] == [(sale.stan, "matched"), ("000099", "unknown")]
    assert codec.decode(replies(actions)[0].data).response_code == "00"
    bad = host.receive(6, codec.encode(Message(mti=M.BATCH_UPLOAD, stan="000051", transmission="1125120001",
                                               tid="POS00001", batch="000001", uploads="01" + "0" * 39),
                                       dialect="cup"))
    assert codec.decode(replies(bad)[0].data).response_code == "30"
    assert host.ledger.conn.execute("SELECT COUNT(*) FROM batch_uploads").fetchone() == (1,)


def test_a_journal_from_before_batch_sales_opens_and_keeps_its_boundary(tmp_path: Path) -> None:
    """A journal written when a closed batch was kept as its highest transaction id (no ``batch_sales``
    table) opens: the table is added, and the sales up to the old boundary stay settled."""
    path = tmp_path / "old.db"
    old_schema = SCHEMA[:SCHEMA.index("CREATE TABLE IF NOT EXISTS batch_sales")]
    with sqlite3.connect(path) as conn:
        conn.executescript(old_schema)
        conn.execute("INSERT INTO batches VALUES ('POS00001', 2, 1)")
    conn.close()
    terminal, host = new_terminal(profile="cup"), new_host()
    _run(terminal, host, terminal.request_payment(1, purchase(1, amount=100)))
    _run(terminal, host, terminal.request_payment(2, purchase(2, amount=200)), now=10)
    journal = Journal(path, "POS00001")
    assert journal.batch() == (2, 1) and journal.settled() == {}
    restarted = new_terminal(profile="cup")
    restarted.resume_batch(*journal.batch(), journal.settled())
    restarted.restore(20, [r.snapshot() for r in terminal.records.values()])
    sent = _sent(_run(restarted, host, restarted.settle(30), now=30))
    totals = cup.BatchTotals.from_field48(sent[0].batch_totals or "")
    assert (sent[0].batch, totals.debit_amount, totals.debit_count) == ("000002", 200, 1)
    journal.close()


class _Recording:
    """The host, keeping every action it returned (its trace events among them)."""

    def __init__(self, host: Any) -> None:
        self.host, self.actions = host, list[object]()

    def receive(self, now: float, data: bytes) -> list[object]:
        out = self.host.receive(now, data)
        self.actions += out
        return list(out)


def test_the_timeline_shows_the_batch_closing_on_both_sides_in_english_and_chinese() -> None:
    from possim.i18n import Tr
    from possim.views.timeline import rows

    terminal, host = new_terminal(profile="cup"), _Recording(new_host())
    _run(terminal, host, terminal.request_payment(1, purchase(1, amount=100)))
    seen = _run(terminal, host, terminal.settle(10), now=10)
    records = [ev.Stamped(0.0, e) for e in [*seen, *host.actions]
               if isinstance(e, ev.BatchClosed | ev.BatchEndReceived)]
    assert len(records) == 2
    english = [cell for r in rows(records) for cell in r[1:] if cell]
    assert english == ["batch 000001 closed: sales now go into batch 000002",
                       "batch end of batch 000001 (1 uploaded): 1 sale(s) settled"]
    chinese = [cell for r in rows(records, Tr("zh")) for cell in r[1:] if cell]
    assert chinese == ["批次 000001 已结束：此后的交易计入批次 000002",  # noqa: RUF001
                       "批次 000001 批上送结束（上送 1 笔）：1 笔交易已结算"]  # noqa: RUF001


def _run_cup_host(terminal: Terminal, host: Any, actions: list[Action], now: float) -> tuple[list[Action], list[Any]]:
    """Play the exchanges with a ``cup`` host, its issuer answering at once: (terminal's actions, host's)."""
    seen, heard = list(actions), []
    while actions:
        now += 1
        out: list[Action] = []
        for send in sends(actions):
            answered = host.receive(now, send.data)
            for wait in [a for a in answered if isinstance(a, AwaitIssuer)]:
                answered += host.issuer_answered(now, wait.key)
            heard += answered
            for reply in replies(answered):
                out += terminal.receive(now, reply.data)
        actions = out
        seen += actions
    return seen, heard


def _balanced(heard: list[Any]) -> list[bool]:
    return [a.balanced for a in heard if isinstance(a, ev.SettlementChecked)]


def test_a_sale_the_issuer_approves_while_its_batch_settles_is_settled_in_the_same_batch_on_both_sides() -> None:
    """Sale 3 (batch 1 in 60.2) waits for the issuer through batch 1's 0500 and is approved before the
    batch end; its answer is lost, so the terminal settles batch 1 without it and, told later by its
    status query, counts it in batch 2. The host's batch end settles what batch 1's 0500 compared and
    keeps sale 3 open for batch 2: both batches balance (before, the batch end swept sale 3 into batch 1)."""
    terminal, host = new_terminal("query", profile="cup", query_interval=1000.0), new_host(profile="cup")
    _run_cup_host(terminal, host, terminal.request_payment(1, purchase(5, amount=500)), now=1)
    [sale] = sends(terminal.request_payment(10, purchase(3, amount=300)))
    assert codec.decode(sale.data).batch == "000001"
    [wait] = [a for a in host.receive(11, sale.data) if isinstance(a, AwaitIssuer)]
    terminal.timer_fired(40, "response")  # its status query is lost
    terminal.timer_fired(70, "response")
    assert terminal.records[3].status == "unknown"
    [totals] = sends(terminal.settle(71))
    checked = host.receive(72, totals.data)
    assert replies(host.issuer_answered(73, wait.key)), "approved: the answer is lost on its way"
    first, heard = _run_cup_host(terminal, host, terminal.receive(74, replies(checked)[0].data), now=74)
    assert _balanced(checked) == [True]
    assert [m.network_code for m in _sent(first)] == [None, cup.BATCH_END_BALANCED]
    _run_cup_host(terminal, host, terminal.timer_fired(1100, "retry"), now=1100)
    assert terminal.records[3].status == "approved"
    second, heard = _run_cup_host(terminal, host, terminal.settle(1200), now=1200)
    sent = _sent(second)
    assert sent[0].batch == "000002"
    assert cup.BatchTotals.from_field48(sent[0].batch_totals or "").debit_amount == 300
    assert _balanced(heard) == [True], "the host's batch 2 holds sale 3 too"
    assert sent[-1].network_code == cup.BATCH_END_BALANCED
    settled = host.ledger.conn.execute("SELECT stan, batch FROM settled ORDER BY batch").fetchall()
    assert [batch for _, batch in settled] == ["000001", "000002"]
    assert host.ledger.batch_totals("POS00001") == (0, 0)


def test_a_sale_carrying_a_later_batch_waits_for_it_and_an_iso_settlement_counts_every_open_sale() -> None:
    """A 0500 of batch 1 leaves out a sale that carried batch 2; one without 60.2 (ISO) counts it."""
    terminal, host = new_terminal(profile="cup"), new_host(profile="cup")
    _run_cup_host(terminal, host, terminal.request_payment(1, purchase(1, amount=100)), now=1)
    terminal.batch_number = 2
    _run_cup_host(terminal, host, terminal.request_payment(10, purchase(2, amount=100)), now=10)
    assert host.ledger.batch_totals("POS00001", batch="000001") == (100, 1)
    assert host.ledger.batch_totals("POS00001", batch="000002") == (200, 2)
    assert host.ledger.batch_totals("POS00001") == (200, 2)


def test_a_ledger_from_before_sale_batches_opens_and_settles_as_before(tmp_path: Path) -> None:
    """A ledger file written before ``sale_batches`` and ``batch_checks`` existed gains them when opened; its
    sales, which carried no batch number as far as it knows, are counted and settled by the next batch end."""
    path = tmp_path / "ledger.db"
    host = AcquirerHost(HostConfig(), Ledger(path), random.Random(0))
    host.receive(1, purchase_bytes(amount=100))
    host.ledger.conn.executescript("DROP TABLE sale_batches; DROP TABLE batch_checks")
    host.ledger.close()
    reopened = Ledger(path)
    try:
        assert reopened.batch_totals("POS00001", batch="000001") == (100, 1)
        assert reopened.close_batch(2, "POS00001", "000001") == 1
        assert reopened.batch_totals("POS00001", batch="000002") == (0, 0)
    finally:
        reopened.close()

"""Terminal lives: the sign-on (0800) with a life number, what the host accepts from which life,
and a terminal on a new journal that refuses to sell for an id the host knows.

Real ISO 8583 and CUP bytes between the sans-IO terminal and host, a real (in-memory) SQLite ledger.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from possim.acquirer_sim.host import EARLIER_LIFE, FIRST_LIFE, SIGN_ON_AGAIN, AcquirerHost
from possim.i18n import Tr
from possim.judging.checker import check, lost_journal_totals
from possim.pos_sim.actions import ConfirmLife, Outcome
from possim.pos_sim.exchanges import SIGN_ON_AGAIN_DISPLAY
from possim.pos_sim.journal import Journal
from possim.pos_sim.records import ReversalState, SaleStatus
from possim.pos_sim.terminal import RESPONSE_TIMER, Terminal
from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol.messages import Message
from possim.running.trace import Trace
from possim.scenario import load
from possim.simulation import simulate
from possim.views.timeline import rows
from tests.conftest import SCENARIOS
from tests.helpers import new_host, new_terminal, purchase, replies, sends

TID = "POS00001"


def _sale(stan: str, transmission: str = "1125100000", life: str | None = None, amount: int = 1200) -> Message:
    return Message(mti="0200", stan=stan, transmission=transmission, tid=TID, mid="MERCHANT0000001",
                   pan="4000000000000002", processing_code="000000", amount=amount, currency="978", life=life)


def _sign_on(life: str, stan: str = "000001", transmission: str = "1125095900") -> Message:
    return Message(mti="0800", stan=stan, transmission=transmission, tid=TID, mid="MERCHANT0000001", life=life)


def _ask(host: AcquirerHost, msg: Message, now: float = 0.0) -> tuple[Message, bool, list[object]]:
    actions = host.receive(now, codec.encode(msg))
    [reply] = replies(actions)
    return codec.decode(reply.data), reply.fresh, [a for a in actions if isinstance(a, ev.Event)]


def _debits(host: AcquirerHost) -> list[tuple[str, int]]:
    return host.ledger.conn.execute("SELECT stan, amount FROM entries WHERE kind = 'debit' ORDER BY id").fetchall()


@pytest.mark.parametrize("dialect", ["iso", "cup"])
def test_life_travels_in_field_60_and_only_when_set(dialect: str) -> None:
    signed = _sign_on("123456")
    data = codec.encode(signed, None, dialect)
    assert codec.decode(data).life == "123456"
    assert codec.decode(codec.encode(_sale("000002", life="654321"), None, dialect)).life == "654321"
    plain = codec.encode(_sale("000002"), None, dialect)
    assert codec.decode(plain).life is None
    if dialect == "cup":  # 60.1 "00", 60.2 the batch (none here), 60.3 001 sign-on, then possim's life
        assert cup.decode_fields(data)["60"] == "00" + "000000" + "001" + "123456"
        assert cup.decode_fields(plain)["60"] == "22" + "000000" + "000", "every CUP message has field 60"
    else:
        assert b"011123456" not in plain and codec.encode(signed).endswith(b"006123456")


def test_first_sign_on_is_first_life_and_a_copy_of_it_is_not_fresh() -> None:
    host = new_host()
    answer, fresh, events = _ask(host, _sign_on("111111"))
    assert (answer.mti, answer.response_code, answer.status, fresh) == ("0810", "00", FIRST_LIFE, True)
    assert [type(e) for e in events] == [ev.SignOnAnswered]
    again, fresh_again, _ = _ask(host, _sign_on("111111"))
    assert (again.status, fresh_again) == (FIRST_LIFE, False)
    resumed, fresh_resumed, _ = _ask(host, _sign_on("111111", stan="000007", transmission="1125110000"))
    assert (resumed.status, fresh_resumed) == (FIRST_LIFE, False)  # the same life resuming: nothing new
    assert host.ledger.conn.execute("SELECT life, stan, count FROM lives").fetchall() == [("111111", "000001", 1)]


def test_a_new_life_is_told_of_the_earlier_one_and_old_life_requests_are_refused() -> None:
    host = new_host()
    _ask(host, _sign_on("111111"))
    first, fresh, _ = _ask(host, _sale("000002", life="111111"))
    assert (first.response_code, fresh) == ("00", True)
    answer, _, events = _ask(host, _sign_on("222222"))
    assert answer.status == EARLIER_LIFE
    assert [e.previous for e in events if isinstance(e, ev.SignOnAnswered)] == ["111111"]
    # a copy of the earlier life's sale (a replay, a late redelivery): refused, not its stored answer
    old, old_fresh, events = _ask(host, _sale("000002", life="111111"))
    assert (old.response_code, old_fresh) == (SIGN_ON_AGAIN, False)
    assert [(e.life, e.current) for e in events if isinstance(e, ev.LifeRefused)] == [("111111", "222222")]
    # a request without a life from an id that signs on: refused as well
    bare, _, _ = _ask(host, _sale("000003", transmission="1125100100"))
    assert bare.response_code == SIGN_ON_AGAIN
    assert _debits(host) == [("000002", 1200)]


def test_a_new_life_reusing_an_earlier_lifes_key_gets_no_earlier_answer() -> None:
    """The new life starts again at STAN 000001 with a clock set back: the same key, same sale."""
    host = new_host()
    _ask(host, _sign_on("111111"))
    _ask(host, _sale("000002", life="111111"))
    _ask(host, _sign_on("222222", stan="000001", transmission="1125095901"))
    again, fresh, events = _ask(host, _sale("000002", life="222222"))
    assert (again.response_code, fresh) == ("94", False)
    assert [type(e) for e in events] == [ev.DuplicateKeyConflict]
    fresh_sale, _, _ = _ask(host, _sale("000002", transmission="1125100500", life="222222"))
    assert fresh_sale.response_code == "00"
    assert _debits(host) == [("000002", 1200), ("000002", 1200)]  # two sales, each booked once


def test_sign_on_of_an_id_with_sales_from_before_lives_says_earlier_life() -> None:
    host = new_host()
    _ask(host, _sale("000001"))  # a terminal that never signed on
    answer, _, _ = _ask(host, _sign_on("333333"))
    assert answer.status == EARLIER_LIFE


def test_ids_that_never_signed_on_are_served_as_before() -> None:
    host = new_host()
    answer, fresh, _ = _ask(host, _sale("000001"))
    assert (answer.response_code, fresh) == ("00", True)
    repeat, repeat_fresh, _ = _ask(host, _sale("000001"))
    assert (repeat.response_code, repeat_fresh) == ("00", False)  # the stored answer, but no binding


def _signed_on(term: Terminal, host: AcquirerHost, now: float = 0.0) -> list[object]:
    """Start the terminal and carry its sign-on to the host and back; the terminal's actions."""
    [signon] = sends(term.start(now))
    assert signon.mti == "0800"
    [reply] = replies(host.receive(now, signon.data))
    return list(term.receive(now, reply.data))


def test_terminal_signs_on_first_then_carries_its_life() -> None:
    host, term = new_host(), new_terminal(life="444444")
    actions = _signed_on(term, host)
    assert ConfirmLife("444444") in actions
    assert [e.earlier for e in actions if isinstance(e, ev.TerminalSignedOn)] == [False]
    [sale] = sends(term.request_payment(1.0, purchase()))
    assert codec.decode(sale.data).life == "444444"


def test_terminal_on_a_new_journal_refuses_to_sell_for_a_known_id() -> None:
    host = new_host()
    _ask(host, _sign_on("111111"))
    term = new_terminal(life="555555", new_journal=True)
    [signon] = sends(term.request_payment(0.0, purchase()))  # the customer waits behind the sign-on
    [reply] = replies(host.receive(0.0, signon.data))
    actions = term.receive(0.0, reply.data)
    assert term.halted is not None and "earlier life" in term.halted
    assert [type(a) for a in actions if isinstance(a, ev.Event | ConfirmLife)] == [
        ev.TerminalRefusedToSell]
    assert not sends(actions)
    assert term.idle and not term.request_payment(1.0, purchase(2))
    assert _debits(host) == []


def test_terminal_resuming_its_journal_sells_after_the_host_knew_it() -> None:
    host = new_host()
    _ask(host, _sign_on("111111"))
    term = new_terminal(life="111111")  # the same life, from its own journal
    _signed_on(term, host)
    assert term.halted is None and sends(term.request_payment(1.0, purchase()))


def test_a_replacement_sells_on_a_new_journal() -> None:
    host = new_host()
    _ask(host, _sign_on("111111"))
    term = new_terminal(life="666666", new_journal=True, replacement=True)
    actions = _signed_on(term, host)
    assert term.halted is None
    assert [e.earlier for e in actions if isinstance(e, ev.TerminalSignedOn)] == [True]
    [sale] = sends(term.request_payment(1.0, purchase()))
    [reply] = replies(host.receive(1.0, sale.data))
    assert codec.decode(reply.data).response_code == "00"


def test_an_unanswered_sign_on_is_repeated_before_any_sale() -> None:
    term = new_terminal(life="777777")
    [first] = sends(term.start(0.0))
    term.request_payment(0.5, purchase())
    assert not sends(term.timer_fired(30.0, RESPONSE_TIMER))  # backoff first
    [again] = sends(term.timer_fired(40.0, "retry"))
    assert (first.mti, again.mti) == ("0800", "0800") and again.stan != first.stan


def test_without_a_life_nothing_changes() -> None:
    term = new_terminal()
    [sale] = sends(term.request_payment(0.0, purchase()))
    assert sale.mti == "0200" and codec.decode(sale.data).life is None
    assert replace(term.config, life=None) == term.config


@pytest.mark.parametrize("name", ["request-lost", "response-lost", "reversal-lost", "duplicate-request",
                                  "terminal-power-loss", "confirmation-lost", "issuer-timeout",
                                  "card-failed-then-qr", "qr-network-drop"])
def test_in_memory_runs_that_sign_on_keep_their_verdicts(name: str) -> None:
    """The sign-on adds an exchange, nothing else: the same money, the same findings (wallet requests
    carry the life too, and the gateway accepts them)."""
    scenario = load(SCENARIOS / f"{name}.toml")
    plain, signed = simulate(scenario), simulate(scenario, sign_on=True)
    assert signed.verdict.summary() == plain.verdict.summary() and signed.quiescent
    events = [s.event for s in signed.trace.records]
    assert any(isinstance(e, ev.TerminalSignedOn) for e in events)
    assert any(isinstance(e, ev.SignOnAnswered) for e in events)
    assert not any(isinstance(e, ev.TerminalSignedOn | ev.SignOnAnswered) for e in
                   (s.event for s in plain.trace.records))
    assert not any(isinstance(e, ev.LifeRefused | ev.SignOnAgain) for e in events)
    assert "signed on as life" in "\n".join(" ".join(map(str, row)) for row in rows(signed.trace.records))


def test_in_memory_lost_journal_is_refused_then_sold_as_a_replacement(tmp_path: Path) -> None:
    scenario, ledger = load(SCENARIOS / "response-lost.toml"), tmp_path / "ledger.db"
    first = simulate(scenario, ledger_path=ledger, journal_path=tmp_path / "journal-1.db", sign_on=True)
    assert first.refused is None and first.verdict.summary()["transactions"] == 1
    lost = simulate(scenario, ledger_path=ledger, journal_path=tmp_path / "journal-2.db", sign_on=True)
    assert lost.refused is not None and "earlier life" in lost.refused
    assert lost.verdict.summary()["transactions"] == 0
    again = simulate(scenario, ledger_path=ledger, journal_path=tmp_path / "journal-2.db", sign_on=True,
                     replacement=True)
    assert again.refused is None and again.verdict.summary()["transactions"] == 1


# -- 77 "sign on again": another life signed on since ----------------------------------------------


def _deliver(term: Terminal, host: AcquirerHost, actions: list[object], now: float) -> list[object]:
    """Carry the terminal's one request in ``actions`` to the host and its answer back; the terminal's actions."""
    [request] = sends(actions)  # type: ignore[arg-type]
    [reply] = replies(host.receive(now, request.data))
    return list(term.receive(now, reply.data))


def _taken_over(host: AcquirerHost) -> None:
    """Another life of the same terminal id signs on at the host (a second device, a replacement)."""
    answer, fresh, _ = _ask(host, _sign_on("999999", stan="000500", transmission="1125120000"))
    assert (answer.response_code, fresh) == ("00", True)


def _outcomes(actions: list[object]) -> list[tuple[int, str, str]]:
    return [(a.txn_id, str(a.status), a.display) for a in actions if isinstance(a, Outcome)]


@pytest.mark.parametrize("new_journal", [False, True])
def test_a_sale_answered_77_is_not_charged_and_the_terminal_signs_on_again(new_journal: bool) -> None:
    host, term = new_host(), new_terminal(life="444444", new_journal=new_journal)
    _signed_on(term, host)
    _taken_over(host)
    [first] = sends(term.request_payment(1.0, purchase(1, amount=1200)))
    [reply] = replies(host.receive(1.0, first.data))
    assert codec.decode(reply.data).response_code == SIGN_ON_AGAIN
    actions = list(term.receive(1.0, reply.data))
    assert _outcomes(actions) == [(1, "failed", SIGN_ON_AGAIN_DISPLAY)]
    assert [(e.stan, e.txn) for e in actions if isinstance(e, ev.SignOnAgain)] == [(first.stan, 1)]
    assert term.records[1].reversal is ReversalState.NONE  # nothing was booked: nothing to reverse
    [signon] = sends(actions)  # the fresh sign-on, under the terminal's own life, and nothing else
    assert (signon.mti, codec.decode(signon.data).life) == ("0800", "444444")
    signed = _deliver(term, host, actions, 2.0)
    # the host knew another life (999999) since: a terminal that already sold under its life is no lost journal
    assert [e.earlier for e in signed if isinstance(e, ev.TerminalSignedOn)] == [True]
    assert term.halted is None and not sends(signed)  # the sale is not sent again by itself
    retry = _deliver(term, host, term.request_payment(3.0, purchase(2, amount=1200)), 3.0)  # the operator rings it up
    assert _outcomes(retry) == [(2, "approved", "APPROVED")]
    assert term.records[2].stan not in (first.stan, signon.stan)
    assert _debits(host) == [(term.records[2].stan, 1200)]  # charged once, by the sale rung up again


def test_without_a_life_a_77_is_a_decline_as_before() -> None:
    host, term = new_host(), new_terminal()
    _taken_over(host)  # the id signs on elsewhere; this terminal never signs on
    actions = _deliver(term, host, term.request_payment(0.0, purchase()), 0.0)
    assert _outcomes(actions) == [(1, "declined", "DECLINED (77)")]
    assert not sends(actions) and not any(isinstance(a, ev.SignOnAgain) for a in actions)


def test_a_reversal_answered_77_is_repeated_after_signing_on_and_credits_once() -> None:
    host, term = new_host(), new_terminal(life="444444")
    _signed_on(term, host)
    [sale] = sends(term.request_payment(1.0, purchase(1, amount=1200)))
    host.receive(1.0, sale.data)  # debited; the answer is lost
    [reversal] = sends(term.timer_fired(31.0, RESPONSE_TIMER))
    _taken_over(host)
    actions = _deliver(term, host, [reversal], 31.0)
    assert any(isinstance(a, ev.SignOnAgain) for a in actions)
    assert [a.reason for a in actions if isinstance(a, ev.ReversalRetryScheduled)] == ["answered 77"]
    assert [s.mti for s in sends(actions)] == ["0800"]  # signs on before the reversal goes again
    assert not sends(_deliver(term, host, actions, 32.0))  # the reversal waits for its backoff
    [again] = sends(term.timer_fired(40.0, "retry"))
    assert again.mti == "0401"
    done = _deliver(term, host, [again], 40.0)
    assert any(isinstance(a, ev.ReversalAcknowledged) for a in done)
    kinds = host.ledger.conn.execute("SELECT kind, amount FROM entries ORDER BY id").fetchall()
    assert kinds == [("debit", 1200), ("credit", 1200)]


def test_a_status_query_answered_77_is_no_answer_about_the_sale() -> None:
    host, term = new_host(), new_terminal("query", life="444444")
    _signed_on(term, host)
    [sale] = sends(term.request_payment(1.0, purchase(1, amount=1200)))
    host.receive(1.0, sale.data)  # debited; the answer is lost
    [query] = sends(term.timer_fired(31.0, RESPONSE_TIMER))
    _taken_over(host)
    actions = _deliver(term, host, [query], 31.0)
    assert not _outcomes(actions)  # not "failed, not found": the host said nothing about the sale
    assert term.records[1].status is SaleStatus.UNKNOWN
    _deliver(term, host, actions, 32.0)  # the sign-on
    [again] = sends(term.timer_fired(41.0, "retry"))
    assert _outcomes(_deliver(term, host, [again], 41.0)) == [(1, "approved", "APPROVED (after status check)")]


def test_a_settlement_answered_77_is_sent_again_after_signing_on() -> None:
    host, term = new_host(), new_terminal(life="444444")
    _signed_on(term, host)
    _deliver(term, host, term.request_payment(1.0, purchase(1, amount=1200)), 1.0)
    _taken_over(host)
    actions = _deliver(term, host, term.settle(2.0), 2.0)
    assert [s.mti for s in sends(actions)] == ["0800"]
    settled = _deliver(term, host, _deliver(term, host, actions, 3.0), 3.0)
    assert [(e.balanced, e.final) for e in settled if isinstance(e, ev.SettlementAnswered)] == [(True, False)]


def test_the_tills_qr_terminal_told_to_sign_on_again_makes_the_device_sign_on() -> None:
    host, term = new_host(), new_terminal(life="444444")
    _signed_on(term, host)
    _taken_over(host)
    [signon] = sends(term.sign_on_again(5.0))
    assert (signon.mti, codec.decode(signon.data).life) == ("0800", "444444")
    assert not sends(term.sign_on_again(5.5))  # one sign-on at a time
    assert not sends(term.request_payment(6.0, purchase()))  # the customer waits behind it
    [sale] = sends(_deliver(term, host, [signon], 7.0))
    assert sale.mti == "0200" and not term.halted
    assert not sends(new_terminal().sign_on_again(0.0))  # a terminal without a life has nothing to sign on with


@pytest.mark.parametrize(("lang", "said"), [("en", "says sign on again (77)"), ("zh", "要求重新签到")])
def test_the_timeline_tells_the_77_and_the_screen_in_the_readers_language(lang: str, said: str) -> None:
    trace = Trace(lambda: 1.0)
    trace.emit(ev.SignOnAgain("0210", "000002", TID, txn=1))
    trace.emit(ev.TxnOutcome(TID, 1, SaleStatus.FAILED, SIGN_ON_AGAIN_DISPLAY))
    text = "\n".join(" ".join(map(str, row)) for row in rows(trace.records, Tr(lang)))
    assert said in text
    assert ("SIGN ON AGAIN - NOT CHARGED" if lang == "en" else "请重新签到 - 未扣款") in text
    assert not {m for m in Tr.missing if m[0] == lang}

def test_a_lost_lifes_sales_are_judged_by_whether_their_answer_was_delivered() -> None:
    """Two sales of life 111111, whose journal is lost: one answered on an open route (the till
    completed it), one whose answer never left. Judged against the replacement's journal only,
    the first is no damage, the second is really at risk: an orphaned debit and customer loss."""
    host = new_host()
    _ask(host, _sign_on("111111"))
    _ask(host, _sale("000002", life="111111"))
    _ask(host, _sale("000003", transmission="1125100100", life="111111", amount=3001))
    host.delivered(1.0, (TID, "000002", "1125100000"), True)
    host.delivered(1.0, (TID, "000003", "1125100100"), False)
    host.delivered(2.0, (TID, "000003", "1125100100"), False)  # a second try finds no route either
    _ask(host, _sign_on("222222", stan="000001", transmission="1125110000"))
    assert host.ledger.conn.execute("SELECT stan, delivered, attempts FROM deliveries ORDER BY stan").fetchall() == [
        ("000002", 1, 1), ("000003", 0, 2)]
    journal = Journal(tid=TID)  # the replacement's: life 222222, no sale yet
    journal.begin_life("222222", True)
    verdict = check(journal.conn, host.ledger.conn)
    assert [(s.key[1], s.life, s.amount, s.judgement) for s in verdict.lost_journal] == [
        ("000002", "111111", 1200, "completed"), ("000003", "111111", 3001, "at_risk")]
    assert lost_journal_totals(verdict.lost_journal) == {"completed": {"sales": 1, "amount": "12.00"},
                                                         "at_risk": {"sales": 1, "amount": "30.01"}}
    assert (verdict.counts["orphaned_debits"], verdict.customer_loss) == (1, 3001)
    assert [(f.finding, f.key[1]) for f in verdict.findings] == [("orphaned_debit", "000003")]
    # With the lost life's journal given back (its life, no rows: the sales were lost with it), they
    # are that journal's business again: money no journaled sale owns, as before.
    both = Journal(tid=TID)
    both.begin_life("111111", False)
    again = check([journal.conn, both.conn], host.ledger.conn)
    assert again.lost_journal == [] and again.counts["orphaned_debits"] == 2


def test_an_answer_due_after_a_newer_life_signed_on_is_withheld() -> None:
    """A killed terminal's sale, answered late: its restart signed on meanwhile, so the answer would
    reach the new life's connection, which never asked. The host withholds it (not delivered)."""
    host = new_host()
    _ask(host, _sign_on("111111"))
    [old] = replies(host.receive(0.0, codec.encode(_sale("000002", life="111111"))))
    assert old.answers == (TID, "000002", "1125100000") and host.withheld(old) is None  # its life is current
    _ask(host, _sign_on("222222", stan="000001", transmission="1125110000"))
    withheld = host.withheld(old)
    assert withheld is not None and (withheld.life, withheld.current, withheld.stan) == ("111111", "222222", "000002")
    [new] = replies(host.receive(1.0, codec.encode(_sale("000002", transmission="1125110100", life="222222"))))
    assert host.withheld(new) is None
    [refusal] = replies(host.receive(1.0, codec.encode(_sale("000003", life="111111"))))
    assert refusal.answers is None and host.withheld(refusal) is None  # a 77 answers no booked sale

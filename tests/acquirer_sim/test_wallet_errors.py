"""The wallet gateway's system errors, cancel windows and cancel flags, and the QR terminal's
answers to them: a system error is never taken for a failure by the recovering policies, a
cancel is repeated on retry_flag/recall Y, and a cancel refused as past its window becomes a
refund. Real SQLite ledgers and journals; real runs of the shipped scenarios."""

from __future__ import annotations

import random
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from possim.acquirer_sim.wallet import Customer, GatewayConfig, SystemErrorPlan, WalletGateway, WalletReply
from possim.acquirer_sim.wallet_ledger import WalletLedger
from possim.money.fees import FeeSchedule
from possim.money.statement import build
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.scenario import ScenarioError, from_dict, load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

TID = "POS00001"
CODE = "280000000000000001"
DAY = 86_400.0


def _gateway(tmp_path: Path, errors: dict[str, SystemErrorPlan] | None = None) -> WalletGateway:
    conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    config = GatewayConfig(customers={CODE: Customer("alice", 0.0)}, balances={"alice": 10_000}, errors=errors or {})
    return WalletGateway(config, WalletLedger(conn), random.Random(0))


def _send(g: WalletGateway, now: float, kind: W.RequestKind, provider: W.Provider, rid: str,
          amount: int | None = None) -> tuple[W.WalletResponse, list[object]]:
    request = W.WalletRequest(kind=kind, tid=TID, out_trade_no="O1", request_id=rid, provider=provider,
                              auth_code=CODE if kind == "pay" else None,
                              amount=2500 if kind == "pay" else amount)
    actions: list[object] = list(g.receive(now, W.encode(request)))
    reply = next(a for a in actions if isinstance(a, WalletReply))
    answer = W.decode(reply.data)
    assert isinstance(answer, W.WalletResponse)
    return answer, actions


@pytest.mark.parametrize(("provider", "inside", "outside", "refused", "flag"), [
    ("alipay", 13 * 3600.0, 14 * 3600.0 + 1, "ACQ.TRADE_CANCEL_TIME_OUT", "retry_flag"),  # run starts 10:00
    ("wechat", 7 * DAY, 7 * DAY + 1, "REVERSE_EXPIRE", "recall"),
])
def test_a_paid_order_is_cancelled_only_within_its_providers_window(
        tmp_path: Path, provider: W.Provider, inside: float, outside: float, refused: str, flag: str) -> None:
    (tmp_path / "late").mkdir()
    late = _gateway(tmp_path / "late")
    _send(late, 0, "pay", provider, "O1-1")
    answer, actions = _send(late, outside, "cancel", provider, "O1-2")
    assert (answer.code, answer.sub_code, getattr(answer, flag)) == ("40004", refused, "N")
    assert any(isinstance(a, ev.WalletCancelExpired) for a in actions)
    assert late.ledger.money() == {(TID, "O1"): 2500}, "a refused cancel changes nothing"
    answer, _ = _send(late, outside + 1, "refund", provider, "O1-3", amount=2500)
    assert (answer.code, answer.trade_state) == ("10000", "REVOKED")
    assert late.ledger.money() == {(TID, "O1"): 0}
    (tmp_path / "in").mkdir()
    timely = _gateway(tmp_path / "in")
    _send(timely, 0, "pay", provider, "O1-1")
    answer, _ = _send(timely, inside, "cancel", provider, "O1-2")
    assert (answer.code, answer.action, getattr(answer, flag)) == ("10000", "refund", "N")


def test_a_system_error_hides_the_outcome_done_or_not(tmp_path: Path) -> None:
    """done: the wallet charged, the answer says 20000 SYSTEMERROR; not done: nothing happened."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    done = _gateway(tmp_path / "a", {CODE: SystemErrorPlan("pay", "SYSTEMERROR")})
    answer, actions = _send(done, 0, "pay", "wechat", "O1-1")
    assert (answer.code, answer.sub_code) == ("20000", "SYSTEMERROR")
    assert [a.done for a in actions if isinstance(a, ev.WalletSystemError)] == [True]
    assert done.ledger.money() == {(TID, "O1"): 2500}
    answer, _ = _send(done, 5, "query", "wechat", "O1-2")
    assert (answer.code, answer.trade_state) == ("10000", "SUCCESS"), "only the first answer is the error"
    idle = _gateway(tmp_path / "b", {CODE: SystemErrorPlan("pay", "BANKERROR", done=False)})
    answer, _ = _send(idle, 0, "pay", "alipay", "O1-1")
    assert (answer.code, answer.sub_code) == ("20000", "ACQ.SYSTEM_ERROR"), "Alipay names its own error"
    assert idle.ledger.money() == {} and idle.ledger.find((TID, "O1")) is None


def test_system_error_then_query_completes_the_sale_and_none_calls_it_failed() -> None:
    scenario = load(SCENARIOS / "qr-system-error.toml")
    for policy in ("query", "query-then-reversal"):
        result = simulate(scenario, policy)
        events = [r.event for r in result.trace.records]
        assert [e.error for e in events if isinstance(e, ev.WalletSystemErrorAnswered)] == ["SYSTEMERROR"]
        assert [e.display for e in events if isinstance(e, ev.WalletOutcome)] == ["APPROVED (after query)"]
        assert result.verdict.settled, policy
    none = simulate(scenario, "none")
    assert [r.event.display for r in none.trace.records if isinstance(r.event, ev.WalletOutcome)] == \
        ["SYSTEM ERROR - PAYMENT FAILED"]
    assert none.verdict.counts["orphaned_debits"] == 1


def test_a_cancel_answered_retry_flag_y_is_sent_again_until_it_refunds() -> None:
    """The gateway answers the first two cancels with a system error (retry_flag Y): the terminal cancels
    again each time; the third refunds the payment made at the last moment."""
    data = {"title": "t", "description": "d", "terminal": {"currency": "156"},
            "transactions": [{"amount": "38.50", "card_type": "qr_wallet", "provider": "alipay", "confirm_after": 28,
                              "wallet_error": "SYSTEMERROR", "wallet_error_on": "cancel", "wallet_error_times": 2}]}
    result = simulate(from_dict(data), "reversal")
    sent = [r.event for r in result.trace.records if isinstance(r.event, ev.MsgSent) and r.event.side == "terminal"]
    assert [e.mti for e in sent].count("QR_CANCEL") == 3
    answers = [r.event for r in result.trace.records if isinstance(r.event, ev.WalletSystemErrorAnswered)]
    assert [e.mti for e in answers] == ["QR_CANCEL_RESP", "QR_CANCEL_RESP"]
    assert result.verdict.counts["reversed"] == 1 and result.verdict.settled


def test_a_cancel_after_midnight_is_refused_and_the_terminal_refunds(tmp_path: Path) -> None:
    """Alipay's same-day rule: the cancel at 00:00:10 is refused; the refund returns the money; the
    first day's statement has the wallet's sale, the next day's the refund with the fee returned."""
    ledger_path = tmp_path / "L.db"
    result = simulate(load(SCENARIOS / "qr-cancel-after-midnight.toml"), "reversal", ledger_path=str(ledger_path))
    events = [r.event for r in result.trace.records]
    assert [e.sub_code for e in events if isinstance(e, ev.WalletRefundInstead)] == ["ACQ.TRADE_CANCEL_TIME_OUT"]
    assert [e.reason for e in events if isinstance(e, ev.WalletRefunded)] == ["refund"]
    assert result.verdict.settled and result.verdict.counts["orphaned_debits"] == 0
    ledger = sqlite3.connect(ledger_path)
    [sale] = build(ledger, date(2026, 11, 25), FeeSchedule()).lines
    [refund] = build(ledger, date(2026, 11, 26), FeeSchedule()).lines
    assert (str(sale.amount), str(sale.fee)) == ("38.50", "0.15")
    assert (str(refund.adjustments), str(refund.fee), refund.rrn) == ("-38.50", "-0.15", sale.rrn)


@pytest.mark.parametrize(("fields", "words"), [
    ({"card_type": "credit", "wallet_error": "SYSTEMERROR"}, "applies to a wallet payment"),
    ({"card_type": "qr_wallet", "provider": "alipay", "wallet_error": "BANKERROR"}, "BANKERROR"),
])
def test_a_wallet_error_that_cannot_happen_is_refused_in_the_scenario(fields: dict[str, str], words: str) -> None:
    with pytest.raises(ScenarioError, match=words):
        from_dict({"title": "t", "description": "d", "transactions": [{"amount": "1.00", **fields}]})


def test_a_refund_that_never_succeeds_stays_owed_and_the_checker_counts_the_money() -> None:
    """The cancel refused as too late, then every refund answered a system error: the terminal runs out of
    tries but never forgets (the cancel stays pending), and the checker, from the journal and the ledger
    alone, counts the charge the customer still has not got back."""
    data = load(SCENARIOS / "qr-cancel-after-midnight.toml").raw()
    data["transactions"][0] |= {"wallet_error": "SYSTEMERROR", "wallet_error_on": "refund", "wallet_error_times": 50,
                                 "wallet_error_done": False}
    data.pop("expect", None)
    result = simulate(from_dict(data), "reversal")
    events = [r.event for r in result.trace.records]
    assert any(isinstance(e, ev.WalletRefundInstead) for e in events)
    assert not any(isinstance(e, ev.WalletRefunded) for e in events)
    assert result.verdict.counts["pending_reversals"] == 1
    assert result.verdict.counts["orphaned_debits"] == 1 and result.verdict.customer_loss == 3850


def test_a_wechat_cancel_owed_over_a_week_of_power_loss_becomes_a_refund() -> None:
    """The till dies with the cancel owed and boots 8 days later: the journaled cancel goes out, WeChat Pay
    refuses it (REVERSE_EXPIRE, recall N) and the terminal refunds the order: the customer gets the money."""
    data = {"title": "t", "description": "d", "terminal": {"currency": "156"},
            "power_losses": [{"at": 12.0, "down_for": 8 * DAY}],
            "transactions": [{"amount": "12.80", "card_type": "qr_wallet", "provider": "wechat"}],
            "faults": [{"action": "drop", "direction": "to_terminal", "mti": "QR_PAY_RESP", "nth": 1}]}
    result = simulate(from_dict(data), "reversal")
    events = [r.event for r in result.trace.records]
    assert [e.sub_code for e in events if isinstance(e, ev.WalletCancelExpired)] == ["REVERSE_EXPIRE"]
    assert [e.reason for e in events if isinstance(e, ev.WalletRefunded)] == ["refund"]
    assert result.verdict.settled and result.verdict.counts["orphaned_debits"] == 0

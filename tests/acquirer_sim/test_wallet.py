"""Wallet payments: the JSON messages, the gateway with its customers, the QR terminal, the checker."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from possim.acquirer_sim.ledger import Ledger
from possim.acquirer_sim.wallet import Customer, GatewayConfig, Wake, WalletGateway, WalletReply
from possim.acquirer_sim.wallet_ledger import WalletLedger
from possim.judging.checker import check
from possim.pos_sim.actions import Send, StartTimer
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.pos_sim.records import ReversalState, SaleStatus
from possim.pos_sim.wallet_actions import WalletResult, WriteWallet
from possim.pos_sim.wallet_policies import PROFILES, WalletPolicy
from possim.pos_sim.wallet_terminal import WalletPaymentRequest, WalletTerminal, WalletTerminalConfig
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.faults import FaultDecider, FaultPlan, Rule
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

TID = "POS00001"
CODE = "280000000000000001"


def _pay(order: str = "O1", amount: int = 2500, code: str = CODE, rid: str = "O1-1") -> W.WalletRequest:
    return W.WalletRequest(kind="pay", tid=TID, out_trade_no=order, request_id=rid, auth_code=code, amount=amount)


def _req(kind: W.RequestKind, order: str = "O1", rid: str = "O1-2", amount: int | None = None) -> W.WalletRequest:
    return W.WalletRequest(kind=kind, tid=TID, out_trade_no=order, request_id=rid, amount=amount)


# -- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("msg", [
    _pay(), _req("query"), _req("cancel"), _req("refund", amount=2500),
    _pay().answer("10003", "USERPAYING", amount=2500, trade_no="2026112522000000000001"),
    _req("cancel").answer("10000", "REVOKED", action="refund", amount=2500),
    _req("query").answer("40004", "CLOSED", sub_code="ACQ.TRADE_NOT_EXIST"),
])
def test_messages_round_trip(msg: W.WalletMessage) -> None:
    data = W.encode(msg)
    assert W.is_wallet(data)
    assert W.decode(data) == msg
    assert W.peek_kind(data) == msg.wire_kind


def test_pay_uses_the_gateways_field_names() -> None:
    body = json.loads(W.encode(_pay()))
    assert body == {"msg": "QR_PAY", "tid": TID, "out_trade_no": "O1", "request_id": "O1-1", "provider": "alipay",
                    "auth_code": CODE, "total_amount": "25.00"}


@pytest.mark.parametrize("data", [
    b"{", b"[]", b'{"msg": "QR_PAY"}', b"\xff\xfe",
    W.encode(_pay()).replace(b'"25.00"', b"25.0"),
    W.encode(_pay()).replace(b'"25.00"', b'"-25.00"'),
    W.encode(_pay()).replace(b'"25.00"', b'"25.5"'),
    W.encode(_pay()).replace(CODE.encode(), b"12ab"),
    W.encode(_pay()).replace(b'"alipay"', b'"paypal"'),
    W.encode(_pay()).replace(b'"msg"', b'"extra":1,"msg"'),
    W.encode(_req("query")).replace(b'"QR_QUERY"', b'"QR_NOPE"'),
    W.encode(_req("query").answer("10000", "SUCCESS")).replace(b'"SUCCESS"', b'"PAID"'),
    b'{"msg":"QR_QUERY"' + b"[" * 100_000,
])
def test_bad_frames_raise_protocol_error_only(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        W.decode(data)
    assert W.wire_fields(data)["malformed"] is True


def test_peek_kind_never_raises() -> None:
    assert W.peek_kind(b"0200abc") == "0200"
    assert W.peek_kind(b'{"msg":"NOPE"}') == "????"
    assert W.peek_kind(b"{garbage") == "????"


def test_fault_rules_target_wallet_kinds() -> None:
    decider = FaultDecider(FaultPlan(rules=(Rule("drop", "to_terminal", "QR_PAY_RESP", 1),)), random.Random(0))
    assert decider.decide("to_terminal", W.peek_kind(W.encode(_pay().answer("10000", "SUCCESS"))), 0).delays == ()
    assert decider.decide("to_terminal", "QR_PAY_RESP", 1).delays != ()


# -- the gateway ------------------------------------------------------------------------------


def _gateway(**customers: Customer) -> WalletGateway:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    config = GatewayConfig(customers={CODE: Customer("alice", 0.0), **customers},
                           balances={"alice": 10_000, "bob": 10_000})
    return WalletGateway(config, WalletLedger(conn), random.Random(0))


def _answer(actions: list[object]) -> W.WalletResponse:
    reply = next(a for a in actions if isinstance(a, WalletReply))
    msg = W.decode(reply.data)
    assert isinstance(msg, W.WalletResponse)
    return msg


def test_no_password_pays_at_once_and_a_repeat_never_charges_twice() -> None:
    g = _gateway()
    assert _answer(g.receive(0, W.encode(_pay()))).trade_state == "SUCCESS"
    repeat = g.receive(1, W.encode(_pay(rid="O1-9")))
    assert _answer(repeat).trade_state == "SUCCESS"
    assert any(isinstance(a, ev.WalletDuplicatePay) for a in repeat)
    assert g.ledger.money() == {(TID, "O1"): 2500}
    assert g.ledger.balance("alice") == 7500


def test_order_number_reused_for_another_amount_is_refused() -> None:
    g = _gateway()
    g.receive(0, W.encode(_pay()))
    answer = _answer(g.receive(1, W.encode(_pay(amount=9900))))
    assert (answer.code, answer.sub_code) == ("40004", "ACQ.CONTEXT_INCONSISTENT")
    assert g.ledger.money() == {(TID, "O1"): 2500}


def test_user_paying_until_the_customer_confirms() -> None:
    slow = "280000000000000002"
    g = _gateway(**{slow: Customer("bob", 40.0)})
    actions = g.receive(0, W.encode(_pay(code=slow)))
    assert _answer(actions).trade_state == "USERPAYING"
    assert {(w.at, w.what) for w in actions if isinstance(w, Wake)} == {(40.0, "confirm"), (180.0, "expire")}
    assert _answer(g.receive(5, W.encode(_req("query")))).trade_state == "USERPAYING"
    assert any(isinstance(a, ev.WalletCharged) for a in g.customer_confirms(40, (TID, "O1")))
    assert _answer(g.receive(45, W.encode(_req("query", rid="O1-3")))).trade_state == "SUCCESS"
    assert g.expire(180, (TID, "O1")) == []


def test_cancel_of_a_user_paying_order_closes_it_and_a_late_confirmation_is_refused() -> None:
    slow = "280000000000000002"
    g = _gateway(**{slow: Customer("bob", 40.0)})
    g.receive(0, W.encode(_pay(code=slow)))
    answer = _answer(g.receive(30, W.encode(_req("cancel"))))
    assert (answer.trade_state, answer.action) == ("CLOSED", "close")
    assert isinstance(g.customer_confirms(40, (TID, "O1"))[0], ev.WalletConfirmRefused)
    assert g.ledger.money() == {}


def test_cancel_of_a_paid_order_refunds_it_once() -> None:
    g = _gateway()
    g.receive(0, W.encode(_pay()))
    answer = _answer(g.receive(30, W.encode(_req("cancel"))))
    assert (answer.trade_state, answer.action) == ("REVOKED", "refund")
    again = _answer(g.receive(32, W.encode(_req("cancel", rid="O1-3"))))
    assert (again.trade_state, again.action) == ("REVOKED", "none")
    assert g.ledger.money() == {(TID, "O1"): 0}
    assert g.ledger.balance("alice") == 10_000


@pytest.mark.parametrize("first", ["cancel", "query"])
def test_an_order_closed_before_its_pay_arrives_refuses_the_late_pay(first: W.RequestKind) -> None:
    g = _gateway()
    assert _answer(g.receive(0, W.encode(_req(first)))).trade_state == "CLOSED"
    late = g.receive(5, W.encode(_pay()))
    assert (_answer(late).code, _answer(late).sub_code) == ("40004", "ACQ.TRADE_HAS_CLOSE")
    assert g.ledger.money() == {}


def test_an_unpaid_order_closes_by_itself() -> None:
    g = _gateway(**{"280000000000000003": Customer("bob", 0.0, gives_up=True)})
    actions = g.receive(0, W.encode(_pay(code="280000000000000003")))
    assert [w.what for w in actions if isinstance(w, Wake)] == ["expire"]
    assert isinstance(g.expire(180, (TID, "O1"))[0], ev.WalletTradeClosed)
    assert _answer(g.receive(181, W.encode(_req("query")))).trade_state == "CLOSED"


def test_not_enough_balance_is_a_pay_error_and_refund_needs_a_paid_order() -> None:
    g = _gateway()
    assert _answer(g.receive(0, W.encode(_pay(amount=20_000)))).trade_state == "PAYERROR"
    assert _answer(g.receive(1, W.encode(_req("refund", amount=20_000)))).code == "40004"
    g.receive(2, W.encode(_pay(order="O2", rid="O2-1")))
    assert _answer(g.receive(3, W.encode(_req("refund", order="O2", amount=2500)))).trade_state == "REVOKED"
    assert _answer(g.receive(4, W.encode(_req("refund", order="O2", amount=2500)))).code == "10000"
    assert g.ledger.money() == {(TID, "O2"): 0}


def test_a_bad_frame_changes_nothing() -> None:
    g = _gateway()
    assert isinstance(g.receive(0, b'{"msg":"QR_PAY"}')[0], ev.MalformedFrame)
    assert g.ledger.money() == {}


# -- the QR terminal ------------------------------------------------------------------------


def _terminal(policy: str, provider: W.Provider = "alipay") -> tuple[WalletTerminal, list[object]]:
    t = WalletTerminal(WalletTerminalConfig(tid=TID, policy=policy))
    return t, list(t.request_payment(0.0, WalletPaymentRequest(1, "basket-1", 2500, CODE, provider)))


def _sent(actions: list[object]) -> list[W.WalletRequest]:
    out = []
    for a in actions:
        if isinstance(a, Send):
            msg = W.decode(a.data)
            assert isinstance(msg, W.WalletRequest)
            out.append(msg)
    return out


def test_every_policy_answers_for_the_wallet_too() -> None:
    """One registry: each policy carries its wallet strategy, and a QR terminal takes the one named."""
    for policy in POLICY_REGISTRY.values():
        assert isinstance(policy.wallet, WalletPolicy)
        assert WalletTerminal(WalletTerminalConfig(policy=policy.name)).policy is policy.wallet
    assert type(POLICY_REGISTRY.get("reversal").wallet).__name__ == "CancelPolicy"


def test_the_cancel_is_armed_in_the_journal_before_the_pay_leaves() -> None:
    _, actions = _terminal("reversal")
    first_write = next(i for i, a in enumerate(actions) if isinstance(a, WriteWallet))
    send = next(i for i, a in enumerate(actions) if isinstance(a, Send))
    assert first_write < send
    assert actions[first_write].record.cancel is ReversalState.ARMED  # type: ignore[attr-defined]


def _answer_to(t: WalletTerminal, request: W.WalletRequest, now: float, state: W.TradeState,
               **fields: object) -> list[object]:
    code: W.Code = "10000" if state in ("SUCCESS", "CLOSED", "REVOKED") else "10003"
    return list(t.receive(now, W.encode(request.answer(code, state, **fields))))


def test_query_then_cancel_follows_the_documented_timings_with_one_order_number() -> None:
    t, actions = _terminal("query-then-reversal")
    pay = _sent(actions)[0]
    timer = "wallet:" + pay.out_trade_no
    sent = [pay]
    out = _answer_to(t, pay, 0.3, "USERPAYING")
    now = 0.3
    while True:
        at = next(a.at for a in out if isinstance(a, StartTimer))
        out = list(t.timer_fired(at, timer))
        now = at
        requests = _sent(out)
        if not requests:
            continue
        sent += requests
        if requests[0].kind == "cancel":
            break
        out = _answer_to(t, requests[0], now + 0.2, "USERPAYING")
    queries = [r for r in sent if r.kind == "query"]
    assert len(queries) == 5  # every 5 s while the customer pays, Alipay
    assert now == pytest.approx(PROFILES["alipay"].pay_limit)  # cancel at the documented limit
    assert {r.out_trade_no for r in sent} == {pay.out_trade_no}
    assert len({r.request_id for r in sent}) == len(sent)
    done = t.receive(now + 0.2, W.encode(sent[-1].answer("10000", "REVOKED", action="refund")))
    assert any(isinstance(a, ev.WalletCancelAcknowledged) and a.action == "refund" for a in done)
    assert t.orders[pay.out_trade_no].rec.status is SaleStatus.REVERSED


def test_no_cancel_before_the_wechat_minimum() -> None:
    t, actions = _terminal("reversal", "wechat")
    pay = _sent(actions)[0]
    timeout = next(a.at for a in actions if isinstance(a, StartTimer))
    out = list(t.timer_fired(timeout, "wallet:" + pay.out_trade_no))
    scheduled = [a for a in out if isinstance(a, ev.WalletCancelScheduled)]
    assert scheduled[0].at == pytest.approx(PROFILES["wechat"].cancel_min)
    assert scheduled[0].at > timeout
    assert any(isinstance(a, WalletResult) and a.status is SaleStatus.UNKNOWN for a in out)


def test_a_late_answer_is_journaled_never_applied() -> None:
    t, actions = _terminal("none")
    pay = _sent(actions)[0]
    timeout = next(a.at for a in actions if isinstance(a, StartTimer))
    t.timer_fired(timeout, "wallet:" + pay.out_trade_no)
    late = _answer_to(t, pay, timeout + 1, "SUCCESS")
    assert any(isinstance(a, ev.WalletLateAnswer) for a in late)
    assert t.orders[pay.out_trade_no].rec.status is SaleStatus.UNKNOWN
    assert t.orders[pay.out_trade_no].rec.late_answers == 1


def test_a_cancel_without_answer_is_repeated_with_backoff() -> None:
    t, actions = _terminal("reversal")
    pay = _sent(actions)[0]
    timer = "wallet:" + pay.out_trade_no
    out = list(t.timer_fired(10.0, timer))  # pay unanswered: cancel now (Alipay has no minimum)
    out = list(t.timer_fired(10.0, timer))
    assert _sent(out)[0].kind == "cancel"
    out = list(t.timer_fired(20.0, timer))  # the cancel unanswered
    retry = [a for a in out if isinstance(a, ev.WalletCancelScheduled)]
    assert retry and retry[0].at == pytest.approx(22.0)
    assert t.orders[pay.out_trade_no].rec.cancel is ReversalState.PENDING


# -- runs and the checker -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qr-user-paying-timeout", "qr-cancel-race", "qr-network-drop",
                                  "card-failed-then-qr"])
@pytest.mark.parametrize("policy", POLICY_REGISTRY.names())
def test_wallet_scenarios_hold_their_expectations(name: str, policy: str) -> None:
    from possim.judging.expect import failed_expectations

    scenario = load(SCENARIOS / f"{name}.toml")
    result = simulate(scenario, policy)
    assert result.quiescent
    assert failed_expectations(scenario.model.expect, policy, result.summary()) == []


def test_the_race_the_cancel_refunds_a_payment_made_after_the_last_query() -> None:
    result = simulate(load(SCENARIOS / "qr-cancel-race.toml"), "query-then-reversal")
    events = [(s.t, s.event) for s in result.trace.records]
    confirmed = next(t for t, e in events if isinstance(e, ev.WalletCustomerConfirmed))
    last_query = max(t for t, e in events if isinstance(e, ev.MsgSent) and e.mti == "QR_QUERY")
    refunded = next(t for t, e in events if isinstance(e, ev.WalletRefunded))
    assert last_query < confirmed < refunded


def test_checker_counts_an_order_still_open_as_money_in_flight() -> None:
    ledger = Ledger().conn
    wallet = WalletLedger(ledger)
    wallet.create(0, (TID, "O1"), "alipay", CODE, "alice", 2500, "USERPAYING", "T1")
    journal = sqlite3.connect(":memory:")
    journal.execute("CREATE TABLE journal (tid TEXT, stan TEXT, transmission TEXT, txn_id INTEGER, intent TEXT, "
                    "kind TEXT, amount INTEGER, completion_amount INTEGER, status TEXT, reversal TEXT, "
                    "late_responses INTEGER, pan TEXT)")
    verdict = check(journal, ledger)
    assert verdict.counts["open_holds"] == 1
    assert [f.finding for f in verdict.findings] == ["wallet_order_open"]


def test_a_lost_pay_answer_after_the_charge_is_an_orphaned_wallet_charge() -> None:
    result = simulate(load(SCENARIOS / "qr-network-drop.toml"), "none")
    assert [f.finding for f in result.verdict.findings] == ["orphaned_wallet_charge"]


def test_a_wallet_fault_rule_names_an_unknown_kind_in_one_line() -> None:
    from possim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="unknown MTI 'QR_NOPE'"):
        from_dict({"title": "t", "description": "d", "transactions": [{"amount": "1.00", "card_type": "qr_wallet"}],
                   "faults": [{"action": "drop", "direction": "to_host", "mti": "QR_NOPE"}]})


def test_reconciliation_lists_wallet_payments_with_the_qr_fee() -> None:
    result = simulate(load(SCENARIOS / "card-failed-then-qr.toml"), "reversal")
    assert result.reconciliation is not None
    qr = [line for line in result.reconciliation.lines if line.instrument == "qr_wallet"]
    assert [(str(line.amount), str(line.fee), line.rule) for line in qr] == [("66.00", "0.25", "QR wallet 0.38%")]
    assert result.reconciliation.balanced


def test_a_wallet_payment_the_terminal_never_approved_is_an_orphaned_debit_in_reconciliation() -> None:
    result = simulate(load(SCENARIOS / "qr-user-paying-timeout.toml"), "none")
    assert result.reconciliation is not None
    assert [m.kind for m in result.reconciliation.mismatches] == ["orphaned_debit"]


def test_a_customer_who_gives_up_rescans_once_per_basket() -> None:
    scenario = from_dict({"title": "t", "description": "d", "transactions": [
        {"amount": "7.72", "card_type": "qr_wallet", "gives_up": True, "customer_retries": True,
         "retry_with": "qr_wallet"}]})
    result = simulate(scenario, "none")
    assert result.quiescent
    assert result.verdict.counts["transactions"] == 2


def test_time_scale_scales_the_wallet_timings() -> None:
    scenario = load(SCENARIOS / "qr-cancel-race.toml").scaled(0.05)
    timings = scenario.wallet_timings()
    assert timings.alipay.pay_limit == pytest.approx(1.5)
    assert timings.wechat.auto_close == pytest.approx(2.25)


def test_frame_tid_reads_card_and_wallet_frames() -> None:
    assert W.frame_tid(W.encode(_pay())) == TID
    with pytest.raises(ProtocolError):
        W.frame_tid(b"{}")

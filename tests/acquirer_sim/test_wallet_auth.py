"""Wallet messages nobody can forge: the ``sign``, the sender the transport vouches for, order numbers a
stranger cannot guess. The issue's three attacks, with the real gateway over a real SQLite ledger file and
the real QR terminal, each move 0.00 and leave the victim's later sales approved."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from possim.acquirer_sim.ledger import Ledger
from possim.acquirer_sim.wallet import GatewayConfig, WalletGateway, WalletReply
from possim.acquirer_sim.wallet_ledger import WalletLedger
from possim.fuzzing.forgery import attacker_key
from possim.pos_sim.actions import Send, StartTimer
from possim.pos_sim.records import ReversalState, SaleStatus
from possim.pos_sim.wallet_actions import WalletResult
from possim.pos_sim.wallet_terminal import WalletPaymentRequest, WalletTerminal, WalletTerminalConfig
from possim.processes import keys
from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.messages import Message
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

VICTIM, ATTACKER, GHOST = "POS00002", "POS00001", "GHOST001"
RING = keys.derive(7, [ATTACKER, VICTIM])
CODE = "280000000000000001"


def _gateway(tmp_path: Path, with_keys: bool = True) -> WalletGateway:
    """The gateway over the acquirer's ledger file, holding every terminal's key as ``possim acquirer --keys``."""
    ledger = Ledger(tmp_path / "ledger.db")
    return WalletGateway(GatewayConfig(), WalletLedger(ledger.conn), random.Random(0),
                         RING.mac_keys() if with_keys else None)


def _terminal(tid: str = VICTIM, policy: str = "reversal", seed: int = 1) -> WalletTerminal:
    return WalletTerminal(WalletTerminalConfig(tid=tid, policy=policy), RING.mac_key(tid), random.Random(seed))


def _sends(actions: list[object]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def _replies(actions: list[object]) -> list[WalletReply]:
    return [a for a in actions if isinstance(a, WalletReply)]


def _exchange(t: WalletTerminal, g: WalletGateway, now: float, actions: list[object],
              sender: str | None = None) -> list[object]:
    """Carry every request the terminal sent to the gateway and every answer back; what the terminal did."""
    out: list[object] = []
    for data in _sends(actions):
        for reply in _replies(g.receive(now, data, sender)):
            out += t.receive(now, reply.data)
    return out


def _sell(t: WalletTerminal, g: WalletGateway, txn: int, amount: int, now: float = 0.0) -> tuple[str, list[object]]:
    """One wallet sale of a customer who pays at once: its order number and what the terminal did."""
    actions = list(t.request_payment(now, WalletPaymentRequest(txn, f"basket-{txn}", amount, CODE,
                                                               out_trade_no=t.new_order_number(txn))))
    order = W.decode(_sends(actions)[0]).out_trade_no
    return order, _exchange(t, g, now, actions, t.config.tid)


def _approved(actions: list[object]) -> bool:
    return any(isinstance(a, WalletResult) and a.status is SaleStatus.APPROVED for a in actions)


def _money(g: WalletGateway) -> dict[tuple[str, str], int]:
    return g.ledger.money()


def _trades(g: WalletGateway) -> list[tuple[str, str, str]]:
    return g.ledger.conn.execute("SELECT tid, out_trade_no, state FROM wallet_trades ORDER BY rowid").fetchall()


def _request(kind: W.RequestKind, tid: str, order: str, amount: int | None = None,
             auth_code: str | None = None) -> W.WalletRequest:
    return W.WalletRequest(kind=kind, tid=tid, out_trade_no=order, request_id=f"{order}-9", amount=amount,
                           auth_code=auth_code)


def _forgeries(kind: W.RequestKind, tid: str, order: str, amount: int | None = None,
               auth_code: str | None = None) -> Iterator[tuple[str, bytes]]:
    """What a stranger can send naming ``tid``: no sign, a sign under a key it owns, a sign copied from a real one."""
    msg = _request(kind, tid, order, amount, auth_code)
    yield "unsigned", W.encode(msg)
    yield "attacker's own key", W.encode(msg, RING.mac_key(ATTACKER))
    yield "attacker's derived key", W.encode(msg, attacker_key(7))
    seen = W.WalletRequest(kind="query", tid=tid, out_trade_no=order, request_id=f"{order}-1")  # sniffed
    real = json.loads(W.encode(seen, RING.mac_key(VICTIM)))
    body = json.loads(W.encode(msg))
    yield "sign of another message", json.dumps({**body, "sign": real["sign"]}).encode()


# -- the sign -----------------------------------------------------------------------------------


def test_a_signed_message_round_trips_and_every_field_is_covered() -> None:
    key = RING.mac_key(VICTIM)
    msg = _request("refund", VICTIM, "O1", amount=8800)
    data = W.encode(msg, key)
    assert W.decode(data, key) == W.decode(data, RING.mac_keys()) == W.decode(data) == msg
    body = json.loads(data)
    assert len(body["sign"]) == 16
    for name, value in (("total_amount", "1.00"), ("out_trade_no", "O2"), ("request_id", "O1-1")):
        tampered = json.dumps({**body, name: value}).encode()
        with pytest.raises(W.SignMismatchError):
            W.decode(tampered, RING.mac_keys())
    query = json.loads(W.encode(_request("query", VICTIM, "O1"), key))
    with pytest.raises(W.SignMismatchError):  # a signed query turned into a cancel
        W.decode(json.dumps({**query, "msg": "QR_CANCEL"}).encode(), RING.mac_keys())


def test_a_bad_sign_is_a_sign_error_with_the_claimed_message() -> None:
    msg = _request("cancel", VICTIM, "O1")
    with pytest.raises(W.SignMissingError) as missing:
        W.decode(W.encode(msg), RING.mac_keys())
    assert missing.value.message == msg
    with pytest.raises(W.SignMismatchError):
        W.decode(W.encode(msg, RING.mac_key(ATTACKER)), RING.mac_keys())
    with pytest.raises(W.UnknownTerminalError):
        W.decode(W.encode(_request("pay", GHOST, "O1", 99900, CODE), RING.mac_key(ATTACKER)), RING.mac_keys())
    with pytest.raises(ProtocolError, match="field sign"):
        W.decode(W.encode(msg).replace(b"{", b'{"sign":"xyz",', 1))


def test_a_card_mac_never_signs_a_wallet_message() -> None:
    """Both use the terminal's one key; a card frame's MAC input starts with its MTI, a wallet's with '{'."""
    key = RING.mac_key(VICTIM)
    sale = Message(mti="0200", stan="000001", transmission="1125100000", tid=VICTIM, mid="MERCHANT0000001",
                   pan="4000000000000002", processing_code="000000", amount=2500, currency="978")
    card = codec.encode(sale, key)
    body = json.loads(W.encode(_request("query", VICTIM, "O1")))
    forged = json.dumps({**body, "sign": card[-16:].decode()}).encode()
    with pytest.raises(W.SignMismatchError):
        W.decode(forged, RING.mac_keys())


# -- the attacks against the gateway -------------------------------------------------------


def test_attack_a_nobody_cancels_refunds_or_queries_another_terminals_paid_order(tmp_path: Path) -> None:
    g, victim = _gateway(tmp_path), _terminal()
    order, sold = _sell(victim, g, 1, 8800)
    assert _approved(sold) and _money(g) == {(VICTIM, order): 8800}
    before = _trades(g)
    for kind, amount in (("cancel", None), ("refund", 8800), ("query", None)):
        for how, data in _forgeries(kind, VICTIM, order, amount):  # type: ignore[arg-type]
            out = g.receive(1.0, data)
            assert [type(a) for a in out] == [ev.SecurityViolation, WalletReply], how
            answer = W.decode(_replies(out)[0].data)
            assert (answer.code, answer.sub_code) == ("40002", W.INVALID_SIGNATURE), how  # type: ignore[union-attr]
            assert "sign" not in json.loads(_replies(out)[0].data), "a refusal is never a signed answer"
            assert not _replies(out)[0].authenticated
            # the same over a transport that vouches for the attacker: dropped unanswered
            assert [type(a) for a in g.receive(1.0, data, ATTACKER)] == [ev.IdentityMismatch], how
        # the attacker's own signed request for the victim's order number reaches only its own orders
        own = W.encode(_request(kind, ATTACKER, order, amount), RING.mac_key(ATTACKER))  # type: ignore[arg-type]
        answer = W.decode(_replies(g.receive(1.0, own, ATTACKER))[0].data, RING.mac_key(ATTACKER))
        assert (answer.code, answer.sub_code) == ("40004", W.TRADE_NOT_EXIST)  # type: ignore[union-attr]
    assert _money(g) == {(VICTIM, order): 8800}  # 0.00 moved: the customer keeps paying, the merchant keeps the sale
    assert _trades(g) == before  # nothing recorded either: no tombstone, no state change
    assert g.ledger.balance("customer") == g.ledger.default_balance - 8800
    order2, sold2 = _sell(victim, g, 2, 1500, 2.0)
    assert _approved(sold2) and _money(g)[(VICTIM, order2)] == 1500


def test_attack_b_a_pre_cancel_of_the_victims_next_order_changes_nothing(tmp_path: Path) -> None:
    """Even knowing the next order number (the attacker cannot: it has a random part), a forged
    cancel closes nothing, so the victim's sale under that number is approved."""
    g, victim = _gateway(tmp_path), _terminal()
    upcoming = _terminal(seed=1).new_order_number(1)  # the same nonce source: the number the victim will draw
    for how, data in _forgeries("cancel", VICTIM, upcoming):
        assert isinstance(g.receive(0.0, data)[0], ev.SecurityViolation), how
        assert isinstance(g.receive(0.0, data, ATTACKER)[0], ev.IdentityMismatch), how
    assert _trades(g) == []  # no tombstone under the victim's id
    order, sold = _sell(victim, g, 1, 8800, 1.0)
    assert order == upcoming
    assert _approved(sold) and _money(g) == {(VICTIM, order): 8800}


def test_attack_c_nobody_charges_a_wallet_for_a_terminal_without_a_key(tmp_path: Path) -> None:
    g = _gateway(tmp_path)
    for key in (None, RING.mac_key(ATTACKER), attacker_key(7)):
        data = W.encode(_request("pay", GHOST, f"20261125{GHOST}000001", 99900, CODE), key)
        out = g.receive(0.0, data)
        assert [type(a) for a in out] == [ev.SecurityViolation, WalletReply]
        answer = W.decode(_replies(out)[0].data)
        assert (answer.code, answer.sub_code) == ("40002", W.UNKNOWN_TERMINAL)  # type: ignore[union-attr]
    assert _money(g) == {} and _trades(g) == []
    assert g.ledger.balances() == {}  # not even a wallet opened


def test_without_keys_the_gateway_answers_as_before(tmp_path: Path) -> None:
    g = _gateway(tmp_path, with_keys=False)
    t = WalletTerminal(WalletTerminalConfig(tid=VICTIM, policy="none"), None, random.Random(3))
    order, sold = _sell(t, g, 1, 8800)
    assert _approved(sold)
    reply = _replies(g.receive(1.0, W.encode(_request("query", VICTIM, order))))[0]
    assert "sign" not in json.loads(reply.data) and not reply.authenticated


# -- the terminal refuses forged answers ------------------------------------------------------------


def test_a_forged_success_never_approves_and_the_cancel_recovers_the_real_charge(tmp_path: Path) -> None:
    """The pay's real answer is lost; an attacker answers SUCCESS (unsigned, or under another key).
    The terminal treats it as no answer, so under ``reversal`` its timer cancels the order."""
    g, t = _gateway(tmp_path), _terminal(policy="reversal")
    actions = list(t.request_payment(0.0, WalletPaymentRequest(1, "basket-1", 8800, CODE,
                                                               out_trade_no=t.new_order_number(1))))
    pay = W.decode(_sends(actions)[0])
    assert isinstance(pay, W.WalletRequest)
    g.receive(0.0, _sends(actions)[0], VICTIM)  # charged; its answer never arrives
    forged = pay.answer("10000", "SUCCESS", amount=8800, trade_no="2026112522000000000001")
    for key in (None, RING.mac_key(ATTACKER), attacker_key(7)):
        out = t.receive(0.5, W.encode(forged, key))
        assert [type(a) for a in out] == [ev.ResponseRejected]
    refusal = pay.answer("40002", "CLOSED", sub_code=W.INVALID_SIGNATURE)  # unsigned, as the gateway sends it
    assert [type(a) for a in t.receive(0.6, W.encode(refusal))] == [ev.ResponseRejected]
    rec = t.orders[pay.out_trade_no].rec
    assert rec.status is SaleStatus.PENDING and t.orders[pay.out_trade_no].inflight == pay.request_id
    timer = next(a for a in actions if isinstance(a, StartTimer))
    cancel = list(t.timer_fired(timer.at, timer.name))
    cancel += t.timer_fired(max(a.at for a in cancel if isinstance(a, StartTimer)), timer.name)
    _exchange(t, g, 20.0, cancel, VICTIM)
    assert rec.cancel is ReversalState.ACKED and rec.status is SaleStatus.REVERSED
    assert _money(g) == {(VICTIM, pay.out_trade_no): 0}


def test_an_answer_of_another_kind_with_the_request_id_in_flight_is_not_applied(tmp_path: Path) -> None:
    g, t = _gateway(tmp_path), _terminal()
    actions = list(t.request_payment(0.0, WalletPaymentRequest(1, "basket-1", 8800, CODE,
                                                               out_trade_no=t.new_order_number(1))))
    pay = W.decode(_sends(actions)[0])
    cancel_answer = W.WalletRequest(kind="cancel", tid=VICTIM, out_trade_no=pay.out_trade_no,
                                    request_id=pay.request_id).answer("10000", "CLOSED", action="close")
    out = t.receive(0.1, W.encode(cancel_answer, RING.mac_key(VICTIM)))
    assert [type(a).__name__ for a in out] == ["WriteWallet", "WalletLateAnswer"]
    assert t.orders[pay.out_trade_no].inflight == pay.request_id
    assert _approved(_exchange(t, g, 0.2, actions, VICTIM))


# -- order numbers --------------------------------------------------------------------------------


def test_order_numbers_are_readable_but_not_predictable() -> None:
    numbers = [_terminal(seed=s).new_order_number(1) for s in range(50)]
    assert all(n.startswith("20261125POS00002000001") and len(n) == 32 for n in numbers)  # WeChat's limit: 32
    assert len(set(numbers)) == 50  # the random part differs from seed to seed
    assert _terminal(seed=4).new_order_number(1) == _terminal(seed=4).new_order_number(1)  # and repeats for one
    t = WalletTerminal(WalletTerminalConfig(tid=VICTIM))  # a process: secrets.SystemRandom
    assert isinstance(t.nonces, random.SystemRandom)
    assert t.new_order_number(1) != t.new_order_number(1)


def test_a_simulation_signs_every_wallet_message_and_repeats_for_its_seed() -> None:
    scenario = load(SCENARIOS / "qr-network-drop.toml")
    first, again = simulate(scenario, "query"), simulate(scenario, "query")
    frames = [bytes.fromhex(s.event.data) for s in first.trace.records
              if isinstance(s.event, ev.MsgReceived) and s.event.mti in W.KINDS and s.event.data]
    assert frames and all("sign" in json.loads(f) for f in frames)
    orders = [s.event.order for s in first.trace.records if isinstance(s.event, ev.WalletPaymentRequested)]
    assert orders == [s.event.order for s in again.trace.records if isinstance(s.event, ev.WalletPaymentRequested)]
    assert first.verdict.counts["approved"] == 1


def test_a_scenario_without_macs_sends_unsigned_wallet_messages() -> None:
    scenario = from_dict({"title": "t", "description": "d", "mac": False,
                          "transactions": [{"amount": "88.00", "card_type": "qr_wallet"}]})
    result = simulate(scenario, "none")
    frames = [bytes.fromhex(s.event.data) for s in result.trace.records
              if isinstance(s.event, ev.MsgReceived) and s.event.mti in W.KINDS and s.event.data]
    assert frames and not any("sign" in json.loads(f) for f in frames)
    assert result.verdict.counts["approved"] == 1

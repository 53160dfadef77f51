"""Wallet requests and terminal lives: the gateway refuses a request that is not from its terminal id's
current life, as the card host answers 77, and changes nothing. The real card host and wallet gateway
over one real SQLite ledger file, the real QR terminal, signed messages."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost
from possim.acquirer_sim.ledger import Ledger
from possim.acquirer_sim.wallet import GatewayConfig, WalletGateway, WalletReply
from possim.acquirer_sim.wallet_ledger import WalletLedger
from possim.pos_sim.actions import Send
from possim.pos_sim.exchanges import SIGN_ON_AGAIN_DISPLAY
from possim.pos_sim.records import SaleStatus
from possim.pos_sim.wallet_actions import WalletResult
from possim.pos_sim.wallet_terminal import WalletPaymentRequest, WalletTerminal, WalletTerminalConfig
from possim.processes import keys
from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.protocol.messages import Message
from tests.procs import query

TID = "POS00002"
RING = keys.derive(7, [TID])
CODE = "280000000000000001"


class Acquirer:
    """The card host and the wallet gateway of one acquirer, over one ledger file, with every key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ledger = Ledger(path)
        self.host = AcquirerHost(HostConfig(), self.ledger, random.Random(0), RING.mac_keys())
        self.gateway = WalletGateway(GatewayConfig(), WalletLedger(self.ledger.conn), random.Random(0),
                                     RING.mac_keys())

    def sign_on(self, life: str, stan: str) -> None:
        """A card sign-on (0800) of ``life``: from now on it is the terminal id's current life."""
        msg = Message(mti="0800", stan=stan, transmission=f"11251{stan[1:]}", tid=TID, mid="MERCHANT0000001",
                      life=life)
        [reply] = [a for a in self.host.receive(0.0, codec.encode(msg, RING.mac_key(TID))) if hasattr(a, "data")]
        assert codec.decode(reply.data).response_code == "00"

    def rows(self) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Every order and every wallet money movement, as another process reads the file."""
        self.ledger.conn.commit()
        return (query(self.path, "SELECT tid, out_trade_no, state FROM wallet_trades ORDER BY rowid"),
                query(self.path, "SELECT out_trade_no, kind, amount FROM wallet_entries ORDER BY id"))


def _terminal(life: str | None, policy: str = "reversal") -> WalletTerminal:
    return WalletTerminal(WalletTerminalConfig(tid=TID, policy=policy, life=life), RING.mac_key(TID),
                          random.Random(life))


def _exchange(t: WalletTerminal, acq: Acquirer, now: float,
              actions: list[object]) -> tuple[list[object], list[object]]:
    """Carry the terminal's requests to the gateway and the answers back: what the gateway did, what the
    terminal did."""
    gateway: list[object] = []
    terminal: list[object] = []
    for data in [a.data for a in actions if isinstance(a, Send)]:
        done = acq.gateway.receive(now, data, TID)
        gateway += done
        for reply in [a for a in done if isinstance(a, WalletReply)]:
            terminal += t.receive(now, reply.data)
    return gateway, terminal


def _pay(t: WalletTerminal, acq: Acquirer, txn: int, now: float = 0.0) -> tuple[str, list[object], list[object]]:
    actions = list(t.request_payment(now, WalletPaymentRequest(txn, f"basket-{txn}", 2500, CODE,
                                                               out_trade_no=t.new_order_number(txn))))
    order = W.decode(next(a.data for a in actions if isinstance(a, Send))).out_trade_no
    return order, *_exchange(t, acq, now, actions)


def _results(actions: list[object]) -> list[tuple[str, str]]:
    return [(str(a.status), a.display) for a in actions if isinstance(a, WalletResult)]


def _refusals(actions: list[object]) -> list[tuple[str | None, str | None, str]]:
    return [(e.life, e.current, e.rc) for e in actions if isinstance(e, ev.LifeRefused)]


def test_life_travels_in_the_signed_request_and_only_when_set() -> None:
    request = W.WalletRequest(kind="query", tid=TID, out_trade_no="O1", request_id="O1-1", life="123456")
    data = W.encode(request, RING.mac_key(TID))
    assert b'"life":"123456"' in data and W.decode(data, RING.mac_keys()) == request
    forged = data.replace(b'"life":"123456"', b'"life":"654321"')  # the life is signed like every field
    with pytest.raises(W.SignMismatchError):
        W.decode(forged, RING.mac_keys())
    assert b"life" not in W.encode(W.WalletRequest(kind="query", tid=TID, out_trade_no="O1", request_id="O1-1"))


def test_a_stale_lifes_pay_query_and_cancel_are_refused_and_move_no_money(tmp_path: Path) -> None:
    acq = Acquirer(tmp_path / "ledger.db")
    acq.sign_on("111111", "000001")
    old = _terminal("111111")
    paid, _, sold = _pay(old, acq, 1)
    assert _results(sold) == [("approved", "APPROVED")]
    before = acq.rows()
    acq.sign_on("222222", "000002")  # a newer life of the same terminal id (a replacement, a second device)

    order, gateway, shown = _pay(old, acq, 2, now=5.0)
    assert _refusals(gateway) == [("111111", "222222", "20000")]
    answer = W.decode(next(a for a in gateway if isinstance(a, WalletReply)).data, RING.mac_key(TID))
    assert (answer.code, answer.sub_code) == ("20000", W.SIGN_ON_AGAIN)  # signed: a real refusal
    assert _results(shown) == [("failed", SIGN_ON_AGAIN_DISPLAY)]  # not charged, not "declined by the wallet"
    assert any(isinstance(a, ev.SignOnAgain) for a in shown)
    for kind in ("query", "cancel", "refund"):  # the stale life cannot learn, close or refund the paid order
        stale = W.WalletRequest(kind=kind, tid=TID, out_trade_no=paid, request_id=f"{paid}-{kind}", life="111111",
                                amount=2500 if kind == "refund" else None)
        refused = acq.gateway.receive(6.0, W.encode(stale, RING.mac_key(TID)), TID)
        assert _refusals(refused) == [("111111", "222222", "20000")], kind
    bare = W.WalletRequest(kind="cancel", tid=TID, out_trade_no=paid, request_id=f"{paid}-bare")  # no life at all
    [refusal] = [e for e in acq.gateway.receive(7.0, W.encode(bare, RING.mac_key(TID)), TID)
                 if isinstance(e, ev.LifeRefused)]
    assert refusal.reason == "no life number: the terminal did not sign on"
    assert acq.rows() == before  # no order, no tombstone for the refused pay, the paid order untouched
    assert order not in [row[1] for row in before[0]]

    current = _terminal("222222")  # the current life is served: it sees the order the earlier life paid
    asked = W.WalletRequest(kind="query", tid=TID, out_trade_no=paid, request_id=f"{paid}-new", life="222222")
    [reply] = [a for a in acq.gateway.receive(8.0, W.encode(asked, current.mac_key), TID)
               if isinstance(a, WalletReply)]
    assert W.decode(reply.data).trade_state == "SUCCESS"
    acq.ledger.close()


def test_a_query_answered_sign_on_again_is_no_answer_about_the_order(tmp_path: Path) -> None:
    acq = Acquirer(tmp_path / "ledger.db")
    acq.sign_on("111111", "000001")
    old = _terminal("111111", policy="query")
    actions = list(old.request_payment(0.0, WalletPaymentRequest(1, "basket-1", 2500, CODE,
                                                                 out_trade_no=old.new_order_number(1))))
    acq.gateway.receive(0.0, next(a.data for a in actions if isinstance(a, Send)), TID)  # paid; the answer is lost
    [order] = old.orders.values()
    steps = list(old.timer_fired(10.0, f"wallet:{order.rec.out_trade_no}"))  # no answer: the policy queries
    steps += old.timer_fired(15.0, f"wallet:{order.rec.out_trade_no}")
    acq.sign_on("222222", "000002")
    gateway, shown = _exchange(old, acq, 15.0, steps)
    assert _refusals(gateway) == [("111111", "222222", "20000")]
    assert not _results(shown)  # not "failed (wallet: closed)": the gateway said nothing about the order
    assert order.rec.status is SaleStatus.UNKNOWN and order.rec.trade_state is None
    acq.ledger.close()


def test_ids_that_never_signed_on_are_served_as_before(tmp_path: Path) -> None:
    acq = Acquirer(tmp_path / "ledger.db")
    _, gateway, shown = _pay(_terminal(None), acq, 1)
    assert _results(shown) == [("approved", "APPROVED")] and not _refusals(gateway)
    acq.ledger.close()

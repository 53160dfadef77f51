"""The wallet gateway behind the acquirer's QR gateway, as a sans-IO state machine.

Inputs: ``receive(now, bytes, sender)`` (a wallet request from a terminal; ``sender`` is the
terminal id the transport vouches for, if any), ``customer_confirms(now,
key)`` (the customer typed the password on the phone) and ``expire(now, key)`` (an unpaid
order's time is up). Outputs: ``WalletReply`` (bytes after a processing delay), ``Wake`` (call
me back at ``at`` for this order: the customer's confirmation, the auto-close) and trace
events. The gateway never reads a clock; its state is the wallet ledger.

The customer is part of the model: each payment code belongs to a ``Customer`` who needs
``confirm_after`` seconds to confirm on the phone (0: a small amount, no password; the order
is paid at once) or ``gives_up`` and never confirms. Until then the order is USERPAYING.

Rules kept here (the providers' documented behaviour, docs/wallet.md):
1. Idempotent on the merchant order number: a repeated pay gets the order's state, never a
   second charge; a pay reusing a number with another amount or code is refused.
2. An unpaid order closes by itself ``auto_close`` seconds after it was created.
3. Cancel (撤销): an unpaid order is closed (action ``close``) and a confirmation arriving
   after it is refused; a paid order is refunded (action ``refund``, state REVOKED). Repeats
   are one operation.
4. A cancel or a query for an order the gateway never saw closes that number (a tombstone,
   as the card host does for a reversal before its original): the late pay is refused.
5. Nobody acts for another terminal (``keys``: every terminal's MAC key, from the key file
   card MACs use). A request whose ``sign`` is missing or wrong, or that names a terminal
   without a key, is answered 40002 (``isv.invalid-signature`` / ``isv.invalid-app-id``)
   without a ``sign`` and changes nothing: a signed answer to an unauthenticated request
   would be a signing oracle (its order number and request id are the sender's choice). A
   request whose ``tid`` is not the terminal the transport vouches for is dropped unanswered
   (an answer would reach the impersonated terminal). Orders are keyed by terminal id and
   order number, so a terminal reaches only its own orders; a query, cancel or refund naming
   an order number another terminal uses is answered ``ACQ.TRADE_NOT_EXIST`` and records
   nothing (no tombstone). Answers carry the ``sign`` of the terminal they answer. Without
   keys nothing is verified and nothing signed, as before keys existed.
6. Terminal lives, as the card host's rule 8 (``acquirer_sim.host``): once a terminal id has
   signed on (0800, kept in the ledger's ``lives``), a wallet request must carry its current life
   (``life``). One without it, or from another life (a newer one signed on since), is answered
   20000 with sub code ``ACQ.SIGN_ON_AGAIN`` (the card host's 77, "sign on again"), signed, and
   changes nothing: no order, no tombstone, no money; logged as ``life_refused``. Ids that never
   signed on are served as before.
7. Cancel windows: a paid order can be cancelled (撤销) only within the provider's window: Alipay,
   the Beijing business day the trade was created (the acquirer's local day, from ``epoch``);
   WeChat Pay, 7 days. A cancel past it is refused (``W.CANCEL_EXPIRED``, ``retry_flag`` /
   ``recall`` N) and changes nothing: only a refund returns the money. Every cancel answer says
   whether to call again: Alipay's ``retry_flag``, WeChat Pay's ``recall`` (Y after a system error).
8. System errors (a scenario's ``SystemErrorPlan``, by payment code): the gateway answers a
   payment's requests of one kind with code 20000 and the provider's sub code (Alipay's
   ``ACQ.SYSTEM_ERROR``, WeChat Pay's ``SYSTEMERROR`` / ``BANKERROR``), after doing the work
   (``done``) or without: the answer tells the terminal nothing, it must ask again.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from possim.acquirer_sim.wallet_ledger import WAITING, OrderKey, Trade, WalletLedger, WalletTradeState
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.latency import Latency
from possim.protocol.mac import MacKey

#: Seconds after which an unpaid order closes by itself, per provider (docs/wallet.md):
#: WeChat revokes an unpaid micropay order 45 s after creation; Alipay closes an unpaid
#: barcode trade after a default of 3 minutes.
AUTO_CLOSE: dict[str, float] = {"alipay": 180.0, "wechat": 45.0}

#: The gateway's answer times: a pay goes to the wallet's risk checks, the rest reads the order.
PAY_LATENCY = Latency(value=0.3)
QUICK_LATENCY = Latency(value=0.1)
EPOCH = datetime(2026, 11, 25, 10, 0, 0)


@dataclass(frozen=True, slots=True)
class Customer:
    """Whose phone shows a payment code, and how they behave once it is scanned."""

    wallet: str = "customer"
    confirm_after: float = 0.0
    gives_up: bool = False


#: How long a paid order may be cancelled (撤销), in days: Alipay only on the trade's own business day
#: (0: the same day), WeChat Pay within 7 days. Outside it a refund is the only way back.
CANCEL_DAYS: dict[str, int] = {"alipay": 0, "wechat": 7}


@dataclass(frozen=True, slots=True)
class SystemErrorPlan:
    """Answer the first ``times`` requests of kind ``on`` of one payment with a system error: WeChat Pay's
    ``error`` (SYSTEMERROR, BANKERROR), Alipay's ACQ.SYSTEM_ERROR. ``done``: the work is done first."""

    on: W.RequestKind = "pay"
    error: str = "SYSTEMERROR"
    times: int = 1
    done: bool = True

    def sub_code(self, provider: str) -> str:
        return "ACQ.SYSTEM_ERROR" if provider == "alipay" else self.error


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """``customers`` by payment code; a code not listed belongs to a customer who pays at once."""

    customers: dict[str, Customer] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    default_balance: int = 100_000_000
    auto_close: dict[str, float] = field(default_factory=lambda: dict(AUTO_CLOSE))
    processing: Latency = PAY_LATENCY
    quick: Latency = QUICK_LATENCY
    epoch: datetime = EPOCH
    #: System errors to answer, by payment code (rule 8).
    errors: dict[str, SystemErrorPlan] = field(default_factory=dict)
    cancel_days: dict[str, int] = field(default_factory=lambda: dict(CANCEL_DAYS))


@dataclass(frozen=True, slots=True)
class WalletReply:
    data: bytes
    delay: float
    mti: str
    order: str
    tid: str
    #: The request's ``sign`` proved its sender (keys in use): a TCP connection may be bound to ``tid``.
    authenticated: bool = False


@dataclass(frozen=True, slots=True)
class Wake:
    """Call ``customer_confirms`` (``what='confirm'``) or ``expire`` for ``key`` at run time ``at``."""

    at: float
    key: OrderKey
    what: str


GatewayAction = WalletReply | Wake | ev.Event

_CODE = {"SUCCESS": "10000", "USERPAYING": "10003", "NOTPAY": "10003"}


class WalletGateway:
    """Sans-IO wallet gateway. See the module docstring for its rules."""

    def __init__(self, config: GatewayConfig, ledger: WalletLedger, rng: random.Random,
                 keys: Mapping[str, MacKey] | None = None) -> None:
        self.config = config
        self.ledger = ledger
        self.rng = rng
        #: Every terminal's MAC key by terminal id; ``None``: nothing verified, nothing signed (rule 5).
        self.keys = keys
        self._seq = ledger.conn.execute("SELECT COUNT(*) FROM wallet_trades").fetchone()[0]
        #: System errors answered so far, per order (rule 8).
        self._errors: dict[OrderKey, int] = {}
        for wallet, balance in config.balances.items():
            ledger.open_wallet(wallet, balance)

    # -- inputs ---------------------------------------------------------------------------

    def receive(self, now: float, data: bytes, sender: str | None = None) -> list[GatewayAction]:
        """Handle one request. ``sender``: the terminal id the transport vouches for, if any (rule 5)."""
        try:
            msg = W.decode(data, self.keys)
        except W.SignError as exc:
            return self._unauthenticated(exc, sender)
        except ProtocolError as exc:
            return [ev.MalformedFrame("host", str(exc))]
        if sender is not None and msg.tid != sender:
            return [ev.IdentityMismatch(msg.tid, msg.out_trade_no, msg.wire_kind, sender=sender)]
        if not isinstance(msg, W.WalletRequest):
            return [ev.UnexpectedMessage(msg.wire_kind, msg.out_trade_no)]
        current = self.ledger.current_life(msg.tid)
        if current is not None and msg.life != current:
            return self._life_refused(msg, current)
        handler = {"pay": self._pay, "query": self._query, "cancel": self._cancel, "refund": self._refund}[msg.kind]
        plan = self._error_plan(msg)
        if plan is None:
            return handler(now, msg)
        done = handler(now, msg) if plan.done else []
        answered = (WalletReply, ev.WalletAnswered)
        return [*(a for a in done if not isinstance(a, answered)),
                ev.WalletSystemError(msg.tid, msg.out_trade_no, mti=W.ANSWER_KINDS[msg.kind],
                                     error=plan.sub_code(msg.provider), done=plan.done),
                *self._answer(msg, "20000", "NOTPAY", sub_code=plan.sub_code(msg.provider))]

    def customer_confirms(self, now: float, key: OrderKey) -> list[GatewayAction]:
        """The customer confirmed on the phone: paid if the order still waits, refused if it closed."""
        trade = self.ledger.find(key)
        if trade is None or trade.state is not WalletTradeState.USERPAYING:
            return [ev.WalletConfirmRefused(*key, state=trade.state if trade else "UNKNOWN")]
        assert trade.wallet is not None
        if trade.amount > self.ledger.balance(trade.wallet):
            self.ledger.transition(now, trade, WalletTradeState.PAYERROR, close_reason="balance_not_enough")
            return [ev.WalletConfirmRefused(*key, state="PAYERROR")]
        self.ledger.transition(now, trade, WalletTradeState.SUCCESS, "charge")
        return [ev.WalletCustomerConfirmed(*key),
                ev.WalletCharged(*key, amount=trade.amount, wallet=trade.wallet, trade_no=trade.trade_no)]

    def expire(self, now: float, key: OrderKey) -> list[GatewayAction]:
        """The order's time is up: an order still unpaid closes by itself."""
        trade = self.ledger.find(key)
        if trade is None or trade.state not in WAITING:
            return []
        self.ledger.transition(now, trade, WalletTradeState.CLOSED, close_reason="auto_close")
        return [ev.WalletTradeClosed(*key, reason="auto_close")]

    def _error_plan(self, msg: W.WalletRequest) -> SystemErrorPlan | None:
        """Rule 8: whether this request is one the scenario has answered with a system error (counted)."""
        if not self.config.errors:
            return None
        key = (msg.tid, msg.out_trade_no)
        trade = self.ledger.find(key)
        code = msg.auth_code if msg.kind == "pay" else trade.auth_code if trade else None
        plan = self.config.errors.get(code or "")
        if plan is None or plan.on != msg.kind or self._errors.get(key, 0) >= plan.times:
            return None
        self._errors[key] = self._errors.get(key, 0) + 1
        return plan

    def _cancellable(self, now: float, trade: Trade) -> bool:
        """Rule 7: whether a paid order is still within its provider's cancel window."""
        days = self.config.cancel_days.get(trade.provider, 0)
        if days:
            return now - trade.created_at <= days * 86_400.0
        created = (self.config.epoch + timedelta(seconds=trade.created_at)).date()
        return (self.config.epoch + timedelta(seconds=now)).date() == created

    def _unauthenticated(self, exc: W.SignError, sender: str | None) -> list[GatewayAction]:
        """A request that proves nothing (rule 5): refused without a ``sign``, nothing changed."""
        msg = exc.message
        if sender is not None and msg.tid != sender:
            return [ev.IdentityMismatch(msg.tid, msg.out_trade_no, msg.wire_kind, sender=sender)]
        answerable = isinstance(msg, W.WalletRequest)
        event = ev.SecurityViolation(msg.tid, msg.out_trade_no, msg.wire_kind, reason=str(exc), rc="40002",
                                     answered=answerable)
        if not isinstance(msg, W.WalletRequest):
            return [event]
        sub_code = W.UNKNOWN_TERMINAL if isinstance(exc, W.UnknownTerminalError) else W.INVALID_SIGNATURE
        answer = msg.answer("40002", "CLOSED", sub_code=sub_code)
        return [event, WalletReply(W.encode(answer), self.config.quick.sample(self.rng), answer.wire_kind,
                                   msg.out_trade_no, msg.tid)]

    def _life_refused(self, msg: W.WalletRequest, current: str) -> list[GatewayAction]:
        """Rule 6: not from the id's current life: "sign on again", nothing looked up, nothing changed."""
        reason = ("no life number: the terminal did not sign on" if msg.life is None
                  else f"life {msg.life} is not the current life {current}")
        answer = msg.answer("20000", "CLOSED", sub_code=W.SIGN_ON_AGAIN)  # the state says nothing under 20000
        key = self.keys.get(msg.tid) if self.keys is not None else None
        return [ev.LifeRefused(msg.tid, msg.out_trade_no, msg.wire_kind, life=msg.life, current=current,
                               reason=reason, rc=answer.code),
                WalletReply(W.encode(answer, key), self.config.quick.sample(self.rng), answer.wire_kind,
                            msg.out_trade_no, msg.tid, authenticated=key is not None)]

    # -- requests -------------------------------------------------------------------------

    def _pay(self, now: float, msg: W.WalletRequest) -> list[GatewayAction]:
        key = (msg.tid, msg.out_trade_no)
        trade = self.ledger.find(key)
        if trade is not None:
            return self._repeated_pay(msg, trade)
        auth_code, amount = msg.auth_code or "", msg.amount or 0
        customer = self.config.customers.get(auth_code, Customer())
        self._seq += 1
        trade_no = self._trade_no(now)
        if amount > self.ledger.balance(customer.wallet):
            self.ledger.create(now, key, msg.provider, auth_code, customer.wallet, amount, WalletTradeState.PAYERROR,
                               trade_no,
                               "balance_not_enough")
            return [ev.WalletTradeOpened(*key, amount=amount, state="PAYERROR", wallet=customer.wallet),
                    *self._answer(msg, "40004", "PAYERROR", sub_code="ACQ.BUYER_BALANCE_NOT_ENOUGH")]
        self.ledger.create(now, key, msg.provider, auth_code, customer.wallet, amount, WalletTradeState.USERPAYING,
                           trade_no)
        opened: list[GatewayAction] = [ev.WalletTradeOpened(*key, amount=amount, wallet=customer.wallet,
                                                             state="USERPAYING")]
        if customer.confirm_after == 0 and not customer.gives_up:  # no password needed: paid at once
            charged = self.customer_confirms(now, key)
            trade = self.ledger.find(key)
            assert trade is not None
            return [*opened, *charged, *self._answer(msg, _CODE.get(trade.state, "40004"), trade.state,  # type: ignore[arg-type]
                                                     amount=amount, trade_no=trade_no)]
        wakes: list[GatewayAction] = [Wake(now + self.config.auto_close[msg.provider], key, "expire")]
        if not customer.gives_up:
            wakes.append(Wake(now + customer.confirm_after, key, "confirm"))
        return [*opened, *wakes, *self._answer(msg, "10003", "USERPAYING", amount=amount, trade_no=trade_no)]

    def _repeated_pay(self, msg: W.WalletRequest, trade: Trade) -> list[GatewayAction]:
        """Rule 1 and rule 4: the order number decides; a repeat is answered, never charged."""
        key = trade.key
        state: W.TradeState = trade.state  # type: ignore[assignment]
        if trade.auth_code is None:
            return [ev.WalletPayRefused(*key, state=state, reason=trade.close_reason or "closed"),
                    *self._answer(msg, "40004", state, sub_code="ACQ.TRADE_HAS_CLOSE")]
        if (trade.auth_code, trade.amount) != (msg.auth_code, msg.amount):
            return [ev.WalletPayRefused(*key, state=state, reason="order number reused for another payment"),
                    *self._answer(msg, "40004", state, sub_code="ACQ.CONTEXT_INCONSISTENT")]
        self.ledger.count_duplicate(key)
        return [ev.WalletDuplicatePay(*key, state=state),
                *self._answer(msg, _CODE.get(state, "40004"), state, amount=trade.amount,  # type: ignore[arg-type]
                              trade_no=trade.trade_no)]

    def _query(self, now: float, msg: W.WalletRequest) -> list[GatewayAction]:
        key = (msg.tid, msg.out_trade_no)
        trade = self.ledger.find(key)
        if trade is None and self.ledger.used_by_another(key):
            return self._not_yours(msg)
        if trade is None:
            self.ledger.create(now, key, msg.provider, None, None, 0, WalletTradeState.CLOSED, None, "query_not_found")
            return [ev.WalletTradeClosed(*key, reason="query_not_found"),
                    *self._answer(msg, "40004", "CLOSED", sub_code="ACQ.TRADE_NOT_EXIST")]
        return self._answer(msg, "10000", trade.state, amount=trade.amount,  # type: ignore[arg-type]
                            trade_no=trade.trade_no)

    def _cancel(self, now: float, msg: W.WalletRequest) -> list[GatewayAction]:
        key = (msg.tid, msg.out_trade_no)
        trade = self.ledger.find(key)
        if trade is None and self.ledger.used_by_another(key):
            return self._not_yours(msg)
        if trade is None:
            self.ledger.create(now, key, msg.provider, None, None, 0, WalletTradeState.CLOSED, None,
                               "cancel_before_pay")
            return [ev.WalletTradeClosed(*key, reason="cancel_before_pay"),
                    *self._answer(msg, "10000", "CLOSED", action="close")]
        if trade.state in WAITING:
            self.ledger.transition(now, trade, WalletTradeState.CLOSED, close_reason="cancelled")
            return [ev.WalletTradeClosed(*key, reason="cancelled"), *self._answer(msg, "10000", "CLOSED",
                                                                                  action="close")]
        if trade.state is WalletTradeState.SUCCESS and not self._cancellable(now, trade):
            sub_code = W.CANCEL_EXPIRED.get(trade.provider, W.CANCEL_EXPIRED["alipay"])
            return [ev.WalletCancelExpired(*key, sub_code=sub_code),
                    *self._answer(msg, "40004", "SUCCESS", sub_code=sub_code)]
        if trade.state is WalletTradeState.SUCCESS:
            assert trade.wallet is not None
            self.ledger.transition(now, trade, WalletTradeState.REVOKED, "refund",
                                   close_reason="cancelled_after_payment")
            return [ev.WalletRefunded(*key, amount=trade.amount, wallet=trade.wallet, reason="cancel"),
                    *self._answer(msg, "10000", "REVOKED", action="refund", amount=trade.amount)]
        return self._answer(msg, "10000", trade.state, action="none")  # type: ignore[arg-type]

    def _refund(self, now: float, msg: W.WalletRequest) -> list[GatewayAction]:
        """A full refund of a paid order; a repeat is answered, never refunded twice."""
        key = (msg.tid, msg.out_trade_no)
        trade = self.ledger.find(key)
        if trade is None and self.ledger.used_by_another(key):
            return self._not_yours(msg)
        if trade is None or trade.state not in (WalletTradeState.SUCCESS, WalletTradeState.REVOKED) \
                or msg.amount != trade.amount:
            state: W.TradeState = trade.state if trade else "CLOSED"  # type: ignore[assignment]
            return self._answer(msg, "40004", state, sub_code="ACQ.TRADE_STATUS_ERROR")
        if trade.state is WalletTradeState.SUCCESS:
            assert trade.wallet is not None
            self.ledger.transition(now, trade, WalletTradeState.REVOKED, "refund", close_reason="refunded")
            return [ev.WalletRefunded(*key, amount=trade.amount, wallet=trade.wallet, reason="refund"),
                    *self._answer(msg, "10000", "REVOKED", amount=trade.amount)]
        return self._answer(msg, "10000", "REVOKED", amount=trade.amount)

    def _not_yours(self, msg: W.WalletRequest) -> list[GatewayAction]:
        """Another terminal's order number: as if it did not exist (the providers' answer for an order
        outside the caller's account), and nothing recorded, so its owner's order is untouched."""
        return self._answer(msg, "40004", "CLOSED", sub_code=W.TRADE_NOT_EXIST)

    # -- helpers --------------------------------------------------------------------------

    def _answer(self, msg: W.WalletRequest, code: W.Code, state: W.TradeState, **fields: object) -> list[
            GatewayAction]:
        """The answer to an authenticated request, signed with its terminal's key when keys are in use.
        A cancel's answer says whether to call again (rule 7): Y only after a system error."""
        if msg.kind == "cancel":
            fields["retry_flag" if msg.provider == "alipay" else "recall"] = "Y" if code == "20000" else "N"
        answer = msg.answer(code, state, **fields)
        delay = (self.config.processing if msg.kind == "pay" else self.config.quick).sample(self.rng)
        key = self.keys.get(msg.tid) if self.keys is not None else None
        return [ev.WalletAnswered(msg.tid, msg.out_trade_no, mti=answer.wire_kind, state=state, code=code,
                                  action=answer.action),
                WalletReply(W.encode(answer, key), delay, answer.wire_kind, msg.out_trade_no, msg.tid,
                            authenticated=key is not None)]

    def _trade_no(self, now: float) -> str:
        """The gateway's own trade number: date and a sequence, as the providers' look."""
        day = (self.config.epoch + timedelta(seconds=now)).strftime("%Y%m%d")
        return f"{day}2200{self._seq:010d}"

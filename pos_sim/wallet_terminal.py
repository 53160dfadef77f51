"""The QR terminal: wallet payments by scanned payment code, as a sans-IO state machine.

Inputs: ``request_payment(now, request)`` (the cashier scanned a code), ``receive(now,
bytes)`` (a wallet answer) and ``timer_fired(now, name)``; each returns the actions for the
driver (``Send``, ``StartTimer``, ``CancelTimer``, ``WriteWallet``, ``WalletResult`` and trace
events). It never reads a clock.

Each payment is one merchant order with its own timer (``wallet:<order>``) and at most one
request in flight; several orders may be settling at once (a cancel still owed while the
next customer pays). What to do when the answer is USERPAYING or does not come is the wallet
policy's choice (``pos_sim.wallet_policies``).

Rules kept here:
1. The record (with the cancel armed, under the cancelling policies) is journaled before
   the pay leaves.
2. Every request for one payment (pay, queries, cancels, their repeats) carries the same
   order number, so the gateway can never charge twice; each carries a fresh request id,
   and only the answer to the request in flight is applied (a late or duplicated answer is
   journaled and traced, never applied).
3. No cancel before the provider's documented minimum after the order's creation.
4. A cancel ends only on an answer: close (nothing was paid), refund (it was paid, now
   refunded) or none (already final); a system error or silence is repeated with backoff.
5. With a MAC key every request carries a ``sign`` and an answer whose ``sign`` is missing or
   wrong is no answer at all (``response_rejected``): its timer runs on and the policy acts
   as after silence, so a forged SUCCESS never shows APPROVED. So is a refusal saying the
   gateway could not verify the request (code 40002): it is unsigned and proves nothing.
   An answer applies only to the request in flight: same request id and same kind.
6. Order numbers are date, terminal id, transaction number and ten random characters drawn
   from ``nonces`` (a seeded ``random.Random`` in a simulation, so a run repeats for its seed;
   ``secrets.SystemRandom`` in a terminal process): readable by a cashier, unguessable by a
   stranger who saw the previous ones.
7. A signed-on terminal's requests carry its life (``WalletTerminalConfig.life``). An answer with
   sub code ``ACQ.SIGN_ON_AGAIN`` says the gateway did nothing (another life of the id signed on
   since): a pay is shown not charged (``SIGN_ON_AGAIN_DISPLAY``, as a card sale answered 77), a
   query or cancel is no answer about the order.
8. A system error (code 20000 with the provider's sub code: Alipay's ACQ.SYSTEM_ERROR, WeChat Pay's
   SYSTEMERROR or BANKERROR) says nothing about the order, so its state is not recorded. A pay or
   query so answered goes to the policy's ``system_error`` (the providers' procedure: query again;
   without recovery the till says failed, the mistake the providers warn of); a cancel or refund
   is repeated.
9. A cancel answer's ``retry_flag`` (Alipay) or ``recall`` (WeChat Pay) Y means cancel again; N on
   a refusal means another cancel will not help: a cancel refused as past the provider's window
   (``W.CANCEL_EXPIRED``) becomes a refund of the order, which returns the money all the same; any
   other refusal leaves the cancel pending (``ReversalParked``), never forgotten.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from possim.pos_sim.actions import CancelTimer, Send, StartTimer
from possim.pos_sim.exchanges import SIGN_ON_AGAIN_DISPLAY
from possim.pos_sim.policies import get_policy
from possim.pos_sim.records import CANCEL_MOVES, UNSETTLED, WALLET_SALE_MOVES, ReversalState, SaleStatus
from possim.pos_sim.wallet_actions import WalletAction, WalletResult, WriteWallet
from possim.pos_sim.wallet_journal import WalletRecord
from possim.pos_sim.wallet_policies import PROFILES, WalletPolicy, WalletTiming
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey

TIMER_PREFIX = "wallet:"
#: The random part of an order number: Crockford's base 32 (no I, L, O, U), ten characters, 50 bits.
ORDER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ORDER_RANDOM_CHARS = 10


@dataclass(frozen=True, slots=True)
class WalletPaymentRequest:
    """A customer at the till shows a payment code: pay ``amount`` (minor units) by wallet."""

    txn_id: int
    intent: str
    amount: int
    auth_code: str
    provider: W.Provider = "alipay"
    #: The merchant order number, drawn by the driver (``WalletTerminal.new_order_number``) or, in
    #: a replay, the recorded one.
    out_trade_no: str | None = None


@dataclass(frozen=True, slots=True)
class WalletTerminalConfig:
    tid: str = "POS00001"
    policy: str = "none"
    epoch: datetime = datetime(2026, 11, 25, 10, 0, 0)
    #: Per provider; a scenario may override them.
    timings: dict[str, WalletTiming] | None = None
    #: The terminal's life number (the card terminal's sign-on): every request carries it; None: none.
    life: str | None = None

    def timing(self, provider: str) -> WalletTiming:
        return (self.timings or dict(PROFILES))[provider]


@dataclass(slots=True)
class _Order:
    """What the machine keeps in memory about one order (the journal keeps the rest)."""

    rec: WalletRecord
    inflight: str | None = None  # the request id in flight
    inflight_kind: str = ""
    step: str | None = None  # "query" | "cancel" | "limit": what the timer does when no request is in flight
    step_at: float = 0.0
    #: The cancel was refused as past its window: the owed cancel goes on as a refund (rule 9).
    refunding: bool = False


class WalletTerminal:
    """Sans-IO QR terminal. See the module docstring for its rules."""

    def __init__(self, config: WalletTerminalConfig, mac_key: MacKey | None = None,
                 nonces: random.Random | None = None) -> None:
        self.config = config
        #: This terminal's MAC key, shared only with the gateway; ``None`` runs without signs.
        self.mac_key = mac_key
        #: Where the random part of order numbers comes from (rule 6).
        self.nonces = nonces if nonces is not None else random.SystemRandom()
        self.policy: WalletPolicy = get_policy(config.policy).wallet
        self.orders: dict[str, _Order] = {}

    # -- inputs ---------------------------------------------------------------------------

    def request_payment(self, now: float, request: WalletPaymentRequest) -> list[WalletAction]:
        order_number = request.out_trade_no or self.new_order_number(request.txn_id)
        rec = WalletRecord(txn_id=request.txn_id, intent=request.intent, out_trade_no=order_number,
                           auth_code=request.auth_code, provider=request.provider, amount=request.amount,
                           started_at=now)
        if self.policy.arms_cancel:
            rec.cancel = CANCEL_MOVES.move(rec.cancel, ReversalState.ARMED)
        self.orders[rec.out_trade_no] = _Order(rec)
        return self._send(now, self.orders[rec.out_trade_no], "pay")

    def receive(self, now: float, data: bytes) -> list[WalletAction]:
        try:
            msg = W.decode(data, self.mac_key)
        except W.SignError as exc:
            return [ev.ResponseRejected(exc.message.wire_kind, exc.message.out_trade_no, exc.message.tid, str(exc))]
        except ProtocolError as exc:
            return [ev.MalformedFrame("terminal", str(exc))]
        order = self.orders.get(msg.out_trade_no)
        if not isinstance(msg, W.WalletResponse) or order is None or msg.tid != self.config.tid:
            return [ev.UnmatchedMessage(msg.wire_kind, msg.out_trade_no, msg.tid)]
        if msg.code == "40002":  # unsigned: the gateway could not verify the request, or someone says so
            return [ev.ResponseRejected(msg.wire_kind, msg.out_trade_no, msg.tid,
                                        f"refused as unverifiable ({msg.sub_code}): treated as no answer")]
        if msg.request_id != order.inflight or msg.kind != order.inflight_kind:
            order.rec.late_answers += 1
            return [WriteWallet(order.rec.snapshot()),
                    ev.WalletLateAnswer(msg.tid, msg.out_trade_no, msg.wire_kind, msg.trade_state)]
        order.inflight = None
        actions: list[WalletAction] = [CancelTimer(self._timer(order))]
        if msg.sub_code == W.SIGN_ON_AGAIN:  # its state says nothing about the order: not recorded
            return actions + self._sign_on_again(now, order, msg)
        if msg.code == "20000":  # nor does a system error's (rule 8)
            return actions + self._system_error(now, order, msg)
        order.rec.trade_state = msg.trade_state
        if msg.kind in ("cancel", "refund"):
            return actions + self._cancel_answered(now, order, msg)
        return actions + self._state_answered(now, order, msg)

    def timer_fired(self, now: float, name: str) -> list[WalletAction]:
        order = self.orders.get(name.removeprefix(TIMER_PREFIX))
        if order is None:
            return []
        if order.inflight is not None:
            kind, order.inflight = order.inflight_kind, None
            timeout: list[WalletAction] = [ev.WalletAnswerTimeout(self.config.tid, order.rec.out_trade_no,
                                                            W.WIRE_KINDS[kind])]
            if kind in ("cancel", "refund"):
                return timeout + self._retry_cancel(now, order, "timeout")
            return timeout + self._unanswered(now, order)
        step, order.step = order.step, None
        if step == "query":
            return self._send(now, order, "query")
        if step == "cancel":
            return self._send(now, order, "refund" if order.refunding else "cancel")
        if step == "limit" and order.rec.status in UNSETTLED:
            return self.policy.limit_reached(self, now, order.rec)
        return []

    def restore(self, now: float, records: list[WalletRecord]) -> list[WalletAction]:
        """Power came back: owed cancels resume; unsettled payments get the policy's recovery."""
        actions: list[WalletAction] = []
        for rec in sorted(records, key=lambda r: r.txn_id):
            self.orders[rec.out_trade_no] = _Order(rec)
            if rec.cancel is ReversalState.PENDING:
                actions += self.cancel(now, rec, "resumed after power loss")
            elif rec.status in UNSETTLED:
                actions += self.policy.restored(self, now, rec)
        return actions

    @property
    def idle(self) -> bool:
        """No request in flight and no step that will run by itself."""
        return all(o.inflight is None and o.step is None for o in self.orders.values())

    def new_order_number(self, txn_id: int) -> str:
        """A new merchant order number (rule 6), reused by every repeat of its payment: 32 characters,
        WeChat Pay's limit for ``out_trade_no``."""
        tid = "".join(c if c.isalnum() else "0" for c in self.config.tid)
        nonce = "".join(self.nonces.choice(ORDER_ALPHABET) for _ in range(ORDER_RANDOM_CHARS))
        return f"{self.config.epoch:%Y%m%d}{tid}{txn_id:06d}{nonce}"

    # -- the policy's vocabulary (pos_sim.wallet_policies.WalletOps) ------------------------

    def timing(self, rec: WalletRecord) -> WalletTiming:
        return self.config.timing(rec.provider)

    def query_later(self, now: float, rec: WalletRecord, at: float) -> list[WalletAction]:
        order = self.orders[rec.out_trade_no]
        if rec.queries >= self.timing(rec).query_attempts:
            return self.policy.queries_exhausted(self, now, rec)
        if rec.status is SaleStatus.PENDING:
            rec.status = WALLET_SALE_MOVES.move(rec.status, SaleStatus.UNKNOWN)
        return [WriteWallet(rec.snapshot()), *self._step(order, "query", at)]

    def wait_until(self, now: float, rec: WalletRecord, at: float) -> list[WalletAction]:
        return self._step(self.orders[rec.out_trade_no], "limit", at)

    def cancel(self, now: float, rec: WalletRecord, reason: str) -> list[WalletAction]:
        """Owe a cancel: journaled as pending, sent at once or at the documented minimum (rule 3)."""
        rec.cancel = CANCEL_MOVES.move(rec.cancel, ReversalState.PENDING)
        at = max(now, rec.started_at + self.timing(rec).cancel_min)
        return [WriteWallet(rec.snapshot()), ev.WalletCancelScheduled(self.config.tid, rec.out_trade_no, at, reason),
                *self._step(self.orders[rec.out_trade_no], "cancel", at)]

    def finish(self, now: float, rec: WalletRecord, status: SaleStatus, display: str) -> list[WalletAction]:
        rec.status = WALLET_SALE_MOVES.move(rec.status, status)
        rec.display, rec.finished_at = display, now
        return [WriteWallet(rec.snapshot()), WalletResult(rec.txn_id, rec.intent, status, display),
                ev.WalletOutcome(self.config.tid, rec.txn_id, rec.out_trade_no, str(status), display,
                                 rec.trade_state)]

    # -- answers --------------------------------------------------------------------------

    def _state_answered(self, now: float, order: _Order, msg: W.WalletResponse) -> list[WalletAction]:
        """An answer to a pay or a query: the order's state decides."""
        rec, state = order.rec, msg.trade_state
        if rec.status not in UNSETTLED:  # already told (a cancel is on its way): only journal what was learned
            return [WriteWallet(rec.snapshot())]
        if state == "SUCCESS":
            _disarm(rec)
            return self.finish(now, rec, SaleStatus.APPROVED,
                               "APPROVED" if msg.kind == "pay" else "APPROVED (after query)")
        if state in ("USERPAYING", "NOTPAY"):
            return self.policy.user_paying(self, now, rec)
        _disarm(rec)
        if state == "PAYERROR" or msg.kind == "pay":
            return self.finish(now, rec, SaleStatus.DECLINED, f"DECLINED ({msg.sub_code or state})")
        return self.finish(now, rec, SaleStatus.FAILED, f"FAILED (wallet: {state.lower()})")

    def _cancel_answered(self, now: float, order: _Order, msg: W.WalletResponse) -> list[WalletAction]:
        """A cancel's answer, or the answer to the refund that replaced it (rule 9)."""
        rec = order.rec
        if msg.kind == "cancel" and msg.sub_code in W.CANCEL_EXPIRED.values():
            return self._refund_instead(now, order, msg)
        if msg.kind == "refund" and msg.code == "40004" and msg.trade_state in ("CLOSED", "NOTPAY", "PAYERROR"):
            return self._acknowledge(rec, "none", msg.trade_state)  # never paid: nothing to give back
        if msg.code != "10000" and msg.call_again is False:
            return [ev.ReversalParked(rec.txn_id, rec.cancels)]  # told not to repeat: stays pending, never forgotten
        if msg.code != "10000":
            return self._retry_cancel(now, order, f"answered {msg.code}")
        return self._acknowledge(rec, msg.action or ("refund" if msg.trade_state == "REVOKED" else "none"),
                                 msg.trade_state)

    def _acknowledge(self, rec: WalletRecord, action: str, state: str) -> list[WalletAction]:
        """The owed cancel (or its refund) is done: journaled, so it is never sent again."""
        rec.cancel, rec.cancel_action = CANCEL_MOVES.move(rec.cancel, ReversalState.ACKED), action
        if rec.status in UNSETTLED or rec.status is SaleStatus.FAILED:
            rec.status = WALLET_SALE_MOVES.move(rec.status,
                                                SaleStatus.REVERSED if state == "REVOKED" else SaleStatus.FAILED)
        return [WriteWallet(rec.snapshot()),
                ev.WalletCancelAcknowledged(self.config.tid, rec.out_trade_no, rec.txn_id, action)]

    def _refund_instead(self, now: float, order: _Order, msg: W.WalletResponse) -> list[WalletAction]:
        """Rule 9: the cancel came too late for the provider's window; the same order is refunded in full."""
        order.refunding = True
        return [ev.WalletRefundInstead(self.config.tid, order.rec.out_trade_no, order.rec.txn_id, msg.sub_code or ""),
                *self._send(now, order, "refund")]

    def _system_error(self, now: float, order: _Order, msg: W.WalletResponse) -> list[WalletAction]:
        """Rule 8: the outcome is unknown. A cancel or refund is repeated; a pay or query goes to the policy."""
        said: list[WalletAction] = [ev.WalletSystemErrorAnswered(self.config.tid, msg.out_trade_no, msg.wire_kind,
                                                                 msg.sub_code or "")]
        if msg.kind in ("cancel", "refund"):
            return said + self._retry_cancel(now, order, f"answered {msg.sub_code or msg.code}")
        if order.rec.status not in UNSETTLED:
            return said
        return said + self.policy.system_error(self, now, order.rec)

    def _sign_on_again(self, now: float, order: _Order, msg: W.WalletResponse) -> list[WalletAction]:
        """Rule 7: the gateway did nothing (another life of this terminal id signed on since). A pay is
        over, not charged, shown so (the customer pays again as a new order); a query or cancel was
        no answer: the policy acts as after silence, a cancel (or its refund) is repeated within its attempts."""
        rec = order.rec
        refused: list[WalletAction] = [ev.SignOnAgain(msg.wire_kind, msg.out_trade_no, msg.tid, txn=rec.txn_id)]
        if msg.kind in ("cancel", "refund"):
            return refused + self._retry_cancel(now, order, "answered sign on again")
        if msg.kind == "pay" and rec.status is SaleStatus.PENDING:
            _disarm(rec)
            return refused + self.finish(now, rec, SaleStatus.FAILED, SIGN_ON_AGAIN_DISPLAY)
        return refused + self._unanswered(now, order)

    def _unanswered(self, now: float, order: _Order) -> list[WalletAction]:
        if order.rec.status not in UNSETTLED:
            return []
        return self.policy.no_answer(self, now, order.rec)

    def _retry_cancel(self, now: float, order: _Order, reason: str) -> list[WalletAction]:
        rec, timing = order.rec, self.timing(order.rec)
        if rec.cancels >= timing.cancel_attempts:
            return [ev.ReversalParked(rec.txn_id, rec.cancels)]  # still pending: never forgotten
        at = now + timing.cancel_backoff(rec.cancels)
        return [ev.WalletCancelScheduled(self.config.tid, rec.out_trade_no, at, reason),
                *self._step(order, "cancel", at)]

    # -- requests -------------------------------------------------------------------------

    def _send(self, now: float, order: _Order, kind: W.RequestKind) -> list[WalletAction]:
        """Count the request, journal the record (before it leaves), send it, arm the answer timer."""
        rec = order.rec
        rec.requests += 1
        if kind == "query":
            rec.queries += 1
        elif kind in ("cancel", "refund"):
            rec.cancels += 1
        request = W.WalletRequest(kind=kind, tid=self.config.tid, out_trade_no=rec.out_trade_no,
                                  request_id=f"{rec.out_trade_no}-{rec.requests}", provider=rec.provider,  # type: ignore[arg-type]
                                  auth_code=rec.auth_code if kind == "pay" else None,
                                  amount=rec.amount if kind in ("pay", "refund") else None, life=self.config.life)
        order.inflight, order.inflight_kind = request.request_id, kind
        return [WriteWallet(rec.snapshot()),
                Send(W.encode(request, self.mac_key), request.wire_kind, rec.out_trade_no, rec.txn_id),
                StartTimer(self._timer(order), now + self.timing(rec).answer_timeout)]

    def _step(self, order: _Order, step: str, at: float) -> list[WalletAction]:
        order.step, order.step_at = step, at
        return [StartTimer(self._timer(order), at)]

    def _timer(self, order: _Order) -> str:
        return TIMER_PREFIX + order.rec.out_trade_no


def _disarm(rec: WalletRecord) -> None:
    """The order's fate is known: the armed cancel is not needed."""
    if rec.cancel is ReversalState.ARMED:
        rec.cancel = CANCEL_MOVES.move(rec.cancel, ReversalState.NONE)

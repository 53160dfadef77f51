"""Wallet recovery policies and the providers' documented timings.

The four card policies of ``pos_sim.policies`` have wallet equivalents: each card policy holds
its twin (``RecoveryPolicy.wallet``), so one ``--policy`` governs both kinds of payment at a till:

| card policy | wallet equivalent |
|---|---|
| ``none`` | the screen says failed on USERPAYING or a timeout; nothing is done about the order |
| ``reversal`` | cancel (撤销), armed in the journal before the pay leaves: on no answer cancel |
|  | as soon as allowed; on USERPAYING give the customer the documented time, then cancel |
| ``query`` | query every few seconds until the order is final (an unpaid one closes by itself) |
| ``query-then-reversal`` | the providers' procedure: query while the customer is paying, cancel at |
|  | the documented limit, never before the documented minimum |

Timings (``PROFILES``) follow the providers' documents (docs/wallet.md cites them): Alipay's
barcode-pay demo queries every 5 s and gives up after about 30 s, cancels retried at 2 s;
WeChat Pay micropay queries while USERPAYING until 45 s and forbids a cancel (撤销) within
15 s of the order's creation. Every request for one payment carries the same order number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from possim.pos_sim.records import ReversalState, SaleStatus
from possim.pos_sim.wallet_actions import WalletAction
from possim.pos_sim.wallet_journal import WalletRecord

USER_PAYING_FAILED = "USER PAYING - PAYMENT FAILED"
TIMEOUT_FAILED = "TIMEOUT - PAYMENT FAILED"
#: The terminal knows only that no payment was confirmed in time, not that none was made: the customer
#: may have paid a moment ago, so the screen never says "unpaid".
NOT_PAID_IN_TIME = "NOT CONFIRMED IN TIME - CANCELLING"
SYSTEM_ERROR_FAILED = "SYSTEM ERROR - PAYMENT FAILED"


@dataclass(frozen=True, slots=True)
class WalletTiming:
    """How long a QR terminal waits, queries and cancels, from the provider's documents.

    ``answer_timeout``: wait for any answer. ``query_interval``: between queries while the
    customer is paying. ``pay_limit``: seconds after the order's creation after which an order
    still not final is cancelled. ``cancel_min``: no cancel earlier than this after creation.
    ``cancel_interval``: first pause before a cancel is repeated (doubling, capped at 60 s).
    ``cancel_attempts`` and ``query_attempts`` bound the repeats (a cancel out of attempts
    stays pending, never forgotten).
    """

    answer_timeout: float = 10.0
    query_interval: float = 5.0
    pay_limit: float = 30.0
    cancel_min: float = 0.0
    cancel_interval: float = 2.0
    cancel_attempts: int = 10
    query_attempts: int = 60

    def cancel_backoff(self, attempt: int) -> float:
        return min(60.0, self.cancel_interval * 2.0 ** max(0, attempt - 1))


#: Alipay face-to-face barcode pay and WeChat Pay micropay, as documented (docs/wallet.md).
PROFILES: Mapping[str, WalletTiming] = {
    "alipay": WalletTiming(query_interval=5.0, pay_limit=30.0, cancel_min=0.0, cancel_interval=2.0),
    "wechat": WalletTiming(query_interval=5.0, pay_limit=45.0, cancel_min=15.0, cancel_interval=2.0),
}


class WalletOps(Protocol):
    """The QR terminal's operations a wallet policy combines."""

    def query_later(self, now: float, rec: WalletRecord, at: float) -> list[WalletAction]:
        """Ask the gateway for the order's state at ``at`` (the fate is unknown until then)."""
        ...

    def cancel(self, now: float, rec: WalletRecord, reason: str) -> list[WalletAction]:
        """Owe a cancel (journaled as pending), sent as soon as the documented minimum allows."""
        ...

    def wait_until(self, now: float, rec: WalletRecord, at: float) -> list[WalletAction]:
        """Do nothing for this order until ``at``, then ask the policy again (``limit_reached``)."""
        ...

    def finish(self, now: float, rec: WalletRecord, status: SaleStatus, display: str) -> list[WalletAction]:
        """Tell the cashier ``display`` and journal ``status``."""
        ...

    def timing(self, rec: WalletRecord) -> WalletTiming:
        ...


class WalletPolicy:
    """The answers every wallet policy starts from, those of no recovery."""

    name = ""
    #: Journal a cancel record before the pay leaves, so a power loss still cancels.
    arms_cancel = False

    def user_paying(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        """The pay (or a query) answered USERPAYING: the customer is still confirming."""
        return ops.finish(now, rec, SaleStatus.UNKNOWN, USER_PAYING_FAILED)

    def no_answer(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        """The pay, or a query, got no answer (or the gateway said: system error, unknown)."""
        return ops.finish(now, rec, SaleStatus.UNKNOWN, TIMEOUT_FAILED)

    def limit_reached(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        """The documented time is up and the order is still not final."""
        return ops.finish(now, rec, SaleStatus.UNKNOWN, USER_PAYING_FAILED)

    def system_error(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        """The pay (or a query) was answered a system error (SYSTEMERROR, BANKERROR): the outcome is
        unknown: the policy acts as after silence (the query policies query again, as the providers
        say; the cancel policy cancels). Without recovery the till takes it for a failure."""
        return self.no_answer(ops, now, rec)

    def queries_exhausted(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.finish(now, rec, SaleStatus.UNKNOWN, "UNKNOWN - CALL HELP DESK")

    def restored(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        """Power came back with this payment unsettled (its cancel not already owed)."""
        if rec.status is SaleStatus.PENDING:
            return ops.finish(now, rec, SaleStatus.UNKNOWN, "POWER LOSS - PAYMENT UNKNOWN")
        return []


class NoWalletRecovery(WalletPolicy):
    """Show the failure: a USERPAYING or unanswered order is told as failed and left alone."""

    name = "none"

    def system_error(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.finish(now, rec, SaleStatus.UNKNOWN, SYSTEM_ERROR_FAILED)


class CancelPolicy(WalletPolicy):
    """The wallet's reversal: cancel every order whose outcome the terminal does not know."""

    name = "reversal"
    arms_cancel = True

    def user_paying(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.wait_until(now, rec, rec.started_at + ops.timing(rec).pay_limit)

    def no_answer(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.cancel(now, rec, "no answer") + ops.finish(now, rec, SaleStatus.UNKNOWN, TIMEOUT_FAILED)

    def limit_reached(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.cancel(now, rec, "not paid in time") + ops.finish(now, rec, SaleStatus.UNKNOWN,
                                                                     NOT_PAID_IN_TIME)

    def restored(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        if rec.cancel is ReversalState.ARMED:
            return self.no_answer(ops, now, rec)
        return super().restored(ops, now, rec)


class WalletQueryPolicy(WalletPolicy):
    """Query until the order is final; the gateway closes an unpaid order by itself."""

    name = "query"

    def user_paying(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.query_later(now, rec, now + ops.timing(rec).query_interval)

    def no_answer(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.query_later(now, rec, now + ops.timing(rec).query_interval)

    def limit_reached(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.query_later(now, rec, now)

    def restored(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.query_later(now, rec, now)


class QueryThenCancelPolicy(WalletQueryPolicy):
    """The providers' procedure: query while the customer pays, cancel at the documented limit."""

    name = "query-then-reversal"
    arms_cancel = True

    def user_paying(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return self._next(ops, now, rec)

    def no_answer(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return self._next(ops, now, rec)

    def limit_reached(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        return ops.cancel(now, rec, "not paid in time") + ops.finish(now, rec, SaleStatus.UNKNOWN,
                                                                     NOT_PAID_IN_TIME)

    queries_exhausted = limit_reached

    def _next(self, ops: WalletOps, now: float, rec: WalletRecord) -> list[WalletAction]:
        """Another query if it fits before the limit; else the cancel, at the limit."""
        timing = ops.timing(rec)
        limit = rec.started_at + timing.pay_limit
        if now + timing.query_interval < limit:
            return ops.query_later(now, rec, now + timing.query_interval)
        return ops.wait_until(now, rec, limit)

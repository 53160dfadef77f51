"""Recovery policies: what a terminal does when it does not know how a sale ended.

A policy is a strategy object asked three questions by the terminal: an original timed out,
status queries ran out, power came back with a sale unsettled. It answers by calling the
terminal's recovery operations (``Recovery``): reverse, query, finish. It also says whether a
reversal record is journaled before every original, whether completion advices are stored
and forwarded, and how many status queries may go unanswered (``queries_allowed``).

One policy answers for both instruments: its ``wallet`` attribute is the QR terminal's
strategy (``pos_sim.wallet_policies``) under the same name, so one ``--policy`` governs both
kinds of payment at a till.

``REGISTRY`` is the one list of policies; every other list (CLI choices, fuzzing, scenario
validation, tests) asks it when it runs. A new policy is one class plus one registry line
(``REGISTRY.register(MyPolicy())``, or ``REGISTRY.added(...)`` for a block).
"""

from __future__ import annotations

from typing import Protocol

from possim.pos_sim.actions import Action
from possim.pos_sim.records import ReversalState, SaleStatus, TxnRecord
from possim.pos_sim.wallet_policies import (
    CancelPolicy,
    NoWalletRecovery,
    QueryThenCancelPolicy,
    WalletPolicy,
    WalletQueryPolicy,
)
from possim.protocol.registry import Registry

TIMEOUT_FAILED = "TIMEOUT - PAYMENT FAILED"


class Recovery(Protocol):
    """The terminal operations a policy may combine."""

    def reverse(self, now: float, txn: TxnRecord) -> list[Action]:
        """Owe a reversal of ``txn`` (journaled as pending) and send it as soon as the line is free."""
        ...

    def query(self, now: float, txn: TxnRecord) -> list[Action]:
        """Mark ``txn`` unknown and ask the host for its fate with a status query."""
        ...

    def finish(self, now: float, txn: TxnRecord, status: SaleStatus, display: str) -> list[Action]:
        """Tell the cashier ``display`` and journal ``status`` as the sale's outcome."""
        ...


class RecoveryPolicy:
    """The answers every policy starts from, those of no recovery; subclasses override what
    they do differently."""

    name = ""
    #: Journal a reversal record before the original leaves (rule 1 of the terminal), so a
    #: terminal that loses power after sending still knows it may owe one.
    arms_reversal = False
    #: Store completion advices (0220) and repeat them (0221) until the host answers.
    forwards_advices = False
    #: What the QR terminal does under this policy (the same name governs both instruments).
    wallet: WalletPolicy = NoWalletRecovery()

    def queries_allowed(self, configured: int) -> int:
        """How many status queries of one sale may go unanswered before ``queries_exhausted``:
        the terminal's setting (``TerminalConfig.query_attempts``) unless the policy says otherwise."""
        return configured

    def original_timed_out(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        """No answer to the original: the sale is ``unknown`` (already journaled so by the terminal)."""
        return ops.finish(now, txn, SaleStatus.UNKNOWN, TIMEOUT_FAILED)

    def queries_exhausted(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        """Every status query went unanswered: only a person can settle the sale now."""
        return ops.finish(now, txn, SaleStatus.UNKNOWN, "UNKNOWN - CALL HELP DESK")

    def restored(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        """After a power loss, for a sale still pending or unknown whose reversal is not owed.

        A sale still ``pending`` was in flight when the power went: without recovery the
        cashier can only be told its fate is unknown.
        """
        if txn.status is SaleStatus.PENDING:
            return ops.finish(now, txn, SaleStatus.UNKNOWN, "POWER LOSS - PAYMENT UNKNOWN")
        return []


class NoRecovery(RecoveryPolicy):
    """Show the failure: a sale whose answer did not come is told as failed and left alone."""

    name = "none"


class ReversalPolicy(RecoveryPolicy):
    """Reverse every sale whose answer did not come, repeating until the host acknowledges."""

    name = "reversal"
    arms_reversal = True
    forwards_advices = True
    wallet = CancelPolicy()

    def original_timed_out(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        return ops.reverse(now, txn) + ops.finish(now, txn, SaleStatus.UNKNOWN, TIMEOUT_FAILED)

    def restored(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        """The armed record written before the original left is what makes the reversal possible."""
        if txn.reversal is ReversalState.ARMED:
            return ops.reverse(now, txn) + _power_loss_failed(ops, now, txn)
        return super().restored(ops, now, txn)


class QueryPolicy(RecoveryPolicy):
    """Ask the host what happened; approved finishes the sale, anything else fails it."""

    name = "query"
    forwards_advices = True
    wallet = WalletQueryPolicy()

    def original_timed_out(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        return ops.query(now, txn)

    def restored(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        if txn.reversal is not ReversalState.ACKED:
            return ops.query(now, txn)
        return super().restored(ops, now, txn)


class QueryThenReversalPolicy(QueryPolicy):
    """Query first; when the host cannot be reached, reverse (the reversal record is armed too)."""

    name = "query-then-reversal"
    arms_reversal = True
    wallet = QueryThenCancelPolicy()

    def queries_exhausted(self, ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
        return ops.reverse(now, txn) + ops.finish(now, txn, SaleStatus.UNKNOWN, TIMEOUT_FAILED)


def resume_reversal(ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
    """A reversal the journal says is owed is resumed under every policy: it was promised."""
    return ops.reverse(now, txn) + _power_loss_failed(ops, now, txn)


def _power_loss_failed(ops: Recovery, now: float, txn: TxnRecord) -> list[Action]:
    """A sale in flight when the power went is told as failed once its reversal is on its way."""
    if txn.status is SaleStatus.PENDING:
        return ops.finish(now, txn, SaleStatus.UNKNOWN, "POWER LOSS - PAYMENT FAILED")
    return []


#: Every recovery policy by name, in the order shown to users (the first is the default).
REGISTRY: Registry[RecoveryPolicy] = Registry("policy", lambda p: p.name)
for _policy in (NoRecovery(), ReversalPolicy(), QueryPolicy(), QueryThenReversalPolicy()):
    REGISTRY.register(_policy)


def get_policy(name: str) -> RecoveryPolicy:
    """The policy called ``name``; a ``ValueError`` naming the choices for anything else."""
    return REGISTRY.get(name)


def __getattr__(name: str) -> tuple[str, ...]:
    """``POLICY_NAMES``, kept for older imports, is asked of ``REGISTRY`` each time it is read."""
    if name == "POLICY_NAMES":
        return REGISTRY.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

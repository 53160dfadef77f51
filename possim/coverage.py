"""Fault coverage in domain words: which failure situations a batch of runs really exercised.

Situations come in groups (card, wallet, forgery), so a coverage table lists the groups a
batch could reach: ``possim fuzz`` draws forgeries among card faults, ``--wallet`` puts wallet
payments in the mix. Most situations are one trace event; a few need what followed an arrival.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from possim.forgery import ATTACKER_STAN, FORGED_RRN
from protocol import events as ev

Test = Callable[[ev.Event], bool]
RunTest = Callable[[Sequence[ev.Event]], bool]

#: The situation groups, in table order.
GROUPS = ("card", "wallet", "forgery")


def _lost(*mtis: str, answered: bool = False) -> Test:
    """A message of one of ``mtis`` lost on the way (``answered``: one that carried the host's RRN)."""
    return lambda e: isinstance(e, ev.NetDropped) and e.mti in mtis and (not answered or bool(e.rrn))


def _is(*classes: type[ev.Event]) -> Test:
    return lambda e: isinstance(e, classes)


def _attacker(e: ev.HostMessageEvent) -> bool:
    """A request with one of the attacker's STANs (``possim.forgery``): never one the terminal sent."""
    return e.stan.isdigit() and int(e.stan) > ATTACKER_STAN


def _forged_refused(*mtis: str) -> Test:
    """The host refused a forged request of ``mtis``: a wrong or missing MAC, another amount, another sender."""
    refusals = (ev.SecurityViolation, ev.ReversalAmountMismatch, ev.IdentityMismatch)
    return lambda e: isinstance(e, refusals) and e.mti in mtis and _attacker(e)


def _forged_applied(*classes: type[ev.HostMessageEvent]) -> Test:
    return lambda e: isinstance(e, classes) and _attacker(e)


def _forged_approval(accepted: bool) -> RunTest:
    """A forged approval reached the terminal; ``accepted``: its screen then said approved (no MAC to
    refuse it, and the sale still waiting for its answer), else it was refused or ignored."""

    def test(events: Sequence[ev.Event]) -> bool:
        return any(isinstance(e, ev.MsgReceived) and e.side == "terminal" and e.rrn == FORGED_RRN
                   and _approved_next(events[i + 1:]) == accepted for i, e in enumerate(events))

    return test


def _approved_next(events: Sequence[ev.Event]) -> bool:
    """Whether the terminal approved a sale before the next arrival (what the arrival before made it do)."""
    for e in events:
        if isinstance(e, ev.MsgReceived):
            return False
        if isinstance(e, ev.TxnOutcome):
            return e.status == "approved"
    return False


class Situation(NamedTuple):
    label: str
    group: str
    test: Test | None = None
    run: RunTest | None = None

    def seen(self, events: Sequence[ev.Event]) -> bool:
        if self.run is not None:
            return self.run(events)
        test = self.test
        assert test is not None
        return any(test(e) for e in events)


#: (label, test on one trace event). Labels are what QA reads after a fuzz run.
CARD: tuple[tuple[str, Test], ...] = (
    ("request lost before the host", _lost("0200", "0100")),
    ("response lost after host approval", _lost("0210", "0110", answered=True)),
    ("reversal lost", _lost("0400", "0401")),
    ("reversal answer lost", _lost("0410")),
    ("status query or answer lost", _lost("0600", "0610")),
    ("completion advice lost", _lost("0220", "0221")),
    ("message delayed", _is(ev.NetDelayed)),
    ("message lost in a partition", lambda e: isinstance(e, ev.NetDropped) and e.reason == "partition"),
    ("duplicate original absorbed by the host", _is(ev.DuplicateOriginal)),
    ("repeated reversal answered once", _is(ev.DuplicateReversal)),
    ("repeated advice captured once", _is(ev.DuplicateAdvice)),
    ("response timeout", _is(ev.TimerFired)),
    ("late response after timeout", _is(ev.LateResponse)),
    ("reversal before its original", _is(ev.LedgerReversalBeforeOriginal)),
    ("late original refused", _is(ev.LateOriginalRefused)),
    ("reversal credited a debit", _is(ev.LedgerReversalCredited)),
    ("reversal released a hold", _is(ev.LedgerReversalReleased)),
    ("status query answered APPROVED", lambda e: isinstance(e, ev.StatusAnswered) and e.status == "APPROVED"),
    ("status query answered NOT_FOUND", lambda e: isinstance(e, ev.StatusAnswered) and e.status == "NOT_FOUND"),
    ("host crash after commit", _is(ev.HostCrashed)),
    ("message lost while the host was down", _is(ev.HostDownDrop)),
    ("reversal retried with backoff", _is(ev.ReversalRetryScheduled)),
    ("pending reversal sent before the next sale", _is(ev.ReversalBeforeNextTransaction)),
    ("declined (funds, rules or issuer down)", _is(ev.LedgerDeclined)),
    ("customer paid again after a failure", _is(ev.CustomerRetries)),
    ("terminal power loss", _is(ev.TerminalPowerLost)),
    ("answer lost while the terminal was off", _is(ev.TerminalDownDrop)),
    ("recovery resumed from the journal after boot", lambda e: isinstance(e, ev.TerminalRestored) and e.records > 0),
)

WALLET: tuple[tuple[str, Test], ...] = (
    ("wallet pay lost before the gateway", _lost("QR_PAY")),
    ("wallet pay answer lost", _lost("QR_PAY_RESP")),
    ("wallet query or answer lost", _lost("QR_QUERY", "QR_QUERY_RESP")),
    ("wallet cancel or answer lost", _lost("QR_CANCEL", "QR_CANCEL_RESP")),
    ("customer still paying (USERPAYING)", lambda e: isinstance(e, ev.WalletTradeOpened) and e.state == "USERPAYING"),
    ("customer confirmed on the phone", _is(ev.WalletCustomerConfirmed)),
    ("confirmation refused: order already closed", _is(ev.WalletConfirmRefused)),
    ("unpaid wallet order closed by itself",
     lambda e: isinstance(e, ev.WalletTradeClosed) and e.reason == "auto_close"),
    ("wallet cancel refunded a paid order", lambda e: isinstance(e, ev.WalletRefunded) and e.reason == "cancel"),
    ("wallet order closed before its pay arrived",
     lambda e: isinstance(e, ev.WalletTradeClosed) and e.reason in ("cancel_before_pay", "query_not_found")),
    ("repeated wallet pay answered, never charged twice", _is(ev.WalletDuplicatePay)),
    ("customer paid again by QR or card", _is(ev.CustomerPaysAgain)),
)

FORGERY: tuple[Situation, ...] = (
    Situation("forged reversal refused", "forgery", _forged_refused("0400", "0401")),
    Situation("forged reversal accepted: money moved back", "forgery",
              _forged_applied(ev.LedgerReversalCredited, ev.LedgerReversalReleased)),
    Situation("forged approval ignored", "forgery", run=_forged_approval(accepted=False)),
    Situation("forged approval accepted: goods left unpaid", "forgery", run=_forged_approval(accepted=True)),
    Situation("forged query refused", "forgery", _forged_refused("0600")),
    Situation("forged query answered", "forgery", _forged_applied(ev.StatusAnswered)),
    Situation("MAC failure at the host (answered 63)", "forgery", _is(ev.SecurityViolation)),
    Situation("MAC failure at the terminal (answer refused)", "forgery", _is(ev.ResponseRejected)),
    Situation("forgery found nothing to aim at", "forgery", _is(ev.ForgeryMissed)),
)

#: Every situation, in table order.
SITUATIONS: tuple[Situation, ...] = (
    *(Situation(label, "card", test) for label, test in CARD),
    *(Situation(label, "wallet", test) for label, test in WALLET),
    *FORGERY,
)


def labels(groups: Iterable[str] = GROUPS) -> list[str]:
    """The labels of the situations of ``groups``, in table order."""
    wanted = set(groups)
    return [s.label for s in SITUATIONS if s.group in wanted]


def situations(records: Iterable[ev.Stamped]) -> set[str]:
    """The situations one run went through (each counted once per run)."""
    events = [stamped.event for stamped in records]
    return {s.label for s in SITUATIONS if s.seen(events)}


def tally(counter: Counter[str], records: Iterable[ev.Stamped]) -> None:
    counter.update(situations(records))

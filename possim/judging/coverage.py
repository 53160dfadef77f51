"""Fault coverage in domain words: which failure situations a batch of runs really exercised.

Situations come in groups (card, wallet, forgery), so a coverage table lists the groups a
batch could reach: ``possim fuzz`` draws forgeries among card faults, ``--wallet`` puts wallet
payments and wallet forgeries in the mix. Most situations are one trace event; a few need what followed an arrival.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from possim.fuzzing.forgery import ATTACKER_STAN, FORGED_RRN
from possim.protocol import events as ev

Test = Callable[[ev.Event], bool]
#: A test that needs what followed: the run's events and the index of the event it looks at.
RunTest = Callable[[Sequence[ev.Event], int], bool]
#: The event classes a situation looks at, and the test on one event of those classes.
Match = tuple[tuple[type[ev.Event], ...], Test]

#: The situation groups, in table order.
GROUPS = ("card", "wallet", "forgery")


def _always(_: ev.Event) -> bool:
    return True


def _lost(*mtis: str, answered: bool = False) -> Match:
    """A message of one of ``mtis`` lost on the way (``answered``: one that carried the host's RRN)."""
    return (ev.NetDropped,), lambda e: isinstance(e, ev.NetDropped) and e.mti in mtis and (not answered or bool(e.rrn))


def _is(*classes: type[ev.Event]) -> Match:
    return classes, _always


def _attacker(e: ev.HostMessageEvent) -> bool:
    """A request with one of the attacker's STANs (``possim.fuzzing.forgery``): never one the terminal sent."""
    return e.stan.isdigit() and int(e.stan) > ATTACKER_STAN


_REFUSALS = (ev.SecurityViolation, ev.ReversalAmountMismatch, ev.IdentityMismatch)


def _forged_refused(*mtis: str) -> Match:
    """The host refused a forged request of ``mtis``: a wrong or missing MAC, another amount, another sender."""
    return _REFUSALS, lambda e: isinstance(e, _REFUSALS) and e.mti in mtis and _attacker(e)


def _forged_applied(*classes: type[ev.HostMessageEvent]) -> Match:
    return classes, lambda e: isinstance(e, classes) and _attacker(e)


def _wallet_refused(*kinds: str) -> Match:
    """The wallet gateway refused a request of ``kinds`` whose ``sign`` proved nothing (code 40002)."""
    return (ev.SecurityViolation,), lambda e: isinstance(e, ev.SecurityViolation) and e.mti in kinds


def _forged_approval(accepted: bool) -> RunTest:
    """A forged approval reached the terminal; ``accepted``: its screen then said approved (no MAC to
    refuse it, and the sale still waiting for its answer), else it was refused or ignored."""

    def test(events: Sequence[ev.Event], i: int) -> bool:
        e = events[i]
        return (isinstance(e, ev.MsgReceived) and e.side == "terminal" and e.rrn == FORGED_RRN
                and _approved_next(events, i + 1) == accepted)

    return test


def _approved_next(events: Sequence[ev.Event], start: int) -> bool:
    """Whether the terminal approved a sale before the next arrival (what the arrival before made it do)."""
    for e in itertools.islice(events, start, None):
        if isinstance(e, ev.MsgReceived):
            return False
        if isinstance(e, ev.TxnOutcome):
            return e.status == "approved"
    return False


class Situation(NamedTuple):
    """One failure situation: seen when an event of ``classes`` passes ``test`` (or ``run``, for the
    few that need what followed the event)."""

    label: str
    group: str
    classes: tuple[type[ev.Event], ...]
    test: Test = _always
    run: RunTest | None = None

    def holds(self, events: Sequence[ev.Event], i: int) -> bool:
        """Whether event ``i`` (one of ``classes``) shows this situation."""
        return self.test(events[i]) if self.run is None else self.run(events, i)

    def seen(self, events: Sequence[ev.Event]) -> bool:
        """The definition, one situation over the whole run (``situations`` checks them all in one pass)."""
        return any(isinstance(e, self.classes) and self.holds(events, i) for i, e in enumerate(events))


def _card(label: str, match: Match) -> Situation:
    return Situation(label, "card", *match)


def _wallet(label: str, match: Match) -> Situation:
    return Situation(label, "wallet", *match)


def _forgery(label: str, match: Match) -> Situation:
    return Situation(label, "forgery", *match)


#: Labels are what QA reads after a fuzz run.
CARD: tuple[Situation, ...] = (
    _card("request lost before the host", _lost("0200", "0100")),
    _card("response lost after host approval", _lost("0210", "0110", answered=True)),
    _card("reversal lost", _lost("0400", "0401")),
    _card("reversal answer lost", _lost("0410")),
    _card("status query or answer lost", _lost("0600", "0610")),
    _card("completion advice lost", _lost("0220", "0221")),
    _card("message delayed", _is(ev.NetDelayed)),
    _card("message lost in a partition",
          ((ev.NetDropped,), lambda e: isinstance(e, ev.NetDropped) and e.reason == "partition")),
    _card("duplicate original absorbed by the host", _is(ev.DuplicateOriginal)),
    _card("repeated reversal answered once", _is(ev.DuplicateReversal)),
    _card("repeated advice captured once", _is(ev.DuplicateAdvice)),
    _card("response timeout", _is(ev.TimerFired)),
    _card("late response after timeout", _is(ev.LateResponse)),
    _card("reversal before its original", _is(ev.LedgerReversalBeforeOriginal)),
    _card("late original refused", _is(ev.LateOriginalRefused)),
    _card("reversal credited a debit", _is(ev.LedgerReversalCredited)),
    _card("reversal released a hold", _is(ev.LedgerReversalReleased)),
    _card("status query answered APPROVED",
          ((ev.StatusAnswered,), lambda e: isinstance(e, ev.StatusAnswered) and e.status == "APPROVED")),
    _card("status query answered NOT_FOUND",
          ((ev.StatusAnswered,), lambda e: isinstance(e, ev.StatusAnswered) and e.status == "NOT_FOUND")),
    _card("host crash after commit", _is(ev.HostCrashed)),
    _card("message lost while the host was down", _is(ev.HostDownDrop)),
    _card("reversal retried with backoff", _is(ev.ReversalRetryScheduled)),
    _card("pending reversal sent before the next sale", _is(ev.ReversalBeforeNextTransaction)),
    _card("declined (funds, rules or issuer down)", _is(ev.LedgerDeclined)),
    _card("customer paid again after a failure", _is(ev.CustomerRetries)),
    _card("terminal power loss", _is(ev.TerminalPowerLost)),
    _card("answer lost while the terminal was off", _is(ev.TerminalDownDrop)),
    _card("recovery resumed from the journal after boot",
          ((ev.TerminalRestored,), lambda e: isinstance(e, ev.TerminalRestored) and e.records > 0)),
)

WALLET: tuple[Situation, ...] = (
    _wallet("wallet pay lost before the gateway", _lost("QR_PAY")),
    _wallet("wallet pay answer lost", _lost("QR_PAY_RESP")),
    _wallet("wallet query or answer lost", _lost("QR_QUERY", "QR_QUERY_RESP")),
    _wallet("wallet cancel or answer lost", _lost("QR_CANCEL", "QR_CANCEL_RESP")),
    _wallet("customer still paying (USERPAYING)",
            ((ev.WalletTradeOpened,), lambda e: isinstance(e, ev.WalletTradeOpened) and e.state == "USERPAYING")),
    _wallet("customer confirmed on the phone", _is(ev.WalletCustomerConfirmed)),
    _wallet("confirmation refused: order already closed", _is(ev.WalletConfirmRefused)),
    _wallet("unpaid wallet order closed by itself",
            ((ev.WalletTradeClosed,), lambda e: isinstance(e, ev.WalletTradeClosed) and e.reason == "auto_close")),
    _wallet("wallet cancel refunded a paid order",
            ((ev.WalletRefunded,), lambda e: isinstance(e, ev.WalletRefunded) and e.reason == "cancel")),
    _wallet("wallet order closed before its pay arrived",
            ((ev.WalletTradeClosed,), lambda e: isinstance(e, ev.WalletTradeClosed)
             and e.reason in ("cancel_before_pay", "query_not_found"))),
    _wallet("repeated wallet pay answered, never charged twice", _is(ev.WalletDuplicatePay)),
    _wallet("customer paid again by QR or card", _is(ev.CustomerPaysAgain)),
)

FORGERY: tuple[Situation, ...] = (
    _forgery("forged reversal refused", _forged_refused("0400", "0401")),
    _forgery("forged reversal accepted: money moved back",
             _forged_applied(ev.LedgerReversalCredited, ev.LedgerReversalReleased)),
    Situation("forged approval ignored", "forgery", (ev.MsgReceived,), run=_forged_approval(accepted=False)),
    Situation("forged approval accepted: goods left unpaid", "forgery", (ev.MsgReceived,),
              run=_forged_approval(accepted=True)),
    _forgery("forged query refused", _forged_refused("0600")),
    _forgery("forged query answered", _forged_applied(ev.StatusAnswered)),
    _forgery("MAC failure at the host (answered 63)", _is(ev.SecurityViolation)),
    _forgery("MAC failure at the terminal (answer refused)", _is(ev.ResponseRejected)),
    _forgery("forgery found nothing to aim at", _is(ev.ForgeryMissed)),
    _forgery("forged wallet cancel or refund refused (40002)", _wallet_refused("QR_CANCEL", "QR_REFUND")),
    _forgery("forged wallet pay or query refused (40002)", _wallet_refused("QR_PAY", "QR_QUERY")),
    _forgery("genuine wallet request replayed",
             ((ev.ForgeryInjected,), lambda e: isinstance(e, ev.ForgeryInjected) and e.kind == "wallet_replay")),
)

#: Every situation, in table order.
SITUATIONS: tuple[Situation, ...] = (*CARD, *WALLET, *FORGERY)

#: The situations that look at events of one class, filled as classes first appear in a trace.
_BY_CLASS: dict[type[ev.Event], tuple[Situation, ...]] = {}


def _looking_at(cls: type[ev.Event]) -> tuple[Situation, ...]:
    found = _BY_CLASS.get(cls)
    if found is None:
        found = _BY_CLASS[cls] = tuple(s for s in SITUATIONS if issubclass(cls, s.classes))
    return found


def labels(groups: Iterable[str] = GROUPS) -> list[str]:
    """The labels of the situations of ``groups``, in table order."""
    wanted = set(groups)
    return [s.label for s in SITUATIONS if s.group in wanted]


def situations(records: Iterable[ev.Stamped]) -> set[str]:
    """The situations one run went through (each counted once per run).

    One pass over the trace: each event is offered only to the situations that look at its
    class, so the tally costs a few dictionary lookups per event, not one test per situation
    per event (it runs after every fuzzed schedule)."""
    events = [stamped.event for stamped in records]
    seen: set[str] = set()
    for i, e in enumerate(events):
        for s in _looking_at(type(e)):
            if s.label not in seen and s.holds(events, i):
                seen.add(s.label)
    return seen


#: Keys of a tally that count events, not runs: every forgery the attacker injected, and the wallet ones.
FORGERIES_INJECTED = "forgeries_injected"
WALLET_FORGERIES_INJECTED = "wallet_forgeries_injected"


def tally(counter: Counter[str], records: Iterable[ev.Stamped]) -> None:
    """Add one run: each situation it went through (once per run), and the forgeries injected into it
    (``FORGERIES_INJECTED``, ``WALLET_FORGERIES_INJECTED``: one per forged message), so a search can
    show that its forgeries were really drawn and sent."""
    records = list(records)
    counter.update(situations(records))
    kinds = [r.event.kind for r in records if type(r.event) is ev.ForgeryInjected]
    if kinds:
        counter[FORGERIES_INJECTED] += len(kinds)
        counter[WALLET_FORGERIES_INJECTED] += sum(kind.startswith("wallet_") for kind in kinds)

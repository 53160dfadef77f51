"""Fault coverage in domain words: which failure situations a batch of runs really exercised."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from protocol import events as ev

Test = Callable[[ev.Event], bool]


def _lost(*mtis: str, answered: bool = False) -> Test:
    """A message of one of ``mtis`` lost on the way (``answered``: one that carried the host's RRN)."""
    return lambda e: isinstance(e, ev.NetDropped) and e.mti in mtis and (not answered or bool(e.rrn))


def _is(*classes: type[ev.Event]) -> Test:
    return lambda e: isinstance(e, classes)


#: (label, test on one trace event). Labels are what QA reads after a fuzz run.
SITUATIONS: tuple[tuple[str, Test], ...] = (
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


def situations(records: Iterable[ev.Stamped]) -> set[str]:
    """The situations one run went through (each counted once per run)."""
    seen: set[str] = set()
    for stamped in records:
        for label, test in SITUATIONS:
            if label not in seen and test(stamped.event):
                seen.add(label)
    return seen


def tally(counter: Counter[str], records: Iterable[ev.Stamped]) -> None:
    counter.update(situations(records))

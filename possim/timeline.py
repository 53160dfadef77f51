"""The run as a readable three-column timeline: terminal | network | host, in run time.

Rows are chosen by event class (``protocol.events``) and worded in the reader's language
(:mod:`possim.i18n`). Only the response timer firing is a TIMEOUT; a retry wake-up for
recovery work is not shown (its effect, the repeat, is). A message that reaches a host
which is down is shown once, as lost (the host never read it), not as received and then
dropped: :func:`lost_at_host` finds those arrivals.

A new event gets its row here: one ``case`` returning ``tr("English text {field}", field=...)``,
and one entry for that text in each catalogue under ``possim/locale``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from possim.i18n import Tr
from protocol import events as ev
from protocol.mti import NAMES

Row = tuple[float, str, str, str]
_EN = Tr("en")


def mti_name(mti: str, tr: Tr) -> str:
    """'0400' -> 'reversal' / '冲正' (the MTI names of ``protocol.mti`` are catalogue entries)."""
    return tr(NAMES[mti]) if mti in NAMES else mti


def _msg(e: ev.MsgSent | ev.MsgReceived, tr: Tr) -> str:
    rrn = tr(" rrn {rrn}", rrn=e.rrn) if e.rrn else ""
    return tr("{mti} {name} stan {stan}", mti=e.mti, name=mti_name(e.mti, tr), stan=e.stan or "-") + rrn


def screen(display: str, tr: Tr) -> str:
    """What the cashier's screen said, in the reader's language (codes and host words kept)."""
    for prefix, msgid, key in (("DECLINED (", "DECLINED ({rc})", "rc"), ("FAILED (host: ", "FAILED (host: {status})",
                                                                       "status")):
        if display.startswith(prefix) and display.endswith(")"):
            inner = display[len(prefix):-1]
            return tr(msgid, **{key: tr(inner) if key == "status" else inner})
    return tr(display)


def _terminal(e: ev.Event, tr: Tr) -> str | None:
    match e:
        case ev.PaymentRequested():
            return tr("customer pays {amount} ({kind}, txn {txn})", amount=tr.money(e.amount), kind=tr(e.kind),
                      txn=e.txn)
        case ev.CustomerRetries():
            return tr("told it failed, the customer pays AGAIN (txn {txn})", txn=e.retry_txn)
        case ev.MsgSent():
            return f"-> {_msg(e, tr)}"
        case ev.MsgReceived():
            return f"<- {_msg(e, tr)}"
        case ev.TimerFired():
            return tr("TIMEOUT: no answer in time")
        case ev.TxnOutcome():
            return tr("screen: {display} (journal: {status})", display=screen(e.display, tr), status=tr(e.status))
        case ev.ReversalAcknowledged():
            return tr("reversal of txn {txn} acknowledged", txn=e.txn)
        case ev.LateResponse():
            return tr("late answer {mti} rc {rc} for txn {txn}: logged, ignored", mti=e.mti, rc=e.rc, txn=e.txn)
        case ev.DuplicateResponse():
            return tr("duplicate answer {mti} rc {rc} for txn {txn}: logged, ignored", mti=e.mti, rc=e.rc, txn=e.txn)
        case ev.ReversalRetryScheduled():
            return tr("reversal retry at {at}s ({reason})", at=f"{e.at:.1f}", reason=_reason(e.reason, tr))
        case ev.ReversalParked():
            return tr("reversal gave up after {attempts} tries: stays pending", attempts=e.attempts)
        case ev.ReversalBeforeNextTransaction():
            return tr("pending reversal goes out before the next sale")
        case ev.TerminalPowerLost():
            return tr("POWER LOST: memory gone, journal kept")
        case ev.TerminalDownDrop():
            return tr("{mti} arrives at a dead terminal: LOST", mti=e.mti)
        case ev.TerminalRestored():
            return tr("power back: {records} journal record(s) reloaded", records=e.records)
        case ev.MalformedFrame():
            return tr("malformed frame")
        case ev.UnmatchedMessage():
            return tr("unmatched message")
    return None


def _reason(reason: str, tr: Tr) -> str:
    """'timeout' or 'answered 05' (the host's refusal code)."""
    if reason.startswith("answered "):
        return tr("answered {rc}", rc=reason.removeprefix("answered "))
    return tr(reason)


def note(text: str, tr: Tr) -> str:
    """A reconciliation note in the reader's language (the one with a status in it is a pattern)."""
    prefix = "host settles a debit the terminal shows as "
    if text.startswith(prefix):
        status, _, remedy = text.removeprefix(prefix).partition(": ")
        said = tr("host settles a debit the terminal shows as {status}", status=tr(status))
        return f"{said}: {tr(remedy)}" if remedy else said
    return tr(text)


def _network(e: ev.Event, tr: Tr) -> str | None:
    match e:
        case ev.NetDropped():
            return tr("X {mti} LOST ({reason})", mti=e.mti, reason=tr(e.reason.replace("_", " ")))
        case ev.NetDelayed():
            return tr("~ {mti} delayed (arrives after {delays})", mti=e.mti, delays=_delays(e))
        case ev.NetDuplicated():
            return tr("~ {mti} duplicated (arrives after {delays})", mti=e.mti, delays=_delays(e))
        case ev.NetReordered():
            return tr("~ {mti} reordered (arrives after {delays})", mti=e.mti, delays=_delays(e))
    return None


def _delays(e: ev.NetTampered) -> str:
    return ", ".join(f"{d:.2f}s" for d in e.delays)


def _host(e: ev.Event, tr: Tr) -> str | None:
    match e:
        case ev.MsgReceived():
            return f"<- {_msg(e, tr)}"
        case ev.MsgSent():
            return f"-> {_msg(e, tr)}"
        case ev.LedgerDebit():
            return tr("ledger: debit {amount}", amount=tr.money(e.amount))
        case ev.LedgerHold():
            return tr("ledger: hold {amount}", amount=tr.money(e.amount))
        case ev.LedgerCapture():
            return tr("ledger: capture {amount}", amount=tr.money(e.amount))
        case ev.LedgerDeclined():
            return tr("ledger: declined ({rc})", rc=e.rc)
        case ev.LedgerReversalCredited():
            return tr("ledger: reversal credited")
        case ev.LedgerReversalReleased():
            return tr("ledger: reversal released the hold")
        case ev.LedgerReversalNothingToReverse():
            return tr("ledger: reversal, nothing to reverse")
        case ev.LedgerReversalBeforeOriginal():
            return tr("ledger: reversal before its original")
        case ev.HostCrashed():
            return tr("CRASH after commit, no reply")
        case ev.HostRestarted():
            return tr("host back up")
        case ev.HostDownDrop():
            return tr("X {mti} LOST: the host is down", mti=e.mti)
        case ev.DuplicateOriginal():
            return tr("duplicate: first answer again")
        case ev.DuplicateReversal():
            return tr("repeat reversal: already done")
        case ev.LateOriginalRefused():
            return tr("late original refused")
        case ev.StatusAnswered():
            return tr("status: {status}", status=tr(e.status.replace("_", " ").lower()))
        case ev.AdviceRejected():
            return tr("advice rejected {rc}", rc=e.rc)
        case ev.DuplicateAdvice():
            return tr("repeat advice: already captured")
        case ev.ReversalRefused():
            return tr("reversal refused ({rc})", rc=e.rc)
    return None


def lost_at_host(records: Sequence[ev.Stamped]) -> set[int]:
    """Indices of host arrivals that the next host event says were dropped because the host was down."""
    lost = set()
    for i, stamped in enumerate(records[:-1]):
        e, following = stamped.event, records[i + 1].event
        if (isinstance(e, ev.MsgReceived) and e.side == "host" and isinstance(following, ev.HostDownDrop)
                and following.mti == e.mti):
            lost.add(i)
    return lost


def row(stamped: ev.Stamped, tr: Tr = _EN) -> Row | None:
    """The timeline row of one trace entry, or None when the event is not worth a row."""
    e = stamped.event
    where = ev.lane(e)
    if where == "host":
        cell = _host(e, tr)
        return (stamped.t, "", "", cell) if cell else None
    if where == "network":
        cell = _network(e, tr)
        return (stamped.t, "", cell, "") if cell else None
    cell = _terminal(e, tr)
    return (stamped.t, cell, "", "") if cell else None


def rows(records: Iterable[ev.Stamped], tr: Tr = _EN) -> list[Row]:
    entries = list(records)
    hidden = lost_at_host(entries)
    return [r for i, s in enumerate(entries) if i not in hidden and (r := row(s, tr)) is not None]

"""The run as a readable three-column timeline: terminal | network | host, in run time.

Rows are chosen by event class (``protocol.events``). Only the response timer firing is a
TIMEOUT; a retry wake-up for recovery work is not shown (its effect, the repeat, is).
"""

from __future__ import annotations

from collections.abc import Iterable

from possim.money import format_amount
from protocol import events as ev
from protocol.mti import NAMES

Row = tuple[float, str, str, str]


def _msg(e: ev.MsgSent | ev.MsgReceived) -> str:
    name = NAMES.get(e.mti, e.mti)
    rrn = f" rrn {e.rrn}" if e.rrn else ""
    return f"{e.mti} {name} stan {e.stan}{rrn}"


def _terminal(e: ev.Event) -> str | None:
    match e:
        case ev.PaymentRequested():
            return f"customer pays {format_amount(e.amount)} ({e.kind}, txn {e.txn})"
        case ev.CustomerRetries():
            return f"customer told it failed: pays AGAIN (txn {e.retry_txn})"
        case ev.MsgSent():
            return f"-> {_msg(e)}"
        case ev.MsgReceived():
            return f"<- {_msg(e)}"
        case ev.TimerFired():
            return "TIMEOUT: no answer in time"
        case ev.TxnOutcome():
            return f"screen: {e.display} (journal: {e.status})"
        case ev.ReversalAcknowledged():
            return f"reversal of txn {e.txn} acknowledged"
        case ev.LateResponse() | ev.DuplicateResponse():
            return f"{e.NAME.replace('_', ' ')} {e.mti} rc {e.rc} for txn {e.txn}: logged, ignored"
        case ev.ReversalRetryScheduled():
            return f"reversal retry at {e.at:.1f}s ({e.reason})"
        case ev.ReversalParked():
            return f"reversal gave up after {e.attempts} tries: stays pending"
        case ev.ReversalBeforeNextTransaction():
            return "pending reversal goes out before the next sale"
        case ev.TerminalPowerLost():
            return "POWER LOST: memory gone, journal kept"
        case ev.TerminalDownDrop():
            return f"{e.mti} arrives at a dead terminal: LOST"
        case ev.TerminalRestored():
            return f"power back: {e.records} journal record(s) reloaded"
        case ev.MalformedFrame() | ev.UnmatchedMessage():
            return e.NAME.replace("_", " ")
    return None


def _network(e: ev.Event) -> str | None:
    match e:
        case ev.NetDropped():
            return f"X {e.mti} LOST ({e.reason.replace('_', ' ')})"
        case ev.NetTampered():
            delays = ", ".join(f"{d:.2f}s" for d in e.delays)
            return f"~ {e.mti} {e.NAME[4:]} (arrives after {delays})"
    return None


def _host(e: ev.Event) -> str | None:
    match e:
        case ev.MsgReceived():
            return f"<- {_msg(e)}"
        case ev.MsgSent():
            return f"-> {_msg(e)}"
        case ev.LedgerMovement() | ev.LedgerCapture():
            return f"ledger: {e.NAME[7:].replace('_', ' ')} {format_amount(e.amount)}"
        case ev.LedgerDeclined() | ev.LedgerReversal():
            return f"ledger: {e.NAME[7:].replace('_', ' ')}"
        case ev.HostCrashed():
            return "CRASH after commit, no reply"
        case ev.HostRestarted():
            return "host back up"
        case ev.HostDownDrop():
            return f"down: {e.mti} lost"
        case ev.DuplicateOriginal():
            return "duplicate: first answer again"
        case ev.DuplicateReversal():
            return "repeat reversal: already done"
        case ev.LateOriginalRefused():
            return "late original refused"
        case ev.StatusAnswered():
            return f"status: {e.status}"
        case ev.AdviceRejected():
            return f"advice rejected {e.rc}"
        case ev.DuplicateAdvice():
            return "repeat advice: already captured"
    return None


def row(stamped: ev.Stamped) -> Row | None:
    """The timeline row of one trace entry, or None when the event is not worth a row."""
    e = stamped.event
    where = ev.lane(e)
    if where == "host":
        cell = _host(e)
        return (stamped.t, "", "", cell) if cell else None
    if where == "network":
        cell = _network(e)
        return (stamped.t, "", cell, "") if cell else None
    cell = _terminal(e)
    return (stamped.t, cell, "", "") if cell else None


def rows(records: Iterable[ev.Stamped]) -> list[Row]:
    return [r for r in map(row, records) if r is not None]

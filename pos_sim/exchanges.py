"""The kinds of exchange a terminal runs, the shape of their table, and how reversal answers read.

An exchange is one request and the answer the terminal waits for. Each kind has one
``ExchangeSpec`` (registered in ``pos_sim.terminal.EXCHANGES``): how its request is built, which
timeout applies, what an answer does, what a timeout does and how urgent it is. A new
request/response pair is one more spec registered there with its handlers (its kind any name:
``ExchangeKind`` names possim's own), and a ``protocol.mti.MessageKind`` for its MTIs.

This module knows nothing of the terminal class: a spec's handlers take the terminal as their
first argument (``TerminalT``), so the terminal imports this module and never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from possim.pos_sim.actions import Action
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.records import TxnRecord
from possim.protocol.messages import Message

#: The terminal a spec's handlers act on (``pos_sim.terminal.Terminal``).
TerminalT = TypeVar("TerminalT")


class ExchangeKind(StrEnum):
    """A customer's original, recovery work (a reversal, a status query, a completion advice), or
the day's settlement and its batch upload."""

    ORIGINAL = "original"
    REVERSAL = "reversal"
    QUERY = "query"
    ADVICE = "advice"
    #: End of day: batch totals (0500), and when they disagree one upload (0320) per approved sale.
    SETTLEMENT = "settlement"
    BATCH_UPLOAD = "batch_upload"
    #: A terminal process starting: the 0800 carrying its life number, before anything else.
    SIGN_ON = "sign_on"


@dataclass(slots=True)
class Task:
    """Recovery work (a reversal, a status query, a completion advice...), due at ``due``."""

    #: An ``ExchangeKind``, or the name of an exchange kind registered from outside.
    kind: str
    txn: TxnRecord
    due: float


@dataclass(slots=True)
class Exchange:
    """The one request in flight and what answer it waits for."""

    kind: str
    txn: TxnRecord
    request: Message
    task: Task | None


@dataclass(frozen=True, slots=True)
class ExchangeSpec(Generic[TerminalT]):
    """Everything the terminal needs to know about one kind of exchange."""

    #: An ``ExchangeKind`` for possim's own, any other name for a kind registered from outside.
    kind: str
    #: When several pieces of recovery work are due, the lowest goes first (then the earliest).
    priority: int
    #: How long to wait for the answer.
    timeout: Callable[[TerminalConfig], float]
    #: Count the attempt on the record and build the request (a repeat keeps its STAN).
    build: Callable[[TerminalT, float, TxnRecord], Message]
    #: The answer matched the request in flight: apply it.
    answered: Callable[[TerminalT, float, Exchange, Message], list[Action]]
    #: No answer in time.
    timed_out: Callable[[TerminalT, float, Exchange], list[Action]]
    #: The record field that keeps this exchange's STAN, so a restored terminal still
    #: recognises late answers (and does not reuse the number); None if not journaled.
    stan_of: Callable[[TxnRecord], str | None]
    #: The MTI of the request for a journaled record (what a late answer is matched on), for a
    #: kind whose ``stan_of`` can return a STAN.
    request_mti: Callable[[TerminalT, TxnRecord], str] | None = None
    #: Sent once more before the next customer's transaction while still owed (CUP rule:
    #: a pending reversal precedes any online message).
    precedes_payments: bool = False
    #: Journal the record before the request leaves; settlement and uploads leave it unchanged.
    journals: bool = True
    #: Trace events to record when the request leaves (settlement shows its totals).
    sent: Callable[[TerminalT, Message], list[Action]] | None = None
    #: Run once when the terminal starts (after its sign-on, before its first sale): a check the
    #: terminal makes of the line (an echo test), not work for a sale.
    at_start: bool = False


@dataclass(frozen=True, slots=True)
class ReversalAnswer:
    """What one response code to a reversal (0410) means to the terminal."""

    closes: bool
    reason: str


#: How a reversal answer is read, by response code (field 39). Only a code listed here with
#: ``closes=True`` ends the reversal; every other code, listed or not, is retried with the
#: backoff and never counted as reversed: a refused reversal has credited nothing.
REVERSAL_ANSWERS: Mapping[str, ReversalAnswer] = {
    "00": ReversalAnswer(True, "reversed: the host credited or released the original, or had already "
                               "done so for an earlier copy of this reversal (repeats are idempotent)"),
    "25": ReversalAnswer(True, "nothing to reverse: the host never saw the original and has closed its "
                               "key (a tombstone), so the original, should it arrive late, is refused"),
    "12": ReversalAnswer(False, "invalid transaction (for example already settled): nothing was credited; "
                                "repeat, and when attempts run out leave it pending for manual handling"),
    "91": ReversalAnswer(False, "issuer or switch inoperative: the host could not act yet"),
    "96": ReversalAnswer(False, "system malfunction: the outcome is unknown, so ask again"),
}


def reversal_closes(code: str | None) -> bool:
    """True only for an answer that means the money is back or was never taken."""
    answer = REVERSAL_ANSWERS.get(code or "")
    return answer is not None and answer.closes


#: Answers to a completion advice that mean "try again later" (issuer/switch down, malfunction).
ADVICE_RETRYABLE = frozenset({"91", "96"})

#: CUP profile: field 39 of a reversal says why it is sent (CUP terminal practice).
REASON_NO_ANSWER = "98"
REASON_MAC_ERROR = "A0"
REASON_OTHER = "06"
#: CUP profile: the host's "duplicate transmission" answer (94) says nothing about the sale's
#: fate (the first copy is still being processed): the terminal keeps waiting for the real one.
DUPLICATE_TRANSMISSION = "94"
#: The host's "sign on again" (CUP 77, 请重新签到): the request is not from the terminal id's current
#: life (another life signed on since) and booked nothing. The terminal signs on afresh; a sale
#: answered 77 is shown as not charged (the operator rings it up again), recovery work is repeated.
SIGN_ON_AGAIN = "77"
#: What the terminal shows and journals for a sale answered 77 (views translate it by this exact value).
SIGN_ON_AGAIN_DISPLAY = "SIGN ON AGAIN - NOT CHARGED"
#: The sign-on answer's field 48 (63 under ``cup``) when the host knew the terminal id from an
#: earlier life (another journal) before this one.
EARLIER_LIFE = "EARLIER_LIFE"
#: CUP profile: what the terminal shows and journals when a reversal's tries ran out
#: (冲正不成功 请与客服联系; views translate the English text by this exact value).
ESCALATED_DISPLAY = "REVERSAL FAILED - CONTACT ACQUIRER"

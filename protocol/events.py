"""Every trace event of a run, as typed records: the one contract between producers and views.

The drivers, the fault layer, the host, the transports and the rig produce these; the
timeline, the sequence chart, Mermaid, coverage, the HTML report and replay consume them by
class, never by matching strings. Each class carries its stable trace name (``NAME``, the
``"event"`` key of a JSON trace line) and its fields, with ``tid``, ``stan``, ``mti`` and
``rrn`` where they apply. ``to_record`` / ``from_record`` turn an event into the JSON record
written by ``--trace`` and back; the records keep the names and keys traces always had, so
traces written before these types existed still read.

Pure: no clock, no I/O, no logging. The trace stamps events with run time (``Stamped``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from possim.protocol.registry import Registry

Side = Literal["terminal", "host"]
Lane = Literal["terminal", "network", "host", "run"]


class EventError(ValueError):
    """A record or notice does not fit the contract: unknown name, unknown or missing field."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every trace event. ``NAME`` is the stable trace name; ``SIDE`` the fixed ``side`` key."""

    NAME: ClassVar[str] = ""
    #: Written as the record's ``side`` key when the event always belongs to one side.
    SIDE: ClassVar[Side | None] = None
    #: The timeline column of the event when it has no ``side`` field of its own.
    LANE: ClassVar[Lane] = "terminal"

    @property
    def event(self) -> str:
        """The trace name, as in the record's ``"event"`` key."""
        return self.NAME

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        """Build from record fields (``t`` and ``event`` removed). Subclasses convert JSON shapes."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Stamped:
    """One trace entry: an event and the run time (seconds) at which it happened."""

    t: float
    event: Event


# -- messages on the wire (both sides) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MsgSent(Event):
    """A driver handed a message to its link (the fault layer decides what becomes of it)."""

    NAME: ClassVar[str] = "msg_sent"
    side: Side
    tid: str
    stan: str
    mti: str
    txn: int | None = None
    rrn: str | None = None


@dataclass(frozen=True, slots=True)
class MsgReceived(Event):
    """Bytes arrived at a side. ``data`` (hex) is what replay feeds back; ``malformed`` if undecodable."""

    NAME: ClassVar[str] = "msg_received"
    side: Side
    mti: str
    tid: str | None = None
    stan: str | None = None
    rrn: str | None = None
    malformed: bool | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class MalformedFrame(Event):
    """A side could not decode a frame; it is dropped, never an exception."""

    NAME: ClassVar[str] = "malformed_frame"
    side: Side
    reason: str


# -- the terminal ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentRequested(Event):
    """A customer pays. ``pan`` is masked; ``card`` and the rest are what replay needs to re-ask."""

    NAME: ClassVar[str] = "payment_requested"
    tid: str
    txn: int
    intent: str
    kind: str
    amount: int
    pan: str
    card: str | None = None
    completion_amount: int | None = None
    instrument: str | None = None


@dataclass(frozen=True, slots=True)
class TxnOutcome(Event):
    """What the cashier's screen shows, and what the journal knows (``status``)."""

    NAME: ClassVar[str] = "txn_outcome"
    tid: str
    txn: int
    status: str
    display: str


@dataclass(frozen=True, slots=True)
class TimerStarted(Event):
    """The response timer of the exchange in flight was armed for run time ``at``."""

    NAME: ClassVar[str] = "timer_started"
    tid: str
    timer: str
    at: float


@dataclass(frozen=True, slots=True)
class TimerFired(Event):
    """The response timer fired: no answer in time. Only this is a timeout."""

    NAME: ClassVar[str] = "timer_fired"
    tid: str
    timer: str = "response"

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        # Traces recorded over MQTT/TCP before the two timers had their own events
        # wrote retry wake-ups as timer_fired too.
        if data.get("timer", "response") != "response":
            return RetryTimerFired(**data)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RetryTimerFired(Event):
    """The terminal woke up for recovery work that fell due (a reversal repeat...): not a timeout."""

    NAME: ClassVar[str] = "retry_timer_fired"
    tid: str
    timer: str = "retry"


@dataclass(frozen=True, slots=True)
class TerminalPowerLost(Event):
    NAME: ClassVar[str] = "terminal_power_lost"
    tid: str


@dataclass(frozen=True, slots=True)
class TerminalPowerRestored(Event):
    NAME: ClassVar[str] = "terminal_power_restored"
    tid: str


@dataclass(frozen=True, slots=True)
class TerminalDownDrop(Event):
    """A message reached a terminal without power: lost."""

    NAME: ClassVar[str] = "terminal_down_drop"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    tid: str | None = None
    stan: str | None = None
    rrn: str | None = None
    malformed: bool | None = None


@dataclass(frozen=True, slots=True)
class TerminalRestored(Event):
    """A fresh terminal rebuilt its recovery work from ``records`` journal records."""

    NAME: ClassVar[str] = "terminal_restored"
    SIDE: ClassVar[Side | None] = "terminal"
    records: int


@dataclass(frozen=True, slots=True)
class LineSwitched(Event):
    """The terminal left host line ``before`` for ``after`` (``reason``: timeouts or connect_failure)."""

    NAME: ClassVar[str] = "line_switched"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    before: str
    after: str
    reason: str


@dataclass(frozen=True, slots=True)
class LineDownDrop(Event):
    """A request sent over a cut host line: lost."""

    NAME: ClassVar[str] = "line_down_drop"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    line: str
    mti: str


@dataclass(frozen=True, slots=True)
class ResponseTimeout(Event):
    """The exchange in flight (this request) got no answer in time."""

    NAME: ClassVar[str] = "response_timeout"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str


@dataclass(frozen=True, slots=True)
class ReversalBeforeNextTransaction(Event):
    NAME: ClassVar[str] = "reversal_before_next_transaction"
    SIDE: ClassVar[Side | None] = "terminal"
    txn: int


@dataclass(frozen=True, slots=True)
class ReversalAcknowledged(Event):
    NAME: ClassVar[str] = "reversal_acknowledged"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str
    txn: int


@dataclass(frozen=True, slots=True)
class ReversalRetryScheduled(Event):
    NAME: ClassVar[str] = "reversal_retry_scheduled"
    SIDE: ClassVar[Side | None] = "terminal"
    txn: int
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class ReversalParked(Event):
    """Out of attempts: the reversal stays pending, never forgotten."""

    NAME: ClassVar[str] = "reversal_parked"
    SIDE: ClassVar[Side | None] = "terminal"
    txn: int
    attempts: int


@dataclass(frozen=True, slots=True)
class ReversalEscalated(Event):
    """CUP profile: the reversal's tries ran out; the terminal hands the case to the acquirer
    (shows "reversal failed, contact the acquirer") and sends no more."""

    NAME: ClassVar[str] = "reversal_escalated"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    txn: int
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class SettlementSent(Event):
    """End of day: the terminal sends its batch totals (0500); ``final`` after a batch upload."""

    NAME: ClassVar[str] = "settlement_sent"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    debit_amount: int
    debit_count: int
    final: bool = False


@dataclass(frozen=True, slots=True)
class SettlementAnswered(Event):
    """The host's 0510: ``balanced`` (answer 1) or out of balance (2); out of balance and not
    ``final``, the terminal uploads its ``uploads`` approved sales (0320) and settles again."""

    NAME: ClassVar[str] = "settlement_answered"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    balanced: bool
    final: bool
    uploads: int = 0


@dataclass(frozen=True, slots=True)
class BatchClosed(Event):
    """CUP: the batch-end upload went out and was answered or not; the batch ``closed`` is over and
    the terminal's sales now go into batch ``opened`` (field 60.2)."""

    NAME: ClassVar[str] = "batch_closed"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    closed: str
    opened: str


@dataclass(frozen=True, slots=True)
class SettlementFailed(Event):
    """A settlement or batch-upload message got no usable answer: the batch stays open."""

    NAME: ClassVar[str] = "settlement_failed"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    mti: str
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateTransmission(Event):
    """CUP profile: the host answered 94 (a copy of a request it is still processing): the
    terminal keeps waiting for the answer about the sale itself."""

    NAME: ClassVar[str] = "duplicate_transmission"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str


@dataclass(frozen=True, slots=True)
class UnmatchedMessage(Event):
    """An answer for no exchange this terminal knows."""

    NAME: ClassVar[str] = "unmatched_message"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str


@dataclass(frozen=True, slots=True)
class LateResponse(Event):
    """An answer to an original that already timed out: journaled, never applied."""

    NAME: ClassVar[str] = "late_response"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str
    txn: int
    status: str
    rc: str | None = None


@dataclass(frozen=True, slots=True)
class DuplicateResponse(Event):
    """A second answer to an exchange already answered (or to recovery work): ignored."""

    NAME: ClassVar[str] = "duplicate_response"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str
    txn: int
    status: str
    rc: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseRejected(Event):
    """A response whose MAC is missing or wrong: treated as no response at all (the timer runs on)."""

    NAME: ClassVar[str] = "response_rejected"
    mti: str
    stan: str
    tid: str
    reason: str


@dataclass(frozen=True, slots=True)
class TerminalSignedOn(Event):
    """The host answered the terminal's sign-on (0810, 00): from now on it sells under ``life``.
    ``earlier``: the host knew this terminal id from an earlier life (another journal)."""

    NAME: ClassVar[str] = "terminal_signed_on"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    life: str
    earlier: bool


@dataclass(frozen=True, slots=True)
class WorkingKeysInstalled(Event):
    """CUP: the sign-on answer's working keys matched their check values; later messages carry the
    MAC under the new MAK (``mak_check``: its check value, as terminals print it) in batch ``batch``."""

    NAME: ClassVar[str] = "working_keys_installed"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    mak_check: str
    batch: str


@dataclass(frozen=True, slots=True)
class SignOnFailed(Event):
    """CUP: the sign-on answer's working keys could not be used (a key did not match its check value,
    or field 62 was malformed): the terminal is not signed on and sells nothing."""

    NAME: ClassVar[str] = "sign_on_failed"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    stan: str
    reason: str


@dataclass(frozen=True, slots=True)
class SignOnAgain(Event):
    """The host answered 77 ("sign on again": this terminal's life is not its current one, another
    life signed on since): the terminal signs on afresh before anything else. The request answered
    77 booked nothing; a sale is shown as not charged, recovery work is tried again after the sign-on."""

    NAME: ClassVar[str] = "sign_on_again"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str
    txn: int | None = None


@dataclass(frozen=True, slots=True)
class TerminalRefusedToSell(Event):
    """The terminal will not sell: its journal is missing for an id the host knows from an earlier
    life and it was not told it is a replacement, or the host refused its sign-on. Nothing is sent."""

    NAME: ClassVar[str] = "terminal_refused_to_sell"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResponseMismatch(Event):
    """An answer with the in-flight exchange's MTI, STAN and terminal id that does not answer
    *this* request: its field 7, amount (field 4) or RRN (field 37) is another request's. A STAN
    repeats (a lost journal, a wrap past 999999), so a replayed answer to an earlier sale would
    otherwise pass as this one's. Logged and ignored: the exchange stays in flight and times out."""

    NAME: ClassVar[str] = "response_mismatch"
    SIDE: ClassVar[Side | None] = "terminal"
    mti: str
    stan: str
    tid: str
    reason: str
    txn: int | None = None


@dataclass(frozen=True, slots=True)
class CustomerRetries(Event):
    """Told the payment failed, the customer pays again as ``retry_txn``."""

    NAME: ClassVar[str] = "customer_retries"
    tid: str
    txn: int
    retry_txn: int


# -- the host -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostEvent(Event):
    """Base of the host's events: the host column of the timeline."""

    SIDE: ClassVar[Side | None] = "host"
    LANE: ClassVar[Lane] = "host"


@dataclass(frozen=True, slots=True)
class HostMessageEvent(HostEvent):
    """A host event about one request: its terminal id, STAN and MTI."""

    tid: str
    stan: str
    mti: str


@dataclass(frozen=True, slots=True)
class HostDownDrop(HostEvent):
    NAME: ClassVar[str] = "host_down_drop"
    mti: str


@dataclass(frozen=True, slots=True)
class HostCrashed(HostMessageEvent):
    """The host committed, then crashed before replying; down until ``until``."""

    NAME: ClassVar[str] = "host_crashed"
    until: float


@dataclass(frozen=True, slots=True)
class HostRestarted(HostEvent):
    NAME: ClassVar[str] = "host_restarted"


@dataclass(frozen=True, slots=True)
class UnexpectedMessage(HostEvent):
    NAME: ClassVar[str] = "unexpected_message"
    mti: str
    stan: str


@dataclass(frozen=True, slots=True)
class DuplicateOriginal(HostMessageEvent):
    """A repeated original: answered again from the ledger, never debited twice."""

    NAME: ClassVar[str] = "duplicate_original"
    rrn: str | None = None
    rc: str | None = None


@dataclass(frozen=True, slots=True)
class LateOriginalRefused(HostMessageEvent):
    """An original whose key a reversal or a NOT_FOUND answer closed: refused."""

    NAME: ClassVar[str] = "late_original_refused"
    reason: str


@dataclass(frozen=True, slots=True)
class LedgerMovement(HostMessageEvent):
    """Money moved on an account (``amount`` minor units)."""

    rrn: str | None
    pan: str
    amount: int


@dataclass(frozen=True, slots=True)
class LedgerDebit(LedgerMovement):
    NAME: ClassVar[str] = "ledger_debit"


@dataclass(frozen=True, slots=True)
class LedgerHold(LedgerMovement):
    NAME: ClassVar[str] = "ledger_hold"


@dataclass(frozen=True, slots=True)
class LedgerDeclined(HostMessageEvent):
    NAME: ClassVar[str] = "ledger_declined"
    rc: str


@dataclass(frozen=True, slots=True)
class LedgerCapture(HostMessageEvent):
    NAME: ClassVar[str] = "ledger_capture"
    rrn: str | None
    amount: int


@dataclass(frozen=True, slots=True)
class SettlementChecked(HostMessageEvent):
    """The host compared a terminal's batch totals (0500) with its ledger's."""

    NAME: ClassVar[str] = "settlement_checked"
    terminal_amount: int
    terminal_count: int
    host_amount: int
    host_count: int
    balanced: bool


@dataclass(frozen=True, slots=True)
class BatchUploadReceived(HostMessageEvent):
    """One sale of a batch upload (0320). ``outcome``: ``captured`` (a completion the host never
    got online, captured now), ``matched`` (already in the ledger) or ``unknown``."""

    NAME: ClassVar[str] = "batch_upload_received"
    orig_stan: str
    amount: int
    outcome: str
    rrn: str | None = None


@dataclass(frozen=True, slots=True)
class BatchEndReceived(HostMessageEvent):
    """CUP: the batch-end upload (0320, 60.3 202/207) of batch ``batch``: ``settled`` sales left the
    terminal's open totals. ``uploaded``: field 48, the count the terminal says it uploaded."""

    NAME: ClassVar[str] = "batch_end_received"
    batch: str
    uploaded: str
    settled: int


@dataclass(frozen=True, slots=True)
class LedgerReversal(HostMessageEvent):
    """A reversal was applied to the original with STAN ``orig_stan``; the subclass says how."""

    orig_stan: str
    rrn: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerReversalCredited(LedgerReversal):
    NAME: ClassVar[str] = "ledger_reversal_credited"


@dataclass(frozen=True, slots=True)
class LedgerReversalReleased(LedgerReversal):
    NAME: ClassVar[str] = "ledger_reversal_released"


@dataclass(frozen=True, slots=True)
class LedgerReversalNothingToReverse(LedgerReversal):
    NAME: ClassVar[str] = "ledger_reversal_nothing_to_reverse"


@dataclass(frozen=True, slots=True)
class LedgerReversalBeforeOriginal(LedgerReversal):
    """The reversal arrived before its original: the key is closed, the original will be refused."""

    NAME: ClassVar[str] = "ledger_reversal_before_original"


@dataclass(frozen=True, slots=True)
class DuplicateReversal(HostMessageEvent):
    NAME: ClassVar[str] = "duplicate_reversal"


@dataclass(frozen=True, slots=True)
class ReversalRefused(HostMessageEvent):
    """The host answered a reversal with a refusal code (a scenario's ``reversal_answers``): nothing credited."""

    NAME: ClassVar[str] = "reversal_refused"
    rc: str


@dataclass(frozen=True, slots=True)
class DuplicateAdvice(HostMessageEvent):
    NAME: ClassVar[str] = "duplicate_advice"


@dataclass(frozen=True, slots=True)
class AdviceRejected(HostMessageEvent):
    NAME: ClassVar[str] = "advice_rejected"
    rc: str


@dataclass(frozen=True, slots=True)
class IssuerRequested(HostMessageEvent):
    """CUP profile: the original was sent on to the issuer; nothing is debited until it answers."""

    NAME: ClassVar[str] = "issuer_requested"


@dataclass(frozen=True, slots=True)
class IssuerReversed(HostMessageEvent):
    """CUP profile: the issuer timed out, or the terminal reversed first: the host reverses
    towards the issuer itself and no money moves."""

    NAME: ClassVar[str] = "issuer_reversed"
    rc: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusAnswered(HostMessageEvent):
    NAME: ClassVar[str] = "status_answered"
    status: str
    orig_stan: str


@dataclass(frozen=True, slots=True)
class SecurityViolation(HostMessageEvent):
    """A request whose MAC is missing or wrong: answered ``rc`` (63) when it can be, nothing changed.

    ``tid``, ``stan`` and ``mti`` are what the unauthenticated frame *claims*; ``answered`` is
    False when nobody can be answered (no key for the terminal it names).
    """

    NAME: ClassVar[str] = "security_violation"
    reason: str
    rc: str = "63"
    answered: bool = True


@dataclass(frozen=True, slots=True)
class IdentityMismatch(HostMessageEvent):
    """The transport vouches for terminal ``sender`` (MQTT topic, TCP connection) but field 41 names
    ``tid``: dropped unanswered, nothing changed (a reply would go to the terminal it impersonates)."""

    NAME: ClassVar[str] = "identity_mismatch"
    sender: str


@dataclass(frozen=True, slots=True)
class FormatErrorAnswered(HostMessageEvent):
    """A request from an identified sender that fails the field checks: answered 30, nothing changed."""

    NAME: ClassVar[str] = "format_error_answered"
    reason: str
    rc: str = "30"


@dataclass(frozen=True, slots=True)
class DuplicateKeyConflict(HostMessageEvent):
    """A financial request under a key (terminal id, STAN, field 7) the ledger already holds for a
    different sale (another amount or card): answered ``rc`` (94, or 30 under ``cup``), never with
    the stored answer, and nothing booked. ``pan`` is masked."""

    NAME: ClassVar[str] = "duplicate_key_conflict"
    reason: str
    amount: int
    original_amount: int
    pan: str
    rc: str = "94"


@dataclass(frozen=True, slots=True)
class SignOnAnswered(HostMessageEvent):
    """A terminal signed on (0800) with ``life``; the host answered 00 and accepts that life's
    requests from now on. ``previous``: the life it had before (None: none, or the same);
    ``earlier``: the terminal id had an earlier life (or sales) before this one."""

    NAME: ClassVar[str] = "sign_on_answered"
    life: str
    previous: str | None
    earlier: bool


@dataclass(frozen=True, slots=True)
class LifeRefused(HostMessageEvent):
    """A request from a life that is not the terminal's current one (it never signed on, or a
    newer life did since), or under a key an earlier life used: answered ``rc``, nothing booked."""

    NAME: ClassVar[str] = "life_refused"
    life: str | None
    current: str | None
    reason: str
    rc: str


@dataclass(frozen=True, slots=True)
class AnswerWithheld(HostMessageEvent):
    """The answer to an original booked by life ``life`` fell due after life ``current`` signed on:
    not sent (the new life's connection never asked for it) and recorded as not delivered."""

    NAME: ClassVar[str] = "answer_withheld"
    life: str
    current: str


@dataclass(frozen=True, slots=True)
class RequestDropped(HostEvent):
    """A request the host cannot act on nor answer (its sender cannot be identified): dropped, nothing changed."""

    NAME: ClassVar[str] = "request_dropped"
    mti: str
    reason: str
    tid: str | None = None
    stan: str | None = None


@dataclass(frozen=True, slots=True)
class ReversalAmountMismatch(HostMessageEvent):
    """A reversal whose field 4 is not the amount of the original it names: answered ``rc``, nothing credited."""

    NAME: ClassVar[str] = "reversal_amount_mismatch"
    amount: int
    original_amount: int
    rc: str = "13"


# -- the network (fault layer) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkEvent(Event):
    """What the fault layer did to the ``nth`` message of ``mti`` going ``dir``, and why."""

    LANE: ClassVar[Lane] = "network"
    dir: str
    mti: str
    nth: int
    reason: str
    tid: str | None = None
    stan: str | None = None
    txn: int | None = None
    rrn: str | None = None


@dataclass(frozen=True, slots=True)
class NetDropped(NetworkEvent):
    NAME: ClassVar[str] = "net_dropped"


@dataclass(frozen=True, slots=True)
class NetTampered(NetworkEvent):
    """A copy delivered other than straight away: ``delays`` holds each copy's delay."""

    delays: tuple[float, ...] = ()

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        return cls(**{**data, "delays": tuple(data.get("delays", ()))})


@dataclass(frozen=True, slots=True)
class NetDelayed(NetTampered):
    NAME: ClassVar[str] = "net_delayed"


@dataclass(frozen=True, slots=True)
class NetDuplicated(NetTampered):
    NAME: ClassVar[str] = "net_duplicated"


@dataclass(frozen=True, slots=True)
class NetReordered(NetTampered):
    NAME: ClassVar[str] = "net_reordered"


@dataclass(frozen=True, slots=True)
class ForgeryInjected(Event):
    """An attacker's message enters the link ``dir``: a forged ``kind`` (reversal, approval, query,
    or a wallet kind: ``protocol.faults.WALLET_FORGERY_KINDS``) aimed at transaction (or wallet
    order) ``target`` of terminal ``tid``; for a wallet one ``mti`` is its wire kind and ``stan``
    its order number. ``mac`` says how it is signed: ``none`` (no MAC field), ``wrong`` (a MAC
    under a key that is not the terminal's), ``copied`` (a genuine ``sign`` copied from a request
    it read: a replay, an altered amount) or ``off`` (the run uses no MACs at all)."""

    NAME: ClassVar[str] = "forgery_injected"
    LANE: ClassVar[Lane] = "network"
    dir: str
    kind: str
    mti: str
    tid: str
    stan: str
    target: int
    mac: str


@dataclass(frozen=True, slots=True)
class ForgeryMissed(Event):
    """A scheduled forgery had nothing to aim at (its target transaction was not sniffed yet)."""

    NAME: ClassVar[str] = "forgery_missed"
    LANE: ClassVar[Lane] = "network"
    kind: str
    target: int


# -- the run and its transports -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunEvent(Event):
    LANE: ClassVar[Lane] = "run"


@dataclass(frozen=True, slots=True)
class RunStarted(RunEvent):
    """The run's scenario (``scenario_data``, the file's content), policy and seed."""

    NAME: ClassVar[str] = "run_started"
    scenario: str
    policy: str
    seed: int
    tid: str
    scenario_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunFinished(RunEvent):
    """The checker's verdict; ``summary`` is written flat into the record, as the ``--json`` keys."""

    NAME: ClassVar[str] = "run_finished"
    quiescent: bool
    summary: dict[str, Any] = field(default_factory=dict)
    published: int | None = None

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        rest = dict(data)
        return cls(quiescent=bool(rest.pop("quiescent")), published=rest.pop("published", None), summary=rest)


@dataclass(frozen=True, slots=True)
class MqttRun(RunEvent):
    """A real-time run over a broker; ``scenario_data`` and ``time_scale`` make it replayable."""

    NAME: ClassVar[str] = "mqtt_run"
    broker: str
    qos: int
    time_scale: float
    scenario_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveRun(RunEvent):
    """A real-time run over any transport; ``scenario_data`` and ``time_scale`` make it replayable.

    ``wire`` is what the transport says of itself (broker and QoS, port). Traces written
    before this event existed open with ``mqtt_run`` or ``tcp_run`` instead.
    """

    NAME: ClassVar[str] = "live_run"
    transport: str
    time_scale: float
    wire: dict[str, Any] = field(default_factory=dict)
    scenario_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TcpRun(RunEvent):
    NAME: ClassVar[str] = "tcp_run"
    port: int
    time_scale: float
    scenario_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProxyRun(RunEvent):
    """A trace recorded by ``possim proxy`` between someone's own terminal and host: no scenario, only
    the wire. ``faults`` is the fault file's content; ``profile`` the framing (iso, cup)."""

    NAME: ClassVar[str] = "proxy_run"
    listen: str
    upstream: str
    profile: str
    seed: int
    faults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MqttConnected(RunEvent):
    NAME: ClassVar[str] = "mqtt_connected"
    client: str


@dataclass(frozen=True, slots=True)
class MqttDisconnected(RunEvent):
    NAME: ClassVar[str] = "mqtt_disconnected"
    client: str
    reason: str


@dataclass(frozen=True, slots=True)
class MqttHandlerFailed(RunEvent):
    """A message handler raised; the connection loop logged it and went on (it never wedges)."""

    NAME: ClassVar[str] = "mqtt_handler_failed"
    client: str
    topic: str
    error: str


@dataclass(frozen=True, slots=True)
class TcpConnectionDropped(RunEvent):
    NAME: ClassVar[str] = "tcp_connection_dropped"
    reason: str


@dataclass(frozen=True, slots=True)
class TcpNoRoute(RunEvent):
    """The TCP host has no connection to the terminal a reply is for."""

    NAME: ClassVar[str] = "tcp_no_route"
    tid: str | None = None


@dataclass(frozen=True, slots=True)
class MqttPublishFailed(RunEvent):
    """paho refused a message (a bad topic or payload): it is dropped, never sent later."""

    NAME: ClassVar[str] = "mqtt_publish_failed"
    client: str
    topic: str
    error: str


@dataclass(frozen=True, slots=True)
class RequestFailed(RunEvent):
    """Handling one request raised in a separate acquirer; the host answered 96 where it could and went on.

    ``tid``/``stan``/``mti``/``rrn`` are what the frame says (``malformed``: it could not be read)."""

    NAME: ClassVar[str] = "request_failed"
    error: str
    mti: str | None = None
    tid: str | None = None
    stan: str | None = None
    rrn: str | None = None
    malformed: bool | None = None


@dataclass(frozen=True, slots=True)
class AcquirerReady(RunEvent):
    """A separate acquirer serves: ``transport`` and what its wire says of itself (port, broker, account),
    written as keys of their own (``port``: where it listens), as the readiness line always had them."""

    NAME: ClassVar[str] = "acquirer_ready"
    transport: str
    wire: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        rest = dict(data)
        return cls(transport=str(rest.pop("transport")), wire=rest)


@dataclass(frozen=True, slots=True)
class AcquirerStats(RunEvent):
    """A separate acquirer's count of requests handled and failed so far (every few seconds, and at the end)."""

    NAME: ClassVar[str] = "acquirer_stats"
    handled: int
    failed: int


# -- wallet payments (QR payment codes, protocol.wallet) ------------------------------------
# ``order`` is the merchant order number (out_trade_no), the wallet's idempotency key; ``mti``
# the wallet kind (QR_PAY, QR_QUERY_RESP...). Gateway events sit in the host column today;
# ``PARTY`` says they belong to the wallet gateway, so a view can draw it as its own lifeline.


@dataclass(frozen=True, slots=True)
class WalletPaymentRequested(Event):
    """The cashier scanned the customer's payment code: a wallet payment of ``amount`` starts."""

    NAME: ClassVar[str] = "wallet_payment_requested"
    tid: str
    txn: int
    intent: str
    order: str
    amount: int
    provider: str
    auth_code: str


@dataclass(frozen=True, slots=True)
class WalletOutcome(Event):
    """What the QR terminal's screen shows, what its journal knows (``status``) and the last trade state."""

    NAME: ClassVar[str] = "wallet_outcome"
    tid: str
    txn: int
    order: str
    status: str
    display: str
    trade_state: str | None = None


@dataclass(frozen=True, slots=True)
class WalletAnswerTimeout(Event):
    """A wallet request (``mti``) got no answer in time."""

    NAME: ClassVar[str] = "wallet_answer_timeout"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    order: str
    mti: str


@dataclass(frozen=True, slots=True)
class WalletCancelScheduled(Event):
    """The terminal will cancel (撤销) the order at run time ``at``: never before the documented minimum."""

    NAME: ClassVar[str] = "wallet_cancel_scheduled"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    order: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class WalletCancelAcknowledged(Event):
    """The gateway answered the cancel: ``action`` close (nothing was paid) or refund (it was)."""

    NAME: ClassVar[str] = "wallet_cancel_acknowledged"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    order: str
    txn: int
    action: str


@dataclass(frozen=True, slots=True)
class WalletLateAnswer(Event):
    """An answer for no wallet request in flight (late, duplicated): logged, never applied."""

    NAME: ClassVar[str] = "wallet_late_answer"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    order: str
    mti: str
    trade_state: str


@dataclass(frozen=True, slots=True)
class WalletSystemErrorAnswered(Event):
    """The gateway answered a system error (code 20000, ``error`` its sub code): the outcome is unknown,
    so the terminal asks again (a query, or the cancel repeated) instead of taking it for a failure."""

    NAME: ClassVar[str] = "wallet_system_error_answered"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    order: str
    mti: str
    error: str


@dataclass(frozen=True, slots=True)
class WalletRefundInstead(Event):
    """The gateway refused the cancel (撤销) as past its window (``sub_code``): the terminal refunds the
    order instead, so the money still goes back."""

    NAME: ClassVar[str] = "wallet_refund_instead"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    order: str
    txn: int
    sub_code: str


@dataclass(frozen=True, slots=True)
class WalletTimerFired(Event):
    """The QR terminal's timer of one order fired (an answer timeout or a step now due): replay feeds it back."""

    NAME: ClassVar[str] = "wallet_timer_fired"
    SIDE: ClassVar[Side | None] = "terminal"
    tid: str
    timer: str


@dataclass(frozen=True, slots=True)
class CustomerPaysAgain(Event):
    """Told the payment failed, the customer pays again as ``retry_txn``, by ``instrument`` (QR or card)."""

    NAME: ClassVar[str] = "customer_pays_again"
    tid: str
    txn: int
    retry_txn: int
    instrument: str


@dataclass(frozen=True, slots=True)
class WalletEvent(HostEvent):
    """Base of the wallet gateway's events, about one order of terminal ``tid``."""

    PARTY: ClassVar[str] = "wallet"
    tid: str
    order: str


@dataclass(frozen=True, slots=True)
class WalletTradeOpened(WalletEvent):
    """A pay created the order; ``state`` is SUCCESS (no password), USERPAYING or PAYERROR."""

    NAME: ClassVar[str] = "wallet_trade_opened"
    amount: int
    state: str
    wallet: str


@dataclass(frozen=True, slots=True)
class WalletCharged(WalletEvent):
    NAME: ClassVar[str] = "wallet_charged"
    amount: int
    wallet: str
    trade_no: str | None = None


@dataclass(frozen=True, slots=True)
class WalletRefunded(WalletEvent):
    """A paid order was cancelled (state REVOKED) or refunded: the money went back to the wallet."""

    NAME: ClassVar[str] = "wallet_refunded"
    amount: int
    wallet: str
    reason: str


@dataclass(frozen=True, slots=True)
class WalletTradeClosed(WalletEvent):
    """An unpaid order closed: cancelled, closed by itself after a while, or a tombstone."""

    NAME: ClassVar[str] = "wallet_trade_closed"
    reason: str


@dataclass(frozen=True, slots=True)
class WalletCustomerConfirmed(WalletEvent):
    """The customer confirmed on the phone (typed the password): the order is paid now."""

    NAME: ClassVar[str] = "wallet_customer_confirmed"


@dataclass(frozen=True, slots=True)
class WalletConfirmRefused(WalletEvent):
    """The customer confirmed too late: the order was already ``state`` (closed): nothing charged."""

    NAME: ClassVar[str] = "wallet_confirm_refused"
    state: str


@dataclass(frozen=True, slots=True)
class WalletDuplicatePay(WalletEvent):
    """A repeated pay for a known order number: answered with its state, never charged twice."""

    NAME: ClassVar[str] = "wallet_duplicate_pay"
    state: str


@dataclass(frozen=True, slots=True)
class WalletPayRefused(WalletEvent):
    """A pay for a closed order number, or one that differs from the order's amount or code."""

    NAME: ClassVar[str] = "wallet_pay_refused"
    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class WalletGatewayWake(WalletEvent):
    """The gateway's own clock for one order: the customer acts on the phone (``what = confirm``) or
    the order's time is up (``expire``). Recorded so that replay wakes the gateway at the same moment."""

    NAME: ClassVar[str] = "wallet_gateway_wake"
    what: str


@dataclass(frozen=True, slots=True)
class WalletAnswered(WalletEvent):
    """The gateway answered a request (``mti`` is the answer's kind) with the order's state."""

    NAME: ClassVar[str] = "wallet_answered"
    mti: str
    state: str
    code: str
    action: str | None = None


@dataclass(frozen=True, slots=True)
class WalletSystemError(WalletEvent):
    """The gateway answered ``mti`` with a system error ``error`` (a scenario's injected fault); ``done``:
    it did the work first (the order's money moved as it would have), so only the answer says nothing."""

    NAME: ClassVar[str] = "wallet_system_error"
    mti: str
    error: str
    done: bool


@dataclass(frozen=True, slots=True)
class WalletCancelExpired(WalletEvent):
    """A cancel (撤销) of a paid order past the provider's window (Alipay: the Beijing business day of the
    trade; WeChat Pay: 7 days): refused with ``sub_code``, nothing changed; only a refund returns the money."""

    NAME: ClassVar[str] = "wallet_cancel_expired"
    sub_code: str


# -- registry and records -------------------------------------------------------------------

#: Every concrete event class; the registry is built from this list (a test checks it is complete).
EVENT_TYPES: tuple[type[Event], ...] = (
    MsgSent, MsgReceived, MalformedFrame,
    PaymentRequested, TxnOutcome, TimerStarted, TimerFired, RetryTimerFired, TerminalPowerLost,
    TerminalPowerRestored, TerminalDownDrop, TerminalRestored, ResponseTimeout, ReversalBeforeNextTransaction,
    ReversalAcknowledged, ReversalRetryScheduled, ReversalParked, ReversalEscalated, DuplicateTransmission,
    SettlementSent, SettlementAnswered, BatchClosed, SettlementFailed, SettlementChecked, BatchUploadReceived,
    BatchEndReceived,
    UnmatchedMessage, LateResponse, DuplicateResponse, CustomerRetries, ResponseRejected,
    HostDownDrop, HostCrashed, HostRestarted, UnexpectedMessage, DuplicateOriginal, LateOriginalRefused,
    LedgerDebit, LedgerHold, LedgerDeclined, LedgerCapture, LedgerReversalCredited, LedgerReversalReleased,
    LedgerReversalNothingToReverse, LedgerReversalBeforeOriginal, DuplicateReversal, DuplicateAdvice,
    AdviceRejected, StatusAnswered, ReversalRefused, SecurityViolation, IdentityMismatch, FormatErrorAnswered,
    RequestDropped, ReversalAmountMismatch, IssuerRequested, IssuerReversed,
    NetDropped, NetDelayed, NetDuplicated, NetReordered, ForgeryInjected, ForgeryMissed,
    RunStarted, RunFinished, LiveRun, MqttRun, TcpRun, ProxyRun, MqttConnected, MqttDisconnected, MqttHandlerFailed,
    TcpConnectionDropped, TcpNoRoute, MqttPublishFailed, RequestFailed, AcquirerReady, AcquirerStats,
    WalletPaymentRequested, WalletOutcome, WalletAnswerTimeout, WalletCancelScheduled, WalletCancelAcknowledged,
    WalletLateAnswer, WalletTimerFired, CustomerPaysAgain, WalletTradeOpened, WalletCharged, WalletRefunded,
    WalletTradeClosed, WalletCustomerConfirmed, WalletConfirmRefused, WalletDuplicatePay, WalletPayRefused,
    WalletGatewayWake, WalletAnswered, WalletSystemErrorAnswered, WalletRefundInstead, WalletSystemError,
    WalletCancelExpired,
    ResponseMismatch, DuplicateKeyConflict,
    TerminalSignedOn, WorkingKeysInstalled, SignOnFailed, TerminalRefusedToSell, SignOnAnswered, LifeRefused,
    SignOnAgain, AnswerWithheld,
    LineSwitched, LineDownDrop,
)

#: Trace name -> event class. A new kind of message registers its events here (``REGISTRY.added``
#: in a test), so its trace lines are written and read like every other.
REGISTRY: Registry[type[Event]] = Registry("trace event", lambda cls: cls.NAME)
for _cls in EVENT_TYPES:
    REGISTRY.register(_cls)

#: The fault layer's reason -> the event for a copy that is not delivered straight away.
NET_EVENTS: dict[str, type[NetTampered]] = {"reorder": NetReordered, "duplicate": NetDuplicated,
                                            "rule_delay": NetDelayed, "rule_duplicate": NetDuplicated}

_FIELDS: dict[type[Event], tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in EVENT_TYPES}


def _fields(cls: type[Event]) -> tuple[str, ...]:
    """The dataclass fields of ``cls``, read once per class (a registered event class is read when first written)."""
    got = _FIELDS.get(cls)
    if got is None:
        got = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return got


def event_class(name: str) -> type[Event]:
    """The class of trace name ``name``; an unknown name is an error, never a silent pass."""
    if name not in REGISTRY:
        raise EventError(f"unknown trace event {name!r}")
    return REGISTRY.get(name)


def from_fields(name: str, data: Mapping[str, Any]) -> Event:
    """Build the event ``name`` from its fields (a ``side`` key is dropped where the side is fixed)."""
    cls = event_class(name)
    kwargs = dict(data)
    if cls.SIDE is not None:
        side = kwargs.pop("side", cls.SIDE)
        if side != cls.SIDE:
            raise EventError(f"trace event {name!r} belongs to the {cls.SIDE}, not the {side}")
    try:
        return cls.from_fields(kwargs)
    except (TypeError, KeyError) as exc:
        raise EventError(f"trace event {name!r}: {exc}") from None


def fields_of(event: Event) -> dict[str, Any]:
    """The record's keys of ``event`` besides ``t`` and ``event``: unset (None) fields are left out."""
    out: dict[str, Any] = {"side": event.SIDE} if event.SIDE is not None else {}
    for name in _fields(type(event)):
        value = getattr(event, name)
        if value is None:
            continue
        if (name == "summary" and isinstance(event, RunFinished)) or (name == "wire" and isinstance(event,
                                                                                                   AcquirerReady)):
            out.update(value)
        elif isinstance(value, tuple):
            out[name] = list(value)
        else:
            out[name] = value
    return out


def to_record(stamped: Stamped) -> dict[str, Any]:
    """The JSON record of one trace line: ``t``, ``event`` (the name) and the event's fields."""
    return {"t": stamped.t, "event": stamped.event.NAME, **fields_of(stamped.event)}


def from_record(record: Mapping[str, Any]) -> Stamped:
    """Read one JSON trace record back; raises ``EventError`` when it breaks the contract."""
    if "event" not in record or "t" not in record:
        raise EventError("trace record without 'event' and 't'")
    data = {k: v for k, v in record.items() if k not in ("t", "event")}
    return Stamped(float(record["t"]), from_fields(str(record["event"]), data))


def lane(event: Event) -> Lane:
    """Where the event belongs in a three-column timeline (``run`` for the run's own events)."""
    side: Side | None = getattr(event, "side", None)
    return side if side is not None else event.LANE

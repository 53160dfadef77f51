"""The POS terminal as a sans-IO state machine.

Theory of operation: the terminal talks to the host over one channel, one exchange at a
time (a request and the response it waits for). Inputs are ``request_payment``,
``receive`` (bytes from the link) and ``timer_fired``; each returns the actions the driver
must execute in order. The terminal never reads a clock: every input carries ``now``.

Besides customer transactions it owns recovery work: reversals, status queries and
completion advices. Recovery work due now goes first; a pending reversal is also tried
once more before every new transaction (CUP terminals send it before any online message).
Each kind of exchange is one entry of ``EXCHANGES``; what to do about a sale whose answer
did not come is the recovery policy's choice (``pos_sim.policies``).

Rules kept here:
1. A reversal record is journaled *before* the original it may cancel is sent.
2. A response is accepted only for the exchange in flight (MTI, STAN and terminal id
   match); anything else is a late or duplicate answer: journaled, traced, never applied.
   And only if it answers *this* request: field 7, the amount (field 4) and a known RRN
   (field 37) agree where the answer carries them (``_mismatch``). A STAN repeats, so a
   genuine answer to an earlier request with the same STAN is traced
   (``response_mismatch``) and ignored; the exchange stays in flight and times out.
3. A timed-out transaction whose fate is unknown is recorded as ``unknown``, not failed.
4. A reversal ends only on an answer that means the money is back or was never taken
   (``pos_sim.exchanges.REVERSAL_ANSWERS``); any other answer is retried like a timeout.
5. With a MAC key every request carries a MAC, and a response whose MAC is missing or wrong
   is no response at all: traced (``response_rejected``) and otherwise ignored, so the timer
   runs on and the policy recovers as after a lost answer. A forged approval changes nothing.

The terminal asks its profile (``TerminalConfig.profile``, a ``protocol.profiles.Profile``) where
schemes differ and never names one. The ``cup`` profile (``protocol.profiles.CupProfile``) follows
China UnionPay terminal practice:
the reversal is a copy of the message it cancels (same STAN and field 7) with field 39 set to
the reason (98 no answer, A0 MAC error, 06 other); a pending reversal goes out before every
online message; after ``reversal_attempts`` tries it is escalated to the acquirer ("reversal
failed, contact the acquirer") instead of being kept forever; a pre-authorization uses
processing code 030000 and its completion is an online 0200 that is itself reversed when
its answer does not come; a 94 (duplicate transmission) is not an answer about the sale.
With ``completion_advice`` a CUP completion is an advice (0220) instead.

Settlement (``settle``, every profile) runs after due recovery work: the batch totals (0500),
and when the host says out of balance one upload (0320) per approved sale, then a final 0500.
A profile's ``TerminalRules`` (``protocol.profiles``) change that where CUP terminals differ:
stored completion advices are tried once more first; the upload runs balanced or not, up to 8
sales a frame (a completion of a pre-authorization alone, naming it), ends with a batch-end 0320
and no second 0500; then the batch closes and its number advances (``CloseBatch``, journaled).

Sign-on (``TerminalConfig.life``, terminal processes): before anything else the terminal sends
an 0800 with its life number, and every request carries that number (field 60). The answer says
whether the host knew the terminal id from an earlier life; a terminal on a new journal then
refuses to sell (``halted``: its earlier life's journal is lost, so sales of that life may be
unsettled and its STANs start again) unless it was declared a replacement. Until the sign-on is
answered customers wait; without an answer it is repeated with the backoff. An answer 77 ("sign
on again": another life of the id signed on since; the host booked nothing) makes the terminal
sign on afresh before anything else; a sale so answered is shown as not charged
(``SIGN_ON_AGAIN_DISPLAY``) and never sent again by itself, recovery work is tried again after it.
Under ``cup`` the answer hands out the working keys (field 62, under the key file's key, the master
key) and the batch number (60.2): a key that does not match its check value fails the sign-on (the
terminal sells nothing); otherwise the MAK MACs every later message and the batch number is taken.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from possim.pos_sim.actions import (
    Action,
    CancelTimer,
    CloseBatch,
    ConfirmLife,
    Outcome,
    Send,
    StartTimer,
    WriteJournal,
)
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.exchanges import (
    ADVICE_RETRYABLE,
    EARLIER_LIFE,
    ESCALATED_DISPLAY,
    SIGN_ON_AGAIN,
    SIGN_ON_AGAIN_DISPLAY,
    Exchange,
    ExchangeKind,
    ExchangeSpec,
    Task,
    reversal_closes,
)
from possim.pos_sim.policies import resume_reversal
from possim.pos_sim.records import UNSETTLED, CompletionState, Kind, ReversalState, SaleStatus, TxnRecord
from possim.protocol import codec, cup, dialects
from possim.protocol import events as ev
from possim.protocol.cup import BatchTotals
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData
from possim.protocol.mti import (
    ADVICE,
    ADVICE_REPEAT,
    AUTH,
    BATCH_UPLOAD,
    PURCHASE,
    REVERSAL,
    REVERSAL_REPEAT,
    SETTLEMENT,
    SIGN_ON,
    STATUS_QUERY,
    response_to,
)
from possim.protocol.registry import Registry

RESPONSE_TIMER = "response"
RETRY_TIMER = "retry"
PARKED = math.inf


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A customer at the till: pay ``amount`` (minor units) with card ``pan``."""

    txn_id: int
    intent: str
    kind: Kind
    amount: int
    pan: str
    completion_amount: int | None = None
    instrument: str = "credit"


@dataclass(slots=True)
class Settlement:
    """The day's settlement under way: ``final`` once the batch was uploaded, ``uploads`` still unanswered."""

    final: bool = False
    uploads: int = 0
    #: A 0500 was answered 77 and sent again after a fresh sign-on (once: a second 77 fails it).
    signed_on_again: bool = False
    #: Packed uploads (``TerminalRules.sales_per_upload``): the frames still to send, each a list
    #: of sales (one completion alone, or up to the limit), then ``[]`` for the batch end.
    frames: list[list[TxnRecord]] = field(default_factory=list)
    #: Sales uploaded so far, and what the 0510 said (the batch end's 60.3 tells it).
    uploaded: int = 0
    balanced: bool = False
    #: The transactions of the batch being settled (its 0500 totals and upload): what closes with it.
    members: list[int] = field(default_factory=list)


#: What a settlement exchange stands for in the table's ``txn`` slot: the batch, not one sale
#: (never journaled: settlement specs have ``journals=False``).
_BATCH = TxnRecord(txn_id=0, intent="settlement", kind="purchase", mti=SETTLEMENT, stan="000000",
                   transmission="0000000000", pan="", amount=0, completion_amount=0, started_at=0.0)
#: What the sign-on exchange stands for in the table's ``txn`` slot (never journaled either).
_TERMINAL = TxnRecord(txn_id=0, intent="sign-on", kind="purchase", mti=SIGN_ON, stan="000000",
                      transmission="0000000000", pan="", amount=0, completion_amount=0, started_at=0.0)


class Terminal:
    """Sans-IO POS terminal. See the module docstring for its rules."""

    def __init__(self, config: TerminalConfig, mac_key: MacKey | None = None) -> None:
        self.config = config
        #: This terminal's MAC key, shared only with the host; ``None`` runs without MACs. Under
        #: ``cup`` a sign-on replaces it with the working MAK the host handed out.
        self.mac_key = mac_key
        #: The key from the key file: the sign-on goes under it, and under ``cup`` it is the master
        #: key (TMK) the sign-on answer's working keys are encrypted under.
        self.master_key = mac_key
        #: The wire dialect of its requests (a CUP terminal sends CUP bytes); answers are read in
        #: whichever dialect they arrive (``codec.dialect_of`` tells from the bytes).
        #: The profile (``protocol.profiles``): how this terminal's scheme recovers and runs its day.
        self.profile = config.scheme
        self.dialect = self.profile.dialect
        #: Where this terminal's family runs its day differently (CUP: batch numbers, packed uploads...).
        self.rules = self.profile.rules
        #: The open batch's number (CUP 60.2), the transactions of the closed batches (txn id -> batch),
        #: and the boundary of journals written before those were kept (their highest settled txn id).
        self.batch_number = 1
        self.settled: dict[int, int] = {}
        self.settled_through = 0
        self.policy = config.recovery
        self.waiting: deque[PaymentRequest] = deque()
        self.tasks: list[Task] = []
        self.inflight: Exchange | None = None
        self.records: dict[int, TxnRecord] = {}
        #: (STAN, response MTI) -> the exchange: under ``cup`` a reversal shares its original's STAN.
        self._by_stan: dict[tuple[str, str], tuple[str, TxnRecord]] = {}
        self._stan = config.stan_start - 1
        self._flushed_for: int | None = None
        #: The settlement under way, if any (``settle``).
        self.settlement: Settlement | None = None
        #: The instant last formatted by ``_clock``, and its text.
        self._stamped_at: float | None = None
        self._stamp = ""
        #: Why the terminal refuses to sell (it sends nothing more), or None.
        self.halted: str | None = None
        #: Sign-ons sent without an answer so far.
        self._sign_on_attempts = 0
        #: The host accepted a sign-on of this life in this run: a later sign-on (after a 77) is no
        #: new journal's first, and the host knowing an earlier life then is no lost journal.
        self._signed_on = False
        if config.life is not None:  # signs on before anything else, at the first input
            self.tasks.append(Task(ExchangeKind.SIGN_ON, _TERMINAL, -math.inf))
        # exchange kinds run once at start (none of possim's own): after the sign-on, before any sale
        self.tasks.extend(Task(spec.kind, _TERMINAL, -math.inf) for spec in EXCHANGES.values() if spec.at_start)

    # -- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The terminal is switched on: sign on now (with a life number) rather than at the first sale."""
        return self._pump(now)

    def sign_on_again(self, now: float) -> list[Action]:
        """The till's QR terminal was told to sign on again (its wallet request was from a life that
        is no longer current): the device signs on afresh, here, before anything else."""
        self._queue_sign_on(now)
        return self._pump(now)

    def request_payment(self, now: float, request: PaymentRequest) -> list[Action]:
        """A customer wants to pay; queued behind whatever the terminal is doing (a halted terminal sells nothing)."""
        if self.halted is not None:
            return []
        self.waiting.append(request)
        return self._pump(now)

    def receive(self, now: float, data: bytes) -> list[Action]:
        """Bytes arrived from the host."""
        try:
            dialect = dialects.get(codec.dialect_of(data))
            msg = dialect.decode(data, self._answer_key(dialect, data))
        except codec.MacError as exc:
            self._note_mac_error(exc.message)
            return [ev.ResponseRejected(*_ids(exc.message), str(exc))]
        except ProtocolError as exc:
            return [ev.MalformedFrame("terminal", str(exc))]
        ex = self.inflight
        if ex and msg.mti == response_to(ex.request.mti) and msg.stan == ex.request.stan \
                and msg.tid == self.config.tid:
            mismatch = _mismatch(ex, msg)
            if mismatch is not None:  # another request's answer under a repeated STAN: the timer runs on
                return [ev.ResponseMismatch(*_ids(msg), reason=mismatch, txn=ex.txn.txn_id or None)]
            if msg.response_code is not None and msg.response_code == self.profile.duplicate_in_progress:
                return [ev.DuplicateTransmission(*_ids(msg))]
            if msg.response_code in self.rules.sign_on_again and self.config.life is not None \
                    and ex.kind is not ExchangeKind.SIGN_ON:
                self.inflight = None
                return [CancelTimer(RESPONSE_TIMER), *self._sign_on_again(now, ex, msg), *self._pump(now)]
            self.inflight = None
            actions: list[Action] = [CancelTimer(RESPONSE_TIMER)]
            actions += EXCHANGES.get(ex.kind).answered(self, now, ex, msg)
            return actions + self._pump(now)
        return self._unexpected(msg)

    def _answer_key(self, dialect: dialects.Dialect, data: bytes) -> MacKey | None:
        """A sign-on answer is MACed under the master key (the working keys are not installed yet);
        every other answer under the key of the requests, the working MAK once a CUP sign-on gave one."""
        if self.mac_key is self.master_key:
            return self.mac_key
        mti = dialect.peek_mti(data)
        return self.master_key if mti == response_to(SIGN_ON) else self.mac_key

    def _note_mac_error(self, msg: Message) -> None:
        """An answer to the exchange in flight failed its MAC: a reversal of it says so where the
        profile gives reasons (CUP: A0, not 98)."""
        ex = self.inflight
        if ex is not None and msg.stan == ex.request.stan and ex.txn.reversal_reason is None:
            ex.txn.reversal_reason = self.profile.reason_mac_error

    def timer_fired(self, now: float, name: str) -> list[Action]:
        """The response timer ends the exchange in flight; any timer may make work due."""
        if name == RESPONSE_TIMER and self.inflight is not None:
            ex, self.inflight = self.inflight, None
            actions: list[Action] = [ev.ResponseTimeout(*_ids(ex.request))]
            actions += EXCHANGES.get(ex.kind).timed_out(self, now, ex)
            return actions + self._pump(now)
        return self._pump(now)

    def restore(self, now: float, records: list[TxnRecord]) -> list[Action]:
        """Power came back: rebuild the recovery work from the journal, the only thing that survived.

        An original still ``pending`` was in flight when the power went: its fate is unknown,
        and it gets the policy's recovery. Reversals and advices still owed are resumed. This
        is why rule 1 matters: without a reversal record written before the original left,
        a terminal that loses power after sending cannot know it owes one.
        """
        actions: list[Action] = [ev.TerminalRestored(len(records))]
        for txn in sorted(records, key=lambda r: r.txn_id):
            self.records[txn.txn_id] = txn
            self._remember_stans(txn)
            actions += self._resume(now, txn)
        return actions + self._pump(now)

    def resume_batch(self, batch: int, settled_through: int, settled: Mapping[int, int] | None = None) -> None:
        """The journal's open batch: its number, the transactions of the batches closed before it, and an
        older journal's boundary (the last transaction of its closed batches)."""
        self.batch_number, self.settled_through = batch, settled_through
        self.settled = dict(settled or {})

    def _remember_stans(self, txn: TxnRecord) -> None:
        """Late answers to journaled exchanges stay recognisable, and STANs are not reused."""
        for spec in EXCHANGES.values():
            stan = spec.stan_of(txn)
            if stan and spec.request_mti is not None:
                self._by_stan[(stan, response_to(spec.request_mti(self, txn)))] = (spec.kind, txn)
                self._stan = max(self._stan, int(stan))

    def _resume(self, now: float, txn: TxnRecord) -> list[Action]:
        if txn.reversal is ReversalState.ESCALATED:  # the acquirer has the case now
            return []
        if txn.reversal is ReversalState.PENDING:
            return resume_reversal(self, now, txn)
        if txn.status in UNSETTLED:
            return self.policy.restored(self, now, txn)
        if txn.completion is CompletionState.PENDING and self.policy.forwards_advices:
            self.tasks.append(Task(ExchangeKind.ADVICE, txn, now))
        return []

    def settle(self, now: float) -> list[Action]:
        """End of the day: send the batch totals (0500) once the line is free; ignored while one runs.

        The batch is every sale the journal holds as approved and not reversed (a completed
        pre-authorization counts its completion). Out of balance, each of them is uploaded (0320)
        and the totals are sent once more; an upload is where a completion advice that never got
        through online reaches the host.
        """
        if self.settlement is not None:
            return []
        self.settlement = Settlement()
        if self.rules.trickles_advices and not self.config.online_completion:
            self._trickle_advices(now)
        self.tasks.append(Task(ExchangeKind.SETTLEMENT, _BATCH, now))
        return self._pump(now)

    def _trickle_advices(self, now: float) -> None:
        """CUP: stored completion advices go out before the settlement (``TrickleFeedOffLineTxn``), one
        more try each for those given up; what still does not get through is in the batch upload."""
        owed = {id(t.txn) for t in self.tasks if t.kind is ExchangeKind.ADVICE}
        for task in self.tasks:
            if task.kind is ExchangeKind.ADVICE:
                task.due = now
        for txn in self._batch():
            if txn.completion is CompletionState.LOST and id(txn) not in owed:
                self.tasks.append(Task(ExchangeKind.ADVICE, txn, now))

    # -- queries for drivers and tests ----------------------------------------------------

    def forget_history(self) -> None:
        """The run is over and its journal holds every record: let the terminal's copies go, so that
        judging a long day (which reads the journal) does not hold each sale twice."""
        self.records.clear()
        self._by_stan.clear()

    @property
    def idle(self) -> bool:
        """Nothing in flight, no customer waiting, no recovery work that will ever run by itself."""
        return self.inflight is None and not self.waiting and all(t.due == PARKED for t in self.tasks)

    # -- recovery operations (the policy's vocabulary, see pos_sim.policies.Recovery) -----

    def reverse(self, now: float, txn: TxnRecord) -> list[Action]:
        """Owe a reversal of ``txn``: journaled as pending, sent as soon as the line is free."""
        txn.move_reversal(ReversalState.PENDING)
        if txn.reversal_reason is None:
            txn.reversal_reason = self.profile.reason_no_answer
        self.tasks.append(Task(ExchangeKind.REVERSAL, txn, now))
        return [WriteJournal(txn.snapshot())]

    def query(self, now: float, txn: TxnRecord) -> list[Action]:
        """The sale's fate is unknown until a status query answers."""
        txn.move_status(SaleStatus.UNKNOWN)
        self.tasks.append(Task(ExchangeKind.QUERY, txn, now))
        return [WriteJournal(txn.snapshot())]

    def finish(self, now: float, txn: TxnRecord, status: SaleStatus, display: str) -> list[Action]:
        """Tell the cashier and journal what the terminal now believes about the sale."""
        txn.move_status(status)
        txn.display, txn.finished_at = display, now
        return [WriteJournal(txn.snapshot()), Outcome(txn.txn_id, txn.intent, status, display)]

    # -- scheduling -----------------------------------------------------------------------

    def _pump(self, now: float) -> list[Action]:
        """Start the next exchange if the line is free: due recovery work, then the next customer."""
        if self.inflight is not None:
            return []
        signing_on = next((t for t in self.tasks if t.kind is ExchangeKind.SIGN_ON), None)
        if signing_on is not None:  # nothing else goes out before the host has answered the sign-on
            return self._start_task(now, signing_on) if signing_on.due <= now else [
                StartTimer(RETRY_TIMER, signing_on.due)]
        due = [t for t in self.tasks if t.due <= now]
        if due:
            return self._start_task(now, self._reversal_first(now, min(due, key=_priority)))
        if self.waiting:
            return self._next_customer(now)
        later = [t.due for t in self.tasks if t.due != PARKED]
        return [StartTimer(RETRY_TIMER, min(later))] if later else []

    def _reversal_first(self, now: float, task: Task) -> Task:
        """CUP rule: a reversal still owed goes out before any other online message, due or not."""
        owed = [t for t in self.tasks if EXCHANGES.get(t.kind).precedes_payments]
        if not self.profile.reversal_before_anything or not owed or EXCHANGES.get(task.kind).precedes_payments \
                or task.kind is ExchangeKind.SIGN_ON:  # the sign-on goes first of all
            return task
        owed[0].due = now
        return owed[0]

    def _next_customer(self, now: float) -> list[Action]:
        head = self.waiting[0]
        asking = [t.due for t in self.tasks if t.kind is ExchangeKind.QUERY and t.due != PARKED]
        if asking:  # a sale of unknown fate is settled (or reversed) before the next customer's goes out
            return [StartTimer(RETRY_TIMER, min(asking))]
        owed = [t for t in self.tasks if EXCHANGES.get(t.kind).precedes_payments]
        if owed and self.profile.reversal_before_anything:
            return [ev.ReversalBeforeNextTransaction(head.txn_id), *self._start_task(now, self._reversal_first(
                now, owed[0]))]
        if owed and self._flushed_for != head.txn_id:
            self._flushed_for = head.txn_id
            return [ev.ReversalBeforeNextTransaction(head.txn_id), *self._start_task(now, owed[0])]
        return self._start_payment(now, self.waiting.popleft())

    def _start_payment(self, now: float, req: PaymentRequest) -> list[Action]:
        txn = TxnRecord(txn_id=req.txn_id, intent=req.intent, kind=req.kind,
                        mti=AUTH if req.kind == "auth" else PURCHASE, stan=self._next_stan(),
                        transmission=self._clock(now, "%m%d%H%M%S"), pan=req.pan, amount=req.amount,
                        completion_amount=req.completion_amount or req.amount, started_at=now,
                        instrument=req.instrument)
        if self.policy.arms_reversal:
            txn.move_reversal(ReversalState.ARMED)
        self.records[txn.txn_id] = txn
        return self._start(now, ExchangeKind.ORIGINAL, txn, None)

    def _start_task(self, now: float, task: Task) -> list[Action]:
        return self._start(now, task.kind, task.txn, task)

    def _start(self, now: float, kind: str, txn: TxnRecord, task: Task | None) -> list[Action]:
        """Build the request, journal the record (before the request leaves), send, arm the timer."""
        spec = EXCHANGES.get(kind)
        msg = spec.build(self, now, txn)
        self.inflight = Exchange(kind, txn, msg, task)
        self._by_stan[(msg.stan, response_to(msg.mti))] = (kind, txn)
        journal: list[Action] = [WriteJournal(txn.snapshot())] if spec.journals else []
        announce = spec.sent(self, msg) if spec.sent is not None else []
        key = self.master_key if kind is ExchangeKind.SIGN_ON else self.mac_key
        return [*journal, *announce, Send(self.profile.wire.encode(msg, key), msg.mti, msg.stan, txn.txn_id),
                StartTimer(RESPONSE_TIMER, now + spec.timeout(self.config))]

    # -- requests -------------------------------------------------------------------------

    def _build_original(self, now: float, txn: TxnRecord) -> Message:
        return self._message(now, txn.mti, stan=txn.stan, pan=txn.pan, processing_code=self._processing_code(txn),
                             amount=txn.amount, local_time=self._clock(now, "%H%M%S"),
                             local_date=self._clock(now, "%m%d"))

    def _processing_code(self, txn: TxnRecord) -> str:
        """A pre-authorization's is the profile's (CUP: 030000); everything else 000000."""
        return self.profile.preauth_processing_code if txn.kind == "auth" else "000000"

    def _build_reversal(self, now: float, txn: TxnRecord) -> Message:
        if self.profile.reversal_copies_original:
            return self._build_copied_reversal(now, txn)
        txn.reversal_attempts += 1
        mti = REVERSAL if txn.reversal_attempts == 1 else REVERSAL_REPEAT
        msg = self._message(now, mti, stan=txn.reversal_stan, pan=txn.pan, processing_code="000000",
                            amount=txn.amount, original=_original(txn))
        txn.reversal_stan = msg.stan
        return msg

    def _build_copied_reversal(self, now: float, txn: TxnRecord) -> Message:
        """The message being cancelled, copied (same STAN, field 7, card, amount), with the reason
        in field 39. A completion's reversal copies the completion (field 90 names its pre-auth)."""
        txn.reversal_attempts += 1
        txn.reversal_stan = txn.completion_stan if txn.completion_transmission is not None else txn.stan
        # Fields 13 and 12 are the original's, cut from its transmission time (not from ``started_at``:
        # a restarted process counts time from another epoch).
        local = {"local_time": txn.transmission[4:], "local_date": txn.transmission[:4]}
        if txn.completion_transmission is not None:
            assert txn.completion_stan is not None
            return self._message(now, REVERSAL, stan=txn.completion_stan, transmission=txn.completion_transmission,
                                 pan=txn.pan, processing_code="000000", amount=txn.completion_amount,
                                 response_code=txn.reversal_reason, auth_code=txn.auth_code,
                                 original=_original(txn))
        return self._message(now, REVERSAL, stan=txn.stan, transmission=txn.transmission, pan=txn.pan,
                             processing_code=self._processing_code(txn), amount=txn.amount,
                             response_code=txn.reversal_reason, auth_code=txn.auth_code, **local)

    def _build_query(self, now: float, txn: TxnRecord) -> Message:
        txn.query_attempts += 1
        return self._message(now, STATUS_QUERY, processing_code="970000", original=_original(txn))

    def _build_advice(self, now: float, txn: TxnRecord) -> Message:
        if self.config.online_completion:
            return self._build_completion(now, txn)
        txn.completion_attempts += 1
        mti = ADVICE if txn.completion_attempts == 1 else ADVICE_REPEAT
        msg = self._message(now, mti, stan=txn.completion_stan, pan=txn.pan, processing_code="000000",
                            amount=txn.completion_amount, rrn=txn.rrn, auth_code=txn.auth_code,
                            original=_original(txn))
        txn.completion_stan = msg.stan
        return msg

    def _build_completion(self, now: float, txn: TxnRecord) -> Message:
        """The pre-authorization completion as an online request (CUP) (0200, field 90 = the
        pre-auth), not an advice; a missing answer reverses it rather than repeating it."""
        txn.completion_attempts += 1
        msg = self._message(now, PURCHASE, pan=txn.pan, processing_code="000000", amount=txn.completion_amount,
                            rrn=txn.rrn, auth_code=txn.auth_code, original=_original(txn))
        txn.completion_stan, txn.completion_transmission = msg.stan, msg.transmission
        return msg

    def _build_settlement(self, now: float, txn: TxnRecord) -> Message:
        batch = self._batch()
        if self.settlement is not None:
            self.settlement.members = [t.txn_id for t in batch]
        totals = BatchTotals(debit_amount=sum(_batch_amount(r) for r in batch), debit_count=len(batch))
        return self._message(now, SETTLEMENT, batch_totals=totals.to_field48())

    def _build_sign_on(self, now: float, txn: TxnRecord) -> Message:
        self._sign_on_attempts += 1
        return self._message(now, SIGN_ON)

    def _settlement_sent(self, msg: Message) -> list[Action]:
        totals = BatchTotals.from_field48(msg.batch_totals or "")
        final = self.settlement is not None and self.settlement.final
        return [ev.SettlementSent(msg.tid, msg.stan, totals.debit_amount, totals.debit_count, final)]

    def _build_upload(self, now: float, txn: TxnRecord) -> Message:
        """One approved sale as the batch upload carries it, naming the sale (or pre-auth) in field 90."""
        state = self.settlement
        if self.rules.sales_per_upload and state is not None and state.frames:
            return self._build_packed_upload(now, state, state.frames[0])
        return self._message(now, BATCH_UPLOAD, pan=txn.pan, processing_code="000000", amount=_batch_amount(txn),
                             rrn=txn.rrn, auth_code=txn.auth_code, original=_original(txn))

    def _build_packed_upload(self, now: float, state: Settlement, frame: list[TxnRecord]) -> Message:
        """CUP: sales packed in field 48; a completion alone, as the single-sale upload naming its
        pre-authorization; ``[]`` the batch end (field 48 the count, 60.3 202 balanced or 207 not)."""
        if not frame:
            code = cup.BATCH_END_BALANCED if state.balanced else cup.BATCH_END_UNBALANCED
            return self._message(now, BATCH_UPLOAD, uploads=cup.batch_end(state.uploaded), network_code=code)
        if len(frame) == 1 and frame[0].kind == "auth":
            txn = frame[0]
            return self._message(now, BATCH_UPLOAD, pan=txn.pan, processing_code="000000", amount=_batch_amount(txn),
                                 rrn=txn.rrn, auth_code=txn.auth_code, original=_original(txn))
        sales = [cup.UploadedSale(t.stan, t.pan, _batch_amount(t)) for t in frame]
        return self._message(now, BATCH_UPLOAD, uploads=cup.pack_uploads(sales))

    def _upload_frames(self, batch: list[TxnRecord]) -> list[list[TxnRecord]]:
        """CUP's upload order (``PosBatchUp``): each completion alone, purchases packed ``sales_per_upload``
        a frame, then the batch end."""
        size = self.rules.sales_per_upload
        sales = [t for t in batch if t.kind != "auth"]
        frames = [sales[i:i + size] for i in range(0, len(sales), size)]
        return [*([t] for t in batch if t.kind == "auth"), *frames, []]

    def _batch(self) -> list[TxnRecord]:
        """The day's sales: approved, not reversed or handed to the acquirer, completions that were not refused."""
        out = []
        for txn in sorted(self.records.values(), key=lambda r: r.txn_id):
            if txn.txn_id in self.settled or txn.txn_id <= self.settled_through:  # in a batch already closed
                continue
            if txn.status is not SaleStatus.APPROVED or txn.reversal in _NOT_IN_BATCH:
                continue
            if txn.kind == "auth" and txn.completion not in _COMPLETED:
                continue
            out.append(txn)
        return out

    # -- answers --------------------------------------------------------------------------

    def _original_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        txn = ex.txn
        txn.response_code, txn.rrn, txn.auth_code = msg.response_code, msg.rrn, msg.auth_code
        _disarm(txn)
        if msg.approved:
            return self._approve(now, txn, "APPROVED")
        return self.finish(now, txn, SaleStatus.DECLINED, f"DECLINED ({msg.response_code})")

    def _reversal_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        """Only an answer in ``REVERSAL_ANSWERS`` that closes ends it: a refusal credited nothing."""
        txn, task = ex.txn, _task(ex)
        if not reversal_closes(msg.response_code):
            if self.rules.reason_after_refusal is not None and txn.reversal_reason == self.profile.reason_no_answer:
                txn.reversal_reason = self.rules.reason_after_refusal  # CUP: 98 becomes 06 after a refusal
            return self._retry_reversal(now, txn, task, reason=f"answered {msg.response_code}")
        self._drop_task(task)
        txn.move_reversal(ReversalState.ACKED)
        if txn.status in UNSETTLED:
            txn.move_status(SaleStatus.REVERSED)
        return [WriteJournal(txn.snapshot()), ev.ReversalAcknowledged(*_ids(msg), txn.txn_id)]

    def _query_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        """APPROVED finishes the sale; IN_PROGRESS (the issuer has not answered) asks again later."""
        txn = ex.txn
        if msg.status == "IN_PROGRESS":
            return self._query_timed_out(now, ex)
        self._drop_task(ex.task)
        _disarm(txn)
        status = msg.status or "NOT_FOUND"
        if status == "APPROVED":
            txn.rrn, txn.auth_code, txn.response_code = msg.rrn, msg.auth_code, "00"
            return self._approve(now, txn, "APPROVED (after status check)")
        return self.finish(now, txn, SaleStatus.FAILED, f"FAILED (host: {status.lower().replace('_', ' ')})")

    def _sign_on_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        """00: sell under this life, unless the journal is new and the id had an earlier life."""
        self._drop_task(ex.task)
        tid, life = self.config.tid, self.config.life or ""
        if not msg.approved:
            return self._halt(f"terminal {tid}: the host refused its sign-on (answered {msg.response_code})")
        earlier = msg.status == EARLIER_LIFE
        if earlier and self.config.new_journal and not self.config.replacement and not self._signed_on:
            return self._halt(f"terminal {tid} has no journal, but the host knows it from an earlier life: its "
                              "sales may be unsettled and its STANs would start again; refusing to sell (restore its "
                              "journal, or start it as a replacement: --replacement)")
        try:
            installed = self._install_working_keys(msg)
        except ProtocolError as exc:  # a key that does not match its check value is no key: sell nothing
            return [ev.SignOnFailed(tid, msg.stan, str(exc)),
                    *self._halt(f"terminal {tid}: sign-on failed: {exc}")]
        self._signed_on = True
        return [ConfirmLife(life), ev.TerminalSignedOn(tid, msg.stan, life, earlier), *installed]

    def _install_working_keys(self, msg: Message) -> list[Action]:
        """CUP: take the batch number (60.2) and the working keys (field 62) of the sign-on answer.

        Each key is decrypted under the master key and used only if it matches its check value
        (``cup.WorkingKeys.from_field62`` raises otherwise); the MAK then MACs every later message.
        An answer without field 62 (a terminal without keys, a master key the exchange cannot use)
        leaves the key from the key file in place."""
        if not self.profile.working_keys:
            return []
        actions: list[Action] = []
        master = self.master_key
        if msg.working_keys is not None and master is not None and len(master.secret) in cup.TMK_LENGTHS:
            keys = cup.WorkingKeys.from_field62(master.secret, msg.working_keys)
            self.mac_key = MacKey(cup.WORKING_MAC, keys.mak)
            actions.append(ev.WorkingKeysInstalled(self.config.tid, msg.stan, cup.check_value(keys.mak).hex().upper(),
                                                   msg.batch or f"{self.batch_number:06d}"))
        if self.rules.batch_numbers and msg.batch is not None and int(msg.batch) != self.batch_number:
            self.batch_number = int(msg.batch)  # the host's count of this terminal's batches
            actions.append(CloseBatch(self.batch_number, self.settled_through))
        return actions

    def _sign_on_again(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        """77: another life of this terminal id signed on since; sign on afresh before anything else.

        The host books nothing for a request it answers 77, so a sale is over: not charged,
        shown so, and never sent again by itself (CUP practice: the terminal signs on, the operator
        rings the sale up again as a new one). Recovery work is not done yet: it is tried again
        after the sign-on, within its own limits (a reversal's or a query's attempts), so a host
        that keeps answering 77 cannot keep it going forever. A settlement is sent once more.
        """
        actions: list[Action] = [ev.SignOnAgain(*_ids(msg), txn=ex.txn.txn_id or None)]
        self._queue_sign_on(now)
        txn = ex.txn
        if ex.kind is ExchangeKind.ORIGINAL:
            txn.response_code = msg.response_code
            _disarm(txn)
            return actions + self.finish(now, txn, SaleStatus.FAILED, SIGN_ON_AGAIN_DISPLAY)
        if ex.kind is ExchangeKind.REVERSAL:
            return actions + self._retry_reversal(now, txn, _task(ex), reason=f"answered {SIGN_ON_AGAIN}")
        if ex.kind is ExchangeKind.ADVICE:  # an online completion too: it booked nothing, so no reversal
            return actions + self._retry_advice(now, txn, _task(ex))
        if ex.kind is ExchangeKind.SETTLEMENT and self.settlement is not None \
                and not self.settlement.signed_on_again:
            self.settlement.signed_on_again = True
            _task(ex).due = now
            return actions
        if ex.kind is ExchangeKind.SETTLEMENT:
            self._drop_task(ex.task)
            return actions + self._settlement_failed(msg, f"answered {SIGN_ON_AGAIN} again after signing on")
        return actions + EXCHANGES.get(ex.kind).timed_out(self, now, ex)

    def _queue_sign_on(self, now: float) -> None:
        """A fresh sign-on, due now, ahead of everything else (unless one is already owed)."""
        if self.config.life is not None and self.halted is None \
                and not any(t.kind is ExchangeKind.SIGN_ON for t in self.tasks):
            self._sign_on_attempts = 0
            self.tasks.append(Task(ExchangeKind.SIGN_ON, _TERMINAL, now))

    def _sign_on_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        """No answer: sign on again after the backoff; customers keep waiting."""
        _task(ex).due = now + self.config.backoff(self._sign_on_attempts)
        return []

    def _halt(self, reason: str) -> list[Action]:
        """Sell nothing more: customers waiting are turned away unserved (nothing was journaled for them)."""
        self.halted = reason
        self.waiting.clear()
        self.tasks.clear()
        return [ev.TerminalRefusedToSell(self.config.tid, reason)]

    def _advice_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        txn, task = ex.txn, _task(ex)
        if msg.response_code in ADVICE_RETRYABLE and self.policy.forwards_advices:
            return self._retry_advice(now, txn, task)
        self._drop_task(task)
        txn.move_completion(CompletionState.ACKED if msg.approved else CompletionState.REJECTED)
        return [WriteJournal(txn.snapshot())]

    def _settlement_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        """Balanced (1), or out of balance (2): upload every sale of the batch, then settle once more."""
        self._drop_task(ex.task)
        state = self.settlement or Settlement()
        try:
            totals = BatchTotals.from_field48(msg.batch_totals or "")
        except ProtocolError:
            return self._settlement_failed(msg, f"answered {msg.response_code} without batch totals")
        balanced = totals.answer == "1"
        if self.rules.sales_per_upload:
            return self._start_packed_upload(now, msg, state, balanced)
        if balanced or state.final:
            self.settlement = None
            return [ev.SettlementAnswered(msg.tid, msg.stan, balanced, state.final)]
        batch = self._batch()
        state.final, state.uploads = True, len(batch)
        self.tasks.extend(Task(ExchangeKind.BATCH_UPLOAD, txn, now) for txn in batch)
        if not batch:
            self.tasks.append(Task(ExchangeKind.SETTLEMENT, _BATCH, now))
        return [ev.SettlementAnswered(msg.tid, msg.stan, False, False, len(batch))]

    def _start_packed_upload(self, now: float, msg: Message, state: Settlement, balanced: bool) -> list[Action]:
        """CUP: upload the batch whether it balanced or not, then end it; no second 0500."""
        batch = self._batch()
        state.members = [t.txn_id for t in batch]  # what is uploaded is what the batch end closes
        state.final, state.balanced, state.frames = True, balanced, self._upload_frames(batch)
        state.uploads = len(state.frames)
        self.tasks.append(Task(ExchangeKind.BATCH_UPLOAD, state.frames[0][0] if state.frames[0] else _BATCH, now))
        return [ev.SettlementAnswered(msg.tid, msg.stan, balanced, False, len(batch))]

    def _settlement_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        self._drop_task(ex.task)
        return self._settlement_failed(ex.request, "no answer")

    def _settlement_failed(self, msg: Message, reason: str) -> list[Action]:
        """The batch stays open; a later ``settle`` tries again."""
        self.settlement = None
        return [ev.SettlementFailed(msg.tid, msg.stan, SETTLEMENT, reason)]

    def _upload_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        """The host has the sale now; a completion it had not got is acknowledged by this answer."""
        txn, actions = ex.txn, self._upload_done(now, ex)
        if msg.approved and txn.completion in (CompletionState.LOST, CompletionState.PENDING):
            self.tasks = [t for t in self.tasks if not (t.kind is ExchangeKind.ADVICE and t.txn is txn)]
            txn.move_completion(CompletionState.ACKED)
            actions.insert(0, WriteJournal(txn.snapshot()))
        elif not msg.approved:
            actions.insert(0, ev.SettlementFailed(msg.tid, msg.stan, BATCH_UPLOAD, f"answered {msg.response_code}"))
        return actions

    def _upload_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        return [ev.SettlementFailed(ex.request.tid, ex.request.stan, BATCH_UPLOAD, "no answer"),
                *self._upload_done(now, ex)]

    def _upload_done(self, now: float, ex: Exchange) -> list[Action]:
        """After the last upload, the final settlement."""
        self._drop_task(ex.task)
        state = self.settlement
        if state is not None and state.frames:
            return self._packed_upload_done(now, state)
        if state is not None:
            state.uploads -= 1
            if state.uploads <= 0:
                self.tasks.append(Task(ExchangeKind.SETTLEMENT, _BATCH, now))
        return []

    def _packed_upload_done(self, now: float, state: Settlement) -> list[Action]:
        """The next frame of a CUP upload; after the batch end the batch is closed, whatever its answers."""
        done = state.frames.pop(0)
        state.uploaded += len(done)
        if state.frames:
            head = state.frames[0]
            self.tasks.append(Task(ExchangeKind.BATCH_UPLOAD, head[0] if head else _BATCH, now))
            return []
        return self._close_batch(state)

    def _close_batch(self, state: Settlement) -> list[Action]:
        """The settled batch is closed: the sales it uploaded leave the batch (by id, so a sale approved
        later, whatever its id, is in the next batch), and the next one gets the next number."""
        self.settlement = None
        closed = self.batch_number
        for txn_id in state.members:
            self.settled[txn_id] = closed
        self.batch_number = closed % 999_999 + 1
        return [CloseBatch(self.batch_number, self.settled_through, tuple(state.members), closed),
                ev.BatchClosed(self.config.tid, f"{closed:06d}", f"{self.batch_number:06d}")]

    def _approve(self, now: float, txn: TxnRecord, display: str) -> list[Action]:
        """An approved authorization still owes its completion advice."""
        actions = self.finish(now, txn, SaleStatus.APPROVED, display)
        if txn.kind == "auth":
            txn.move_completion(CompletionState.PENDING)
            self.tasks.append(Task(ExchangeKind.ADVICE, txn, now))
            actions.append(WriteJournal(txn.snapshot()))
        return actions

    # -- timeouts -------------------------------------------------------------------------

    def _original_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        """The sale's fate is unknown (rule 3); what happens next is the policy's choice."""
        ex.txn.move_status(SaleStatus.UNKNOWN)
        return self.policy.original_timed_out(self, now, ex.txn)

    def _reversal_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        return self._retry_reversal(now, ex.txn, _task(ex), reason="timeout")

    def _query_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        txn, task = ex.txn, _task(ex)
        if txn.query_attempts < self.policy.queries_allowed(self.config.query_attempts):
            task.due = now + self.config.query_interval
            return []
        self._drop_task(task)
        return self.policy.queries_exhausted(self, now, txn)

    def _advice_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        if self.config.online_completion:
            return self._completion_timed_out(now, ex)
        return self._retry_advice(now, ex.txn, _task(ex))

    def _completion_timed_out(self, now: float, ex: Exchange) -> list[Action]:
        """CUP: an online completion without an answer is reversed; the sale is not completed."""
        txn = ex.txn
        self._drop_task(ex.task)
        txn.move_completion(CompletionState.LOST)
        if not self.policy.arms_reversal:
            return [WriteJournal(txn.snapshot())]
        return self.reverse(now, txn) + self.finish(now, txn, SaleStatus.FAILED, "COMPLETION FAILED - REVERSED")

    def _retry_reversal(self, now: float, txn: TxnRecord, task: Task, reason: str) -> list[Action]:
        """Repeat with backoff; after the last attempt park it (still owed, shown as pending),
        or, where the profile says so (CUP), escalate it to the acquirer."""
        if txn.reversal_attempts < self.config.reversal_attempts:
            task.due = now + self.config.backoff(txn.reversal_attempts)
            return [ev.ReversalRetryScheduled(txn.txn_id, task.due, reason)]
        if self.profile.escalates_after_tries:
            return self._escalate(now, txn, task, reason)
        task.due = PARKED
        return [ev.ReversalParked(txn.txn_id, txn.reversal_attempts)]

    def _escalate(self, now: float, txn: TxnRecord, task: Task, reason: str) -> list[Action]:
        """CUP: tries ran out; the case goes to the acquirer's error handling (the money stays
        with the acquirer until then). Shown to the cashier and journaled; nothing more is sent."""
        self._drop_task(task)
        txn.move_reversal(ReversalState.ESCALATED)
        stan = txn.completion_stan if txn.completion_transmission is not None else txn.stan
        escalated = ev.ReversalEscalated(self.config.tid, stan or txn.stan, txn.txn_id, txn.reversal_attempts, reason)
        txn.display = ESCALATED_DISPLAY
        return [WriteJournal(txn.snapshot()), escalated,
                Outcome(txn.txn_id, txn.intent, txn.status, ESCALATED_DISPLAY)]

    def _retry_advice(self, now: float, txn: TxnRecord, task: Task) -> list[Action]:
        if self.policy.forwards_advices and txn.completion_attempts < self.config.advice_attempts:
            task.due = now + self.config.backoff(txn.completion_attempts)
            return []
        self._drop_task(task)
        txn.move_completion(CompletionState.LOST)
        return [WriteJournal(txn.snapshot())]

    # -- helpers --------------------------------------------------------------------------

    def _unexpected(self, msg: Message) -> list[Action]:
        known = self._by_stan.get((msg.stan, msg.mti))
        if known is None or msg.tid != self.config.tid:
            return [ev.UnmatchedMessage(*_ids(msg))]
        kind, txn = known
        if kind is ExchangeKind.ORIGINAL and msg.transmission != txn.transmission:  # a sale from before a STAN wrap
            return [ev.UnmatchedMessage(*_ids(msg))]
        ids, status, rc = _ids(msg), str(txn.status), msg.response_code
        if kind is ExchangeKind.ORIGINAL and txn.status is not SaleStatus.PENDING:
            txn.late_responses += 1
            return [WriteJournal(txn.snapshot()), ev.LateResponse(*ids, txn.txn_id, status, rc)]
        return [ev.DuplicateResponse(*ids, txn.txn_id, status, rc)]

    def request(self, now: float, mti: str, **fields: Any) -> Message:
        """A new request of this terminal (next STAN, field 7 now, its id, life and batch) carrying
        ``fields``: for the ``build`` of an exchange kind registered from outside this module."""
        return self._message(now, mti, **fields)

    def exchange_done(self, ex: Exchange) -> None:
        """The exchange's work is over (answered, or given up): for a registered kind's handlers."""
        self._drop_task(ex.task)

    def _drop_task(self, task: Task | None) -> None:
        if task is not None and task in self.tasks:
            self.tasks.remove(task)

    def _message(self, now: float, mti: str, stan: str | None = None, transmission: str | None = None,
                 **fields: object) -> Message:
        batch = f"{self.batch_number:06d}" if self.rules.batch_numbers else None
        return Message(mti=mti, stan=stan or self._next_stan(),
                       transmission=transmission or self._clock(now, "%m%d%H%M%S"),
                       tid=self.config.tid, mid=self.config.mid, currency=self.config.currency,
                       life=self.config.life, batch=batch, **fields)  # type: ignore[arg-type]

    def _next_stan(self) -> str:
        self._stan = self._stan % 999_999 + 1
        return f"{self._stan:06d}"

    def _clock(self, now: float, fmt: str) -> str:
        """``now`` as wall-clock text in ``fmt``. Field 7 (MMDDhhmmss), field 13 (MMDD) and
        field 12 (hhmmss) are cut from one formatting per instant: a sale asks for all three."""
        cut = _CUTS.get(fmt)
        if cut is None:
            return (self.config.epoch + timedelta(seconds=now)).strftime(fmt)
        if now != self._stamped_at:
            self._stamped_at = now
            self._stamp = (self.config.epoch + timedelta(seconds=now)).strftime("%m%d%H%M%S")
        return self._stamp[cut]


#: The formats :meth:`Terminal._clock` cuts from its one ``%m%d%H%M%S`` text.
_CUTS = {"%m%d%H%M%S": slice(0, 10), "%m%d": slice(0, 4), "%H%M%S": slice(4, 10)}

#: One entry per kind of exchange: the terminal dispatches through it and nothing else. Originals
#: are started by customers, not as recovery work, so their priority only says they wait behind it.
#: A new kind registers its spec here (``EXCHANGES.added`` in a test).
EXCHANGES: Registry[ExchangeSpec[Terminal]] = Registry("exchange kind", lambda spec: spec.kind)
for _spec in (
    ExchangeSpec(ExchangeKind.ORIGINAL, priority=3, timeout=lambda c: c.response_timeout,
                 build=Terminal._build_original, answered=Terminal._original_answered,
                 timed_out=Terminal._original_timed_out, stan_of=lambda r: r.stan, request_mti=lambda t, r: r.mti),
    ExchangeSpec(ExchangeKind.REVERSAL, priority=0, timeout=lambda c: c.reversal_timeout,
                 build=Terminal._build_reversal, answered=Terminal._reversal_answered,
                 timed_out=Terminal._reversal_timed_out, stan_of=lambda r: r.reversal_stan,
                 request_mti=lambda t, r: REVERSAL, precedes_payments=True),
    ExchangeSpec(ExchangeKind.QUERY, priority=1, timeout=lambda c: c.query_timeout,
                 build=Terminal._build_query, answered=Terminal._query_answered,
                 timed_out=Terminal._query_timed_out, stan_of=lambda r: None),
    ExchangeSpec(ExchangeKind.ADVICE, priority=2, timeout=lambda c: c.advice_timeout,
                 build=Terminal._build_advice, answered=Terminal._advice_answered,
                 timed_out=Terminal._advice_timed_out, stan_of=lambda r: r.completion_stan,
                 request_mti=lambda t, r: PURCHASE if t.config.online_completion else ADVICE),
    ExchangeSpec(ExchangeKind.SETTLEMENT, priority=5, timeout=lambda c: c.response_timeout,
                 build=Terminal._build_settlement, answered=Terminal._settlement_answered,
                 timed_out=Terminal._settlement_timed_out, stan_of=lambda r: None, journals=False,
                 sent=Terminal._settlement_sent),
    ExchangeSpec(ExchangeKind.BATCH_UPLOAD, priority=4, timeout=lambda c: c.response_timeout,
                 build=Terminal._build_upload, answered=Terminal._upload_answered,
                 timed_out=Terminal._upload_timed_out, stan_of=lambda r: None, journals=False),
    ExchangeSpec(ExchangeKind.SIGN_ON, priority=-1, timeout=lambda c: c.response_timeout,
                 build=Terminal._build_sign_on, answered=Terminal._sign_on_answered,
                 timed_out=Terminal._sign_on_timed_out, stan_of=lambda r: None, journals=False),
):
    EXCHANGES.register(_spec)

#: Reversal states that keep a sale out of the day's batch: reversed, being reversed, with the acquirer.
_NOT_IN_BATCH = frozenset({ReversalState.ACKED, ReversalState.PENDING, ReversalState.ESCALATED})
#: Completion states of a pre-authorization that count as a sale: acknowledged, or still owed.
_COMPLETED = frozenset({CompletionState.ACKED, CompletionState.LOST, CompletionState.PENDING})


def _batch_amount(txn: TxnRecord) -> int:
    """What a sale of the batch took: a pre-authorization's completion amount, a purchase's amount."""
    return txn.completion_amount if txn.kind == "auth" else txn.amount


def _priority(task: Task) -> tuple[int, float]:
    return (EXCHANGES.get(task.kind).priority, task.due)


def _task(ex: Exchange) -> Task:
    """Recovery exchanges always run for a task (only originals run without one)."""
    assert ex.task is not None, f"{ex.kind} exchange without its task"
    return ex.task


def _disarm(txn: TxnRecord) -> None:
    """The host answered the original (or told its fate): the armed reversal is not needed."""
    if txn.reversal is ReversalState.ARMED:
        txn.move_reversal(ReversalState.NONE)


def _original(txn: TxnRecord) -> OriginalData:
    return OriginalData(mti=txn.mti, stan=txn.stan, transmission=txn.transmission)


def _mismatch(ex: Exchange, msg: Message) -> str | None:
    """Why ``msg``, which has the MTI, STAN and terminal id of the exchange in flight, does not
    answer *this* request; None when it does.

    MTI + STAN + terminal id is not enough: a STAN repeats (a journal lost, a terminal restarted
    at its first STAN, a wrap past 999999), and a genuine answer to the earlier request, MAC and
    all, would then pass as this one's. Hosts echo field 7 and field 4 (possim's host echoes
    every field of the request, in both dialects; a CUP terminal checks the amount of every
    answer too), so an answer must carry this request's field 7, and its amount where it carries
    one: the request's, or for a status answer the amount of the sale it reports on. Field 37 is
    compared where the terminal already knows the RRN and sends it (advices, batch uploads: their
    answers echo it); a CUP online completion (0200) is a financial request of its own, which a
    host may answer with a new RRN. A field the answer leaves out is not compared.
    """
    req = ex.request
    if msg.transmission != req.transmission:
        return f"field 7 {msg.transmission} != {req.transmission}"
    expected = req.amount if req.amount is not None else ex.txn.amount if ex.kind is ExchangeKind.QUERY else None
    if msg.amount is not None and expected is not None and msg.amount != expected:
        return f"amount {_money(msg.amount)} != {_money(expected)}"
    known = req.rrn if req.mti not in _OWN_RRN else None
    if msg.rrn and known and msg.rrn != known:
        return f"field 37 {msg.rrn} != {known}"
    return None


#: Requests whose answer carries an RRN of its own (the host assigns one to each financial request).
_OWN_RRN = frozenset({AUTH, PURCHASE})


def _money(minor: int) -> str:
    """Minor units as the decimal text people read (2500 -> "25.00")."""
    return f"{minor // 100}.{minor % 100:02d}"


def _ids(msg: Message) -> tuple[str, str, str]:
    """The message's MTI, STAN and terminal id, in the order events take them."""
    return msg.mti, msg.stan, msg.tid

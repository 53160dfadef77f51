"""The POS terminal as a sans-IO state machine.

Theory of operation: the terminal talks to the host over one channel, one exchange at a
time (a request and the response it waits for). Inputs are ``request_payment``,
``receive`` (bytes from the link) and ``timer_fired``; each returns the actions the driver
must execute in order. The terminal never reads a clock: every input carries ``now``.

Besides customer transactions it owns recovery work: reversals, status queries and
completion advices. Recovery work due now goes first; a pending reversal is also tried
once more before every new transaction (CUP terminals send it before any online message).

Rules kept here:
1. A reversal record is journaled *before* the original it may cancel is sent.
2. A response is accepted only for the exchange in flight (MTI, STAN and terminal id
   match); anything else is a late or duplicate answer: journaled, traced, never applied.
3. A timed-out transaction whose fate is unknown is recorded as ``unknown``, not failed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from pos_sim.actions import Action, CancelTimer, Notice, Outcome, Send, StartTimer, WriteJournal
from pos_sim.config import TerminalConfig
from pos_sim.records import Kind, TxnRecord
from protocol import codec
from protocol import mti as M
from protocol.errors import ProtocolError
from protocol.messages import Message, OriginalData

RESPONSE_TIMER = "response"
RETRY_TIMER = "retry"
#: Reversal answers that end the reversal: done, nothing to reverse, not reversible.
REVERSAL_DONE = frozenset({"00", "25", "12"})
#: Answers that mean "try again later" (issuer/switch down, system malfunction).
RETRYABLE = frozenset({"91", "96"})
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
class Task:
    """Recovery work: a reversal, a status query or a completion advice, due at ``due``."""

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


class Terminal:
    """Sans-IO POS terminal. See the module docstring for its rules."""

    def __init__(self, config: TerminalConfig) -> None:
        self.config = config
        self.waiting: deque[PaymentRequest] = deque()
        self.tasks: list[Task] = []
        self.inflight: Exchange | None = None
        self.records: dict[int, TxnRecord] = {}
        self._by_stan: dict[str, tuple[str, TxnRecord]] = {}
        self._stan = config.stan_start - 1
        self._flushed_for: int | None = None

    # -- inputs ---------------------------------------------------------------------------

    def request_payment(self, now: float, request: PaymentRequest) -> list[Action]:
        """A customer wants to pay; queued behind whatever the terminal is doing."""
        self.waiting.append(request)
        return self._pump(now)

    def receive(self, now: float, data: bytes) -> list[Action]:
        """Bytes arrived from the host."""
        try:
            msg = codec.decode(data)
        except ProtocolError as exc:
            return [Notice("malformed_frame", {"reason": str(exc)})]
        ex = self.inflight
        if ex and msg.mti == M.response_to(ex.request.mti) and msg.stan == ex.request.stan \
                and msg.tid == self.config.tid:
            self.inflight = None
            actions: list[Action] = [CancelTimer(RESPONSE_TIMER)]
            actions += self._answered(now, ex, msg)
            return actions + self._pump(now)
        return self._unexpected(msg)

    def timer_fired(self, now: float, name: str) -> list[Action]:
        if name == RESPONSE_TIMER and self.inflight is not None:
            ex, self.inflight = self.inflight, None
            actions: list[Action] = [Notice("response_timeout", _fields(ex.request))]
            actions += self._timed_out(now, ex)
            return actions + self._pump(now)
        return self._pump(now)

    def restore(self, now: float, records: list[TxnRecord]) -> list[Action]:
        """Power came back: rebuild the recovery work from the journal, the only thing that survived.

        An original still ``pending`` was in flight when the power went: its fate is unknown,
        and it gets the policy's recovery. Reversals and advices still owed are resumed. This
        is why rule 1 matters: without a reversal record written before the original left,
        a terminal that loses power after sending cannot know it owes one.
        """
        actions: list[Action] = [Notice("terminal_restored", {"records": len(records)})]
        for txn in sorted(records, key=lambda r: r.txn_id):
            self.records[txn.txn_id] = txn
            for stan, kind in ((txn.stan, "original"), (txn.reversal_stan, "reversal"),
                               (txn.completion_stan, "advice")):
                if stan:
                    self._by_stan[stan] = (kind, txn)
                    self._stan = max(self._stan, int(stan))
            actions += self._resume(now, txn)
        return actions + self._pump(now)

    def _resume(self, now: float, txn: TxnRecord) -> list[Action]:
        if txn.reversal == "pending" or (txn.reversal == "armed" and not self.config.queries):
            return self._start_reversal(now, txn) + (
                self._finish(now, txn, "unknown", "POWER LOSS - PAYMENT FAILED") if txn.status == "pending" else [])
        if txn.status in ("pending", "unknown") and self.config.queries and txn.reversal != "acked":
            txn.status = "unknown"
            self.tasks.append(Task("query", txn, now))
            return [WriteJournal(txn.snapshot())]
        if txn.status == "pending":
            return self._finish(now, txn, "unknown", "POWER LOSS - PAYMENT UNKNOWN")
        if txn.completion == "pending" and self.config.forwards_advices:
            self.tasks.append(Task("advice", txn, now))
        return []

    # -- queries for drivers and tests ----------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing in flight, no customer waiting, no recovery work that will ever run by itself."""
        return self.inflight is None and not self.waiting and all(t.due == PARKED for t in self.tasks)

    # -- scheduling -----------------------------------------------------------------------

    def _pump(self, now: float) -> list[Action]:
        if self.inflight is not None:
            return []
        due = [t for t in self.tasks if t.due <= now]
        if due:
            return self._start_task(now, min(due, key=_priority))
        if self.waiting:
            head = self.waiting[0]
            reversals = [t for t in self.tasks if t.kind == "reversal"]
            if reversals and self._flushed_for != head.txn_id:
                self._flushed_for = head.txn_id
                return [Notice("reversal_before_next_transaction", {"txn": head.txn_id})] + \
                    self._start_task(now, reversals[0])
            return self._start_payment(now, self.waiting.popleft())
        later = [t.due for t in self.tasks if t.due != PARKED]
        return [StartTimer(RETRY_TIMER, min(later))] if later else []

    def _start_payment(self, now: float, req: PaymentRequest) -> list[Action]:
        mti = M.AUTH if req.kind == "auth" else M.PURCHASE
        msg = self._message(now, mti, pan=req.pan, processing_code="000000", amount=req.amount,
                            local_time=self._clock(now, "%H%M%S"), local_date=self._clock(now, "%m%d"))
        txn = TxnRecord(txn_id=req.txn_id, intent=req.intent, kind=req.kind, mti=mti, stan=msg.stan,
                        transmission=msg.transmission, pan=req.pan, amount=req.amount,
                        completion_amount=req.completion_amount or req.amount, started_at=now,
                        instrument=req.instrument)
        if self.config.reverses:
            txn.reversal = "armed"
        self.records[txn.txn_id] = txn
        return [WriteJournal(txn.snapshot())] + self._send(now, "original", txn, msg, None)

    def _start_task(self, now: float, task: Task) -> list[Action]:
        txn = task.txn
        if task.kind == "reversal":
            txn.reversal_attempts += 1
            mti = M.REVERSAL if txn.reversal_attempts == 1 else M.REVERSAL_REPEAT
            msg = self._message(now, mti, stan=txn.reversal_stan, pan=txn.pan, processing_code="000000",
                                amount=txn.amount, original=_original(txn))
            txn.reversal_stan = msg.stan
        elif task.kind == "query":
            txn.query_attempts += 1
            msg = self._message(now, M.STATUS_QUERY, processing_code="970000", original=_original(txn))
        else:
            txn.completion_attempts += 1
            mti = M.ADVICE if txn.completion_attempts == 1 else M.ADVICE_REPEAT
            msg = self._message(now, mti, stan=txn.completion_stan, pan=txn.pan, processing_code="000000",
                                amount=txn.completion_amount, rrn=txn.rrn, auth_code=txn.auth_code,
                                original=_original(txn))
            txn.completion_stan = msg.stan
        return [WriteJournal(txn.snapshot())] + self._send(now, task.kind, txn, msg, task)

    def _send(self, now: float, kind: str, txn: TxnRecord, msg: Message, task: Task | None) -> list[Action]:
        self.inflight = Exchange(kind, txn, msg, task)
        self._by_stan[msg.stan] = (kind, txn)
        timeout = {"original": self.config.response_timeout, "reversal": self.config.reversal_timeout,
                   "query": self.config.query_timeout, "advice": self.config.advice_timeout}[kind]
        return [Send(codec.encode(msg), msg.mti, msg.stan, txn.txn_id), StartTimer(RESPONSE_TIMER, now + timeout)]

    # -- answers --------------------------------------------------------------------------

    def _answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        handler = {"original": self._original_answered, "reversal": self._reversal_answered,
                   "query": self._query_answered, "advice": self._advice_answered}[ex.kind]
        return handler(now, ex, msg)

    def _original_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        txn = ex.txn
        txn.response_code, txn.rrn, txn.auth_code = msg.response_code, msg.rrn, msg.auth_code
        if txn.reversal == "armed":
            txn.reversal = "none"
        if msg.approved:
            return self._approve(now, txn, "APPROVED")
        return self._finish(now, txn, "declined", f"DECLINED ({msg.response_code})")

    def _reversal_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        txn, task = ex.txn, ex.task
        if msg.response_code in RETRYABLE and task is not None:
            return self._retry_reversal(now, txn, task, reason=f"answered {msg.response_code}")
        self._drop_task(task)
        txn.reversal = "acked"
        txn.status = "reversed" if txn.status in ("unknown", "pending") else txn.status
        return [WriteJournal(txn.snapshot()), Notice("reversal_acknowledged", {**_fields(msg), "txn": txn.txn_id})]

    def _query_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        txn = ex.txn
        self._drop_task(ex.task)
        status = msg.status or "NOT_FOUND"
        if status == "APPROVED":
            txn.rrn, txn.auth_code, txn.response_code = msg.rrn, msg.auth_code, "00"
            if txn.reversal == "armed":
                txn.reversal = "none"
            return self._approve(now, txn, "APPROVED (after status check)")
        if txn.reversal == "armed":
            txn.reversal = "none"
        return self._finish(now, txn, "failed", f"FAILED (host: {status.lower().replace('_', ' ')})")

    def _advice_answered(self, now: float, ex: Exchange, msg: Message) -> list[Action]:
        txn, task = ex.txn, ex.task
        if msg.response_code in RETRYABLE and task is not None and self.config.forwards_advices:
            return self._retry_advice(now, txn, task)
        self._drop_task(task)
        txn.completion = "acked" if msg.approved else "rejected"
        return [WriteJournal(txn.snapshot())]

    def _approve(self, now: float, txn: TxnRecord, display: str) -> list[Action]:
        actions = self._finish(now, txn, "approved", display)
        if txn.kind == "auth":
            txn.completion = "pending"
            self.tasks.append(Task("advice", txn, now))
            actions.append(WriteJournal(txn.snapshot()))
        return actions

    def _finish(self, now: float, txn: TxnRecord, status: str, display: str) -> list[Action]:
        txn.status, txn.display, txn.finished_at = status, display, now
        return [WriteJournal(txn.snapshot()), Outcome(txn.txn_id, txn.intent, status, display)]

    # -- timeouts -------------------------------------------------------------------------

    def _timed_out(self, now: float, ex: Exchange) -> list[Action]:
        txn, task = ex.txn, ex.task
        if ex.kind == "original":
            txn.status = "unknown"
            if self.config.queries:
                self.tasks.append(Task("query", txn, now))
                return [WriteJournal(txn.snapshot())]
            if self.config.reverses:
                return self._start_reversal(now, txn) + self._finish(now, txn, "unknown", "TIMEOUT - PAYMENT FAILED")
            return self._finish(now, txn, "unknown", "TIMEOUT - PAYMENT FAILED")
        assert task is not None
        if ex.kind == "reversal":
            return self._retry_reversal(now, txn, task, reason="timeout")
        if ex.kind == "query":
            return self._retry_query(now, txn, task)
        return self._retry_advice(now, txn, task)

    def _start_reversal(self, now: float, txn: TxnRecord) -> list[Action]:
        txn.reversal = "pending"
        self.tasks.append(Task("reversal", txn, now))
        return [WriteJournal(txn.snapshot())]

    def _retry_reversal(self, now: float, txn: TxnRecord, task: Task, reason: str) -> list[Action]:
        if txn.reversal_attempts < self.config.reversal_attempts:
            task.due = now + self.config.backoff(txn.reversal_attempts)
            return [Notice("reversal_retry_scheduled", {"txn": txn.txn_id, "at": task.due, "reason": reason})]
        task.due = PARKED
        return [Notice("reversal_parked", {"txn": txn.txn_id, "attempts": txn.reversal_attempts})]

    def _retry_query(self, now: float, txn: TxnRecord, task: Task) -> list[Action]:
        if txn.query_attempts < self.config.query_attempts:
            task.due = now + self.config.query_interval
            return []
        self._drop_task(task)
        if self.config.reverses:
            return self._start_reversal(now, txn) + self._finish(now, txn, "unknown", "TIMEOUT - PAYMENT FAILED")
        return self._finish(now, txn, "unknown", "UNKNOWN - CALL HELP DESK")

    def _retry_advice(self, now: float, txn: TxnRecord, task: Task) -> list[Action]:
        if self.config.forwards_advices and txn.completion_attempts < self.config.advice_attempts:
            task.due = now + self.config.backoff(txn.completion_attempts)
            return []
        self._drop_task(task)
        txn.completion = "lost"
        return [WriteJournal(txn.snapshot())]

    # -- helpers --------------------------------------------------------------------------

    def _unexpected(self, msg: Message) -> list[Action]:
        known = self._by_stan.get(msg.stan)
        if known is None or msg.tid != self.config.tid:
            return [Notice("unmatched_message", _fields(msg))]
        kind, txn = known
        fields = {**_fields(msg), "txn": txn.txn_id, "status": txn.status, "rc": msg.response_code}
        if kind == "original" and txn.status != "pending":
            txn.late_responses += 1
            return [WriteJournal(txn.snapshot()), Notice("late_response", fields)]
        return [Notice("duplicate_response", fields)]

    def _drop_task(self, task: Task | None) -> None:
        if task is not None and task in self.tasks:
            self.tasks.remove(task)

    def _message(self, now: float, mti: str, stan: str | None = None, **fields: object) -> Message:
        return Message(mti=mti, stan=stan or self._next_stan(), transmission=self._clock(now, "%m%d%H%M%S"),
                       tid=self.config.tid, mid=self.config.mid, currency=self.config.currency, **fields)  # type: ignore[arg-type]

    def _next_stan(self) -> str:
        self._stan = self._stan % 999_999 + 1
        return f"{self._stan:06d}"

    def _clock(self, now: float, fmt: str) -> str:
        return (self.config.epoch + timedelta(seconds=now)).strftime(fmt)


def _priority(task: Task) -> tuple[int, float]:
    return ({"reversal": 0, "query": 1, "advice": 2}[task.kind], task.due)


def _original(txn: TxnRecord) -> OriginalData:
    return OriginalData(mti=txn.mti, stan=txn.stan, transmission=txn.transmission)


def _fields(msg: Message) -> dict[str, object]:
    return {"mti": msg.mti, "stan": msg.stan, "tid": msg.tid}

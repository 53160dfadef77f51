"""Executes the terminal's actions against a link, a scheduler, a journal and a trace.

The same driver serves every transport: the scheduler is the virtual clock in memory
and the asyncio loop for real transports; the link is the fault layer in front of the
transport. It always records what replay needs to drive it again (the bytes of every
arrival, every payment request in full, every timer firing), so every trace replays.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from possim.pos_sim.actions import Action, CancelTimer, CloseBatch, ConfirmLife, Outcome, Send, StartTimer, WriteJournal
from possim.pos_sim.halting import HaltsOnWriteError
from possim.pos_sim.journal import Journal
from possim.pos_sim.terminal import RESPONSE_TIMER, PaymentRequest, Terminal
from possim.protocol import codec
from possim.protocol.events import (
    Event,
    MsgReceived,
    MsgSent,
    PaymentRequested,
    ResponseTimeout,
    RetryTimerFired,
    TerminalDownDrop,
    TerminalPowerLost,
    TerminalPowerRestored,
    TimerFired,
    TimerStarted,
    TxnOutcome,
)
from possim.protocol.ports import Cancellable, Link, Scheduler
from possim.protocol.storage import WriteError

if TYPE_CHECKING:
    from possim.protocol.lines import Lines

Emit = Callable[[Event], None]
A = TypeVar("A")


def _discard(_event: Event) -> None:
    """The emit of a driver whose run records no events."""


class DeviceDriver(HaltsOnWriteError[A]):
    """What the card terminal's driver and the QR terminal's driver do alike, so each keeps only
    what differs: named timers on the scheduler, sends traced and handed to the link with the
    keys the transport routes by, arrivals traced with their bytes (dropped while the power is
    off), power cut, and the stop for good when the journal refuses a write (``HaltsOnWriteError``).

    ``emit`` None: the run records no events, so the driver does not build its own.
    """

    def __init__(self, tid: str, link: Link, scheduler: Scheduler, emit: Emit | None) -> None:
        self.tid = tid
        self.link = link
        self.scheduler = scheduler
        self.emit: Emit = emit or _discard
        self.tracing = emit is not None
        self.down = False
        self._timers: dict[str, Cancellable] = {}
        #: Why the terminal stopped for good: its journal refused a write (see :meth:`execute`).
        self.failure: WriteError | None = None

    def receive(self, data: bytes) -> None:
        """Bytes from the host: dropped while the power is off, else traced and given to the machine."""
        if self.failure is not None:
            return
        if self.down:
            self.emit(TerminalDownDrop(**self._wire_fields(data)))
            return
        if self.tracing:
            self.emit(MsgReceived("terminal", **self._wire_fields(data), data=data.hex()))
        self._arrived()
        self.execute(self._machine_receive(self.scheduler.now(), data))

    def fire_timer(self, name: str) -> None:
        raise NotImplementedError

    def _cut_power(self) -> None:
        """Timers and memory are gone; only the journal survives."""
        for name in list(self._timers):
            self._cancel(name)
        self.down = True

    def _send(self, action: Send) -> None:
        if self.tracing:
            self.emit(MsgSent("terminal", self.tid, action.stan, action.mti, txn=action.txn_id))
        self.link.send(action.data, {"tid": self.tid, "stan": action.stan, "mti": action.mti, "txn": action.txn_id})

    def _arm(self, name: str, at: float) -> None:
        """(Re)arm the timer ``name`` to fire at ``at``."""
        self._cancel(name)
        self._timers[name] = self.scheduler.call_later(at - self.scheduler.now(), partial(self.fire_timer, name))

    def _cancel(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _arrived(self) -> None:
        """An answer arrived while the power is on (the card driver tells its host lines)."""

    def _wire_fields(self, data: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def _machine_receive(self, now: float, data: bytes) -> list[A]:
        raise NotImplementedError


class TerminalDriver(DeviceDriver[Action]):
    def __init__(self, terminal: Terminal, link: Link, scheduler: Scheduler, journal: Journal,
                 emit: Emit | None, on_outcome: Callable[[Outcome], None] | None = None) -> None:
        """``emit`` None: the run records no events (a fleet without a trace), so the driver does
        not build its own (arrivals, sends, timers, outcomes); the terminal's are dropped."""
        super().__init__(terminal.config.tid, link, scheduler, emit)
        self.terminal = terminal
        self.journal = journal
        self.on_outcome = on_outcome
        #: The host lines under the link, when the terminal has a backup: told of every timeout and
        #: answer, so it picks the address the next message goes to (the state machine never does).
        self.lines: Lines | None = None

    def power_off(self) -> None:
        """The terminal loses power: timers and memory are gone; only the journal survives."""
        self._cut_power()
        self.emit(TerminalPowerLost(self.tid))

    def power_on(self, terminal: Terminal) -> None:
        """A fresh terminal boots and rebuilds its recovery work from the journal."""
        if self.failure is not None:
            return
        self.terminal = terminal
        self.down = False
        self.emit(TerminalPowerRestored(self.tid))
        terminal.resume_batch(*self.journal.batch(), self.journal.settled())
        self.execute(terminal.restore(self.scheduler.now(), self.journal.load()))

    def start(self) -> None:
        """The terminal is switched on (a terminal with a life number signs on now)."""
        self.execute(self.terminal.start(self.scheduler.now()))

    def sign_on_again(self) -> None:
        """Sign on afresh (the till's QR terminal was answered "sign on again")."""
        if self.failure is not None or self.down:
            return
        self.execute(self.terminal.sign_on_again(self.scheduler.now()))

    def request_payment(self, request: PaymentRequest) -> None:
        if self.failure is not None:  # a stopped terminal takes no payment
            return
        if self.tracing:
            self.emit(PaymentRequested(self.tid, request.txn_id, request.intent, request.kind, request.amount,
                                       _mask(request.pan), request.pan, request.completion_amount,
                                       request.instrument))
        self.execute(self.terminal.request_payment(self.scheduler.now(), request))

    def settle(self) -> None:
        """End of the day: the terminal settles its batch (0500, and 0320 uploads if out of balance)."""
        if self.failure is not None:
            return
        self.execute(self.terminal.settle(self.scheduler.now()))

    def _wire_fields(self, data: bytes) -> dict[str, Any]:
        """The trace keys of a frame (``tid``, ``stan``, ``mti``, ``rrn``; ``malformed`` if undecodable)."""
        return codec.wire_fields(data)

    def _arrived(self) -> None:
        if self.lines is not None:
            self.lines.answered()

    def _machine_receive(self, now: float, data: bytes) -> list[Action]:
        return self.terminal.receive(now, data)

    def fire_timer(self, name: str) -> None:
        """The named timer fires: a response timeout, or a wake-up for recovery work now due."""
        self._timers.pop(name, None)
        self.emit(TimerFired(self.tid, name) if name == RESPONSE_TIMER else RetryTimerFired(self.tid, name))
        self.execute(self.terminal.timer_fired(self.scheduler.now(), name))

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self.journal.durable:  # a restarted terminal process carries on after the last STAN sent
                    self.journal.save_stan(action.stan)
                self._send(action)
            elif isinstance(action, StartTimer):
                self._start_timer(action.name, action.at)
            elif isinstance(action, CancelTimer):
                self._cancel(action.name)
            elif isinstance(action, WriteJournal):
                self.journal.write(action.record)
            elif isinstance(action, ConfirmLife):
                self.journal.confirm_life(action.life)
            elif isinstance(action, CloseBatch):
                self.journal.close_batch(action.batch, action.settled_through, action.settled, action.closed)
            elif isinstance(action, Outcome):
                if self.tracing:
                    self.emit(TxnOutcome(self.tid, action.txn_id, action.status, action.display))
                if self.on_outcome:
                    self.on_outcome(action)
            elif isinstance(action, Event):
                self.emit(action)
                if self.lines is not None and type(action) is ResponseTimeout:
                    self.lines.timed_out()  # before the Send that follows it (a reversal) picks its line

    def _start_timer(self, name: str, at: float) -> None:
        self._cancel(name)
        if name == RESPONSE_TIMER and self.tracing:
            self.emit(TimerStarted(self.tid, name, round(at, 6)))
        self._arm(name, at)

    @property
    def timers_armed(self) -> int:
        """Response timers still armed (retry wake-ups of parked work do not count)."""
        return int(RESPONSE_TIMER in self._timers)


def _mask(pan: str) -> str:
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]

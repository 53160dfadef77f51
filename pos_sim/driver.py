"""Executes the terminal's actions against a link, a scheduler, a journal and a trace.

The same driver serves every transport: the scheduler is the virtual clock in memory
and the asyncio loop for real transports; the link is the fault layer in front of the
transport.
"""

from __future__ import annotations

from collections.abc import Callable

from pos_sim.actions import Action, CancelTimer, Notice, Outcome, Send, StartTimer, WriteJournal
from pos_sim.journal import Journal
from pos_sim.terminal import PaymentRequest, Terminal
from protocol import codec
from protocol.ports import Cancellable, Link, Scheduler


class TerminalDriver:
    def __init__(self, terminal: Terminal, link: Link, scheduler: Scheduler, journal: Journal,
                 emit: Callable[..., None], on_outcome: Callable[[Outcome], None] | None = None,
                 record_bytes: bool = False) -> None:
        self.terminal = terminal
        self.link = link
        self.scheduler = scheduler
        self.journal = journal
        self.emit = emit
        self.on_outcome = on_outcome
        self._timers: dict[str, Cancellable] = {}
        self.tid = terminal.config.tid
        self.record_bytes = record_bytes
        self.down = False

    def power_off(self) -> None:
        """The terminal loses power: timers and memory are gone; only the journal survives."""
        for name in list(self._timers):
            self._cancel(name)
        self.down = True
        self.emit("terminal_power_lost", tid=self.tid)

    def power_on(self, terminal: Terminal) -> None:
        """A fresh terminal boots and rebuilds its recovery work from the journal."""
        self.terminal = terminal
        self.down = False
        self.emit("terminal_power_restored", tid=self.tid)
        self.execute(terminal.restore(self.scheduler.now(), self.journal.load()))

    def request_payment(self, request: PaymentRequest) -> None:
        extra = {"card": request.pan, "completion_amount": request.completion_amount,
                 "instrument": request.instrument} if self.record_bytes else {}
        self.emit("payment_requested", tid=self.tid, txn=request.txn_id, intent=request.intent,
                  kind=request.kind, amount=request.amount, pan=_mask(request.pan), **extra)
        self.execute(self.terminal.request_payment(self.scheduler.now(), request))

    def receive(self, data: bytes) -> None:
        if self.down:
            self.emit("terminal_down_drop", side="terminal", **codec.wire_fields(data))
            return
        extra = {"data": data.hex()} if self.record_bytes else {}
        self.emit("msg_received", side="terminal", **codec.wire_fields(data), **extra)
        self.execute(self.terminal.receive(self.scheduler.now(), data))

    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                meta = {"tid": self.tid, "stan": action.stan, "mti": action.mti, "txn": action.txn_id}
                self.emit("msg_sent", side="terminal", **meta)
                self.link.send(action.data, meta)
            elif isinstance(action, StartTimer):
                self._start_timer(action.name, action.at)
            elif isinstance(action, CancelTimer):
                self._cancel(action.name)
            elif isinstance(action, WriteJournal):
                self.journal.write(action.record)
            elif isinstance(action, Outcome):
                self.emit("txn_outcome", tid=self.tid, txn=action.txn_id, status=action.status,
                          display=action.display)
                if self.on_outcome:
                    self.on_outcome(action)
            elif isinstance(action, Notice):
                self.emit(action.event, side="terminal", **action.fields)

    def _start_timer(self, name: str, at: float) -> None:
        self._cancel(name)
        if name == "response":
            self.emit("timer_started", tid=self.tid, timer=name, at=round(at, 6))

        def fire() -> None:
            self._timers.pop(name, None)
            if name == "response" or self.record_bytes:
                self.emit("timer_fired", tid=self.tid, timer=name)
            self.execute(self.terminal.timer_fired(self.scheduler.now(), name))

        self._timers[name] = self.scheduler.call_later(at - self.scheduler.now(), fire)

    @property
    def timers_armed(self) -> int:
        """Response timers still armed (retry wake-ups of parked work do not count)."""
        return int("response" in self._timers)

    def _cancel(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()


def _mask(pan: str) -> str:
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]

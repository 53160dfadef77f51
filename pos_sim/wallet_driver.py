"""Executes the QR terminal's actions against the link, a scheduler, the journal and the trace.

The wallet twin of ``pos_sim.driver.TerminalDriver``: the same link and fault layer carry
its JSON frames, the same scheduler runs its timers (one per order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from possim.pos_sim.actions import CancelTimer, Send, StartTimer
from possim.pos_sim.halting import HaltsOnWriteError
from possim.pos_sim.wallet_actions import WalletAction, WalletResult, WriteWallet
from possim.pos_sim.wallet_journal import WalletJournal
from possim.pos_sim.wallet_terminal import WalletPaymentRequest, WalletTerminal
from possim.protocol import wallet as W
from possim.protocol.events import (
    Event,
    MsgReceived,
    MsgSent,
    SignOnAgain,
    TerminalDownDrop,
    WalletPaymentRequested,
    WalletTimerFired,
)
from possim.protocol.ports import Cancellable, Link, Scheduler
from possim.protocol.storage import WriteError

Emit = Callable[[Event], None]


class WalletTerminalDriver(HaltsOnWriteError[WalletAction]):
    def __init__(self, terminal: WalletTerminal, link: Link, scheduler: Scheduler, journal: WalletJournal,
                 emit: Emit, on_result: Callable[[WalletResult], None] | None = None) -> None:
        self.terminal = terminal
        self.link = link
        self.scheduler = scheduler
        self.journal = journal
        self.emit = emit
        self.on_result = on_result
        self.tid = terminal.config.tid
        self.down = False
        self._timers: dict[str, Cancellable] = {}
        #: Why the terminal stopped for good: its journal refused a write (as ``TerminalDriver.failure``).
        self.failure: WriteError | None = None
        #: Told when the gateway answers "sign on again": the till's card terminal signs on for the device.
        self.on_sign_on_again: Callable[[], None] | None = None

    def request_payment(self, request: WalletPaymentRequest) -> None:
        """A scanned code: its order number is drawn once, here (a replay passes the recorded one), and traced."""
        if self.failure is not None:
            return
        if request.out_trade_no is None:
            request = replace(request, out_trade_no=self.terminal.new_order_number(request.txn_id))
        order = request.out_trade_no
        assert order is not None
        self.emit(WalletPaymentRequested(self.tid, request.txn_id, request.intent, order, request.amount,
                                         request.provider, request.auth_code))
        self.execute(self.terminal.request_payment(self.scheduler.now(), request))

    def receive(self, data: bytes) -> None:
        if self.failure is not None:
            return
        wire = W.wire_fields(data)
        if self.down:
            self.emit(TerminalDownDrop(**wire))  # type: ignore[arg-type]
            return
        self.emit(MsgReceived("terminal", **wire, data=data.hex()))  # type: ignore[arg-type]
        self.execute(self.terminal.receive(self.scheduler.now(), data))

    def fire_timer(self, name: str) -> None:
        """The order's timer fires; traced, because replay feeds the recorded firings back."""
        self._timers.pop(name, None)
        self.emit(WalletTimerFired(self.tid, name))
        self.execute(self.terminal.timer_fired(self.scheduler.now(), name))

    def power_off(self) -> None:
        for name in list(self._timers):
            self._cancel(name)
        self.down = True

    def power_on(self, terminal: WalletTerminal) -> None:
        if self.failure is not None:
            return
        self.terminal = terminal
        self.down = False
        self.execute(terminal.restore(self.scheduler.now(), self.journal.load()))

    @property
    def busy(self) -> bool:
        """A timer armed or work the terminal will still do by itself."""
        return bool(self._timers) or not self.terminal.idle

    def _execute(self, actions: list[WalletAction]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.emit(MsgSent("terminal", self.tid, action.stan, action.mti, txn=action.txn_id))
                self.link.send(action.data, {"tid": self.tid, "stan": action.stan, "mti": action.mti,
                                             "txn": action.txn_id})
            elif isinstance(action, StartTimer):
                self._cancel(action.name)
                self._timers[action.name] = self.scheduler.call_later(action.at - self.scheduler.now(),
                                                                      partial(self.fire_timer, action.name))
            elif isinstance(action, CancelTimer):
                self._cancel(action.name)
            elif isinstance(action, WriteWallet):
                self.journal.write(action.record)
            elif isinstance(action, WalletResult):
                if self.on_result:
                    self.on_result(action)
            elif isinstance(action, Event):
                self.emit(action)
                if isinstance(action, SignOnAgain) and self.on_sign_on_again is not None:
                    self.on_sign_on_again()

    def _cancel(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

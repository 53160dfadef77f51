"""Executes the QR terminal's actions against the link, a scheduler, the journal and the trace.

The wallet twin of ``pos_sim.driver.TerminalDriver``: the same link and fault layer carry
its JSON frames, the same scheduler runs its timers (one per order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from possim.pos_sim.actions import CancelTimer, Send, StartTimer
from possim.pos_sim.driver import DeviceDriver
from possim.pos_sim.wallet_actions import WalletAction, WalletResult, WriteWallet
from possim.pos_sim.wallet_journal import WalletJournal
from possim.pos_sim.wallet_terminal import WalletPaymentRequest, WalletTerminal
from possim.protocol import wallet as W
from possim.protocol.events import (
    Event,
    SignOnAgain,
    WalletPaymentRequested,
    WalletTimerFired,
)
from possim.protocol.ports import Link, Scheduler

Emit = Callable[[Event], None]


class WalletTerminalDriver(DeviceDriver[WalletAction]):
    """The QR terminal's driver: the shared device work (``DeviceDriver``), its order timers traced
    (replay feeds them back), results to the till, and "sign on again" passed to the card terminal."""

    def __init__(self, terminal: WalletTerminal, link: Link, scheduler: Scheduler, journal: WalletJournal,
                 emit: Emit, on_result: Callable[[WalletResult], None] | None = None) -> None:
        super().__init__(terminal.config.tid, link, scheduler, emit)
        self.terminal = terminal
        self.journal = journal
        self.on_result = on_result
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

    def _wire_fields(self, data: bytes) -> dict[str, Any]:
        return W.wire_fields(data)

    def _machine_receive(self, now: float, data: bytes) -> list[WalletAction]:
        return self.terminal.receive(now, data)

    def fire_timer(self, name: str) -> None:
        """The order's timer fires; traced, because replay feeds the recorded firings back."""
        self._timers.pop(name, None)
        self.emit(WalletTimerFired(self.tid, name))
        self.execute(self.terminal.timer_fired(self.scheduler.now(), name))

    def power_off(self) -> None:
        self._cut_power()

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
                self._send(action)
            elif isinstance(action, StartTimer):
                self._arm(action.name, action.at)
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

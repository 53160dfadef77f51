"""Replay a recorded real-time run in virtual time, deterministically, and judge it again.

A trace recorded over MQTT or TCP holds every arrival (with its ISO 8583 or wallet bytes),
every timer firing, every payment request and every wake of the wallet gateway (a customer
confirming, an order expiring), with real timestamps. Replay drives the real
``TerminalDriver`` and ``HostDriver``, and for wallet payments the QR terminal's and the
gateway's drivers (over fresh state machines, a fresh journal and ledger), with exactly
those inputs at their recorded times on a virtual clock. What the drivers would do next on
their own is already in the recording: their sends go nowhere and their own timers never
fire. The verdict must match the recorded one.

The terminal and the host hold the run's MAC keys (``possim.running.rig.run_keys``, derived from the
recorded seed unless the scenario says ``mac = false``), so a recorded forgery is refused in
the replay exactly as it was in the run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.driver import HostDriver
from possim.judging.checker import Verdict, check
from possim.judging.reconcile import Reconciliation, reconcile
from possim.pos_sim.driver import TerminalDriver
from possim.pos_sim.journal import Journal
from possim.pos_sim.terminal import PaymentRequest, Terminal
from possim.protocol import events as ev
from possim.protocol.mac import MacKey
from possim.running.compose import build_host, build_wallet, new_terminal
from possim.running.rig import run_keys
from possim.running.trace import Trace
from possim.running.virtual_clock import Handle, VirtualClock
from possim.running.wallet_rig import QR_WALLET, WalletSide
from possim.scenario import Scenario, ScenarioError, from_dict

#: The first event of a recorded real-time run, per transport.
REAL_TIME_HEADERS = (ev.LiveRun.NAME, ev.MqttRun.NAME, ev.TcpRun.NAME)


T = TypeVar("T", bound=ev.Event)


class ReplayError(Exception):
    """The file is not a replayable possim trace; ``str()`` is one line for the user."""


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The JSON records of a trace file, as written."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read trace: {exc.strerror or exc}") from None
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path}: line {exc.lineno}: not a JSON trace line") from None


def load_trace(path: str | Path) -> list[ev.Stamped]:
    """The typed events of a trace file; a line that breaks the event contract is a ``ReplayError``."""
    out = []
    for i, record in enumerate(read_trace(path), start=1):
        if not isinstance(record, dict):
            raise ReplayError(f"{path}: event {i}: not a JSON object")
        try:
            out.append(ev.from_record(record))
        except (ev.EventError, TypeError, ValueError) as exc:
            raise ReplayError(f"{path}: event {i}: {exc}") from None
    return out


def replay(path: str | Path) -> tuple[Verdict, dict[str, Any] | None]:
    """Re-execute the trace; return the new verdict and the recorded summary (if the run finished)."""
    verdict, recorded, _ = replay_full(path)
    return verdict, recorded


def replay_full(path: str | Path) -> tuple[Verdict, dict[str, Any] | None, Reconciliation]:
    """As ``replay``, plus the end-of-day reconciliation of the re-executed run."""
    records = load_trace(path)
    header = _first(records, ev.LiveRun) or _first(records, ev.MqttRun) or _first(records, ev.TcpRun)
    started = _first(records, ev.RunStarted)
    if header is None or started is None:
        raise ReplayError(f"{path}: not a recorded real-time run (record one with run --transport mqtt|tcp --trace)")
    try:
        scenario = from_dict(header.scenario_data).scaled(float(header.time_scale))
    except (ScenarioError, KeyError) as exc:
        raise ReplayError(f"{path}: scenario inside the trace is unusable: {exc}") from None
    config = scenario.terminal_config(started.policy)
    keys = run_keys(started.seed, [config.tid]) if scenario.model.mac else None
    rerun = Rerun(new_terminal(config, keys), scenario.host_config(), keys, scenario)
    rerun.feed(records)
    verdict = check(rerun.journal.conn, rerun.ledger.conn)
    recon = reconcile(rerun.journal.conn, rerun.ledger.conn, scenario.fee_schedule())
    finished = next((s for s in records if isinstance(s.event, ev.RunFinished)), None)
    return verdict, ev.to_record(finished) if finished else None, recon


def _first(records: Iterable[ev.Stamped], cls: type[T]) -> T | None:
    for stamped in records:
        if isinstance(stamped.event, cls):
            return stamped.event
    return None


class _Silent:
    """The drivers' own sends during replay: the recording already says where they went."""

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        pass


class _Frozen:
    """The drivers' scheduler during replay: the virtual time, but nothing they schedule ever runs
    (the recorded timer firings and replies drive the run instead)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        return Handle()


@dataclass
class Rerun:
    """A terminal and a host, each behind its real driver, fed the recorded inputs on a virtual clock.

    ``keys``: the run's MAC keys by terminal id (``None``: a run without MACs). ``scenario``:
    the recorded scenario; with it the wallet side (QR terminal, gateway, customers) is rebuilt
    too, so recorded wallet frames go to the wallet drivers.
    """

    terminal: Terminal
    host_config: HostConfig
    keys: Mapping[str, MacKey] | None = None
    scenario: Scenario | None = None
    wallet: WalletSide | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.clock = VirtualClock()
        self.trace = Trace(self.clock.now)
        config = self.terminal.config
        self.journal = Journal(tid=config.tid)
        self.ledger, host = build_host(self.host_config, random.Random(0), self.keys)
        frozen = _Frozen(self.clock)
        self.terminal_driver = TerminalDriver(self.terminal, _Silent(), frozen, self.journal, self.trace.emit)
        self.host_driver = HostDriver(host, _Silent(), frozen, self.trace.emit)
        if self.scenario is not None:
            self.wallet = build_wallet(self.scenario, config, frozen, self.journal, self.ledger,
                                       self.host_config.default_balance, self.trace.emit, _Silent(),
                                       random.Random(0), self.keys)
            self.wallet.connect(_Silent())

    def feed(self, records: Iterable[ev.Stamped]) -> None:
        """Schedule every recorded input at its recorded time, then run the clock to the end."""
        for stamped in records:
            step = self._input(stamped.event)
            if step is not None:
                self.clock.call_at(stamped.t, step)
        self.clock.run()
        self.journal.commit()

    def _input(self, e: ev.Event) -> Callable[[], None] | None:
        """What the recorded event makes the drivers do again, if it is an input."""
        term = self.terminal_driver
        match e:
            case ev.PaymentRequested(card=str(card)):
                request = PaymentRequest(e.txn, e.intent, e.kind, e.amount, card,  # type: ignore[arg-type]
                                         e.completion_amount, e.instrument or "credit")
                return lambda: term.request_payment(request)
            case ev.MsgReceived(data=str(data)):
                payload = bytes.fromhex(data)
                return partial(self._host_receive if e.side == "host" else self._terminal_receive, payload)
            case ev.TimerFired() | ev.RetryTimerFired():
                return lambda: term.fire_timer(e.timer)
            case ev.TerminalPowerLost():
                return self._power_off
            case ev.TerminalPowerRestored():
                return self._power_on
        return self._wallet_input(e) if self.wallet is not None else None

    def _wallet_input(self, e: ev.Event) -> Callable[[], None] | None:
        """The wallet side's recorded inputs: a scanned code, a customer paying again, its timers, the
        gateway's wakes."""
        wallet = self.wallet
        assert wallet is not None
        match e:
            case ev.WalletPaymentRequested():
                request = PaymentRequest(e.txn, e.intent, "purchase", e.amount, "", None, QR_WALLET)
                return partial(wallet.pay, request, e.order)
            case ev.CustomerPaysAgain() | ev.CustomerRetries():
                return partial(wallet.inherit, e.retry_txn, e.txn)
            case ev.WalletTimerFired():
                return partial(wallet.driver.fire_timer, e.timer)
            case ev.WalletGatewayWake():
                gateway = wallet.gateway_driver
                assert gateway is not None
                return partial(gateway.wake, e.what, (e.tid, e.order))
        return None

    def _host_receive(self, payload: bytes) -> None:
        if self.wallet is None or not self.wallet.host_receive(payload):
            self.host_driver.receive(payload)

    def _terminal_receive(self, payload: bytes) -> None:
        if self.wallet is None or not self.wallet.terminal_receive(payload):
            self.terminal_driver.receive(payload)

    def _power_off(self) -> None:
        self.terminal_driver.power_off()
        if self.wallet is not None:
            self.wallet.power_off()

    def _power_on(self) -> None:
        """The same order as the run's: the card terminal boots, then the QR terminal."""
        config = self.terminal.config
        self.terminal_driver.power_on(new_terminal(config, self.keys))
        if self.wallet is not None:
            self.wallet.power_on()

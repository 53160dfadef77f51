"""The test rig: terminal, host, journal, ledger, fault layer and trace, wired on any transport.

The in-memory simulation and the real-time MQTT run build the same rig; only the
scheduler (virtual clock or asyncio loop) and the transport under the fault layer differ.
The fault layer always sits on the terminal's side of the wire, in both directions (before
publish, after receive), so a scenario's faults mean the same on every transport.

MACs: a scenario run makes its own keys, derived from the run's seed (``possim.processes.keys.derive``),
so every message is MACed and a run still repeats byte for byte. ``mac = false`` in a scenario
turns them off (to show what a forgery does without them). Separate processes pass the keys of
a key file instead, or none. Wallet messages carry the same keys' ``sign``.

Wallet order numbers take their random part from a ``random.Random`` seeded from the run's
seed, so a run repeats; a terminal process passes ``secrets.SystemRandom`` (``order_nonces``).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Literal

from possim.acquirer_sim.driver import HostDriver
from possim.fuzzing.forgery import Forger
from possim.judging.checker import Verdict, check, outcomes
from possim.judging.reconcile import Reconciliation, reconcile
from possim.money.money import parse_amount
from possim.pos_sim.actions import Outcome
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.journal import Journal
from possim.pos_sim.terminal import PaymentRequest, Terminal
from possim.processes import keys as keyfile
from possim.protocol.events import CustomerPaysAgain, CustomerRetries, RunFinished, RunStarted
from possim.protocol.faults import FaultPlan
from possim.protocol.lines import Line, Lines
from possim.protocol.mac import MacKey
from possim.protocol.memory import NAME as MEMORY
from possim.protocol.memory import MemoryTransport
from possim.protocol.ports import Link, Scheduler, Transport
from possim.protocol.storage import StoreError, WriteError, write_failure
from possim.protocol.transports import Origin
from possim.running.compose import FaultLayer, build_host, build_terminal, build_wallet, new_terminal
from possim.running.trace import Trace
from possim.running.virtual_clock import VirtualClock
from possim.running.wallet_rig import QR_WALLET
from possim.scenario import Scenario, TransactionModel


@dataclass
class RunResult:
    scenario: Scenario
    policy: str
    seed: int
    trace: Trace
    verdict: Verdict
    ledger_before: dict[str, tuple[int, int]]
    ledger_after: dict[str, tuple[int, int]]
    quiescent: bool
    end_time: float
    transport: str = MEMORY
    reconciliation: Reconciliation | None = None
    #: Why the terminal refused to sell (a lost journal, a refused sign-on), or None.
    refused: str | None = None

    def summary(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, "policy": self.policy, "seed": self.seed,
                "transport": self.transport, **self.verdict.summary(), "quiescent": self.quiescent,
                "virtual_seconds": round(self.end_time, 3)}


@dataclass
class TerminalRun:
    """A terminal process's run (``possim terminal``): its own outcomes only, from its journal.

    The host is another process with the ledger; judging money is ``possim check``'s work.
    """

    scenario: Scenario
    policy: str
    seed: int
    trace: Trace
    outcomes: dict[str, int]
    quiescent: bool
    end_time: float
    transport: str
    #: Why the terminal refused to sell (a lost journal, a refused sign-on), or None.
    refused: str | None = None


def payment_plan(scenario: Scenario) -> list[tuple[float, PaymentRequest, bool, float]]:
    """Expand the scenario's transactions into (at, request, customer_retries, retry_after)."""
    return [entry for series in payment_series(scenario) for entry in series]


Payment = tuple[float, PaymentRequest, bool, float]


def payment_series(scenario: Scenario) -> list[Iterator[Payment]]:
    """The scenario's transactions as one lazy series per ``[[transactions]]`` table, in plan order.

    Each series is in time order (``every`` is never negative), so a run can hand its payments to
    the clock one at a time per series instead of holding the whole day's requests at once.
    """
    series = []
    first = 0
    for spec in scenario.model.transactions:
        series.append(_series(spec, first))
        first += spec.count
    return series


def _series(spec: TransactionModel, first: int) -> Iterator[Payment]:
    amount = parse_amount(spec.amount)
    completion = parse_amount(spec.completion_amount) if spec.completion_amount else None
    for i in range(spec.count):
        txn_id = first + i + 1
        request = PaymentRequest(txn_id=txn_id, intent=f"basket-{txn_id}", kind=spec.kind, amount=amount,
                                 pan=spec.pan, completion_amount=completion, instrument=spec.card_type)
        yield spec.at + i * spec.every, request, spec.customer_retries, spec.retry_after


#: ``Rig(keys=SCENARIO_KEYS)``: keys derived from the run's seed unless the scenario says ``mac = false``.
SCENARIO_KEYS: Literal["scenario"] = "scenario"
Keys = Mapping[str, MacKey] | None | Literal["scenario"]


def run_keys(seed: int, tids: list[str]) -> dict[str, MacKey]:
    """Per-terminal MAC keys that depend only on the run's seed and the terminal ids.

    ``keys.derive`` takes ids that are safe broker usernames; a scenario's id may hold any
    printable character, so such an id is derived under a stand-in name made from its hash.
    """
    out = {}
    for tid in tids:
        name = tid if keyfile.TID_PATTERN.fullmatch(tid) else "T" + hashlib.sha256(tid.encode()).hexdigest()[:7]
        out[tid] = keyfile.derive(seed, [name]).mac_key(name)
    return out


def _with_life(config: TerminalConfig, journal: Journal, replacement: bool) -> TerminalConfig:
    """``config`` with the journal's life number; a journal without one gets a new random one now,
    written before the sign-on that carries it leaves (a restart resumes it, refusal and all)."""
    stored = journal.life()
    if stored is None:
        journal.begin_life(f"{random.SystemRandom().randrange(1, 10**6):06d}", journal.is_empty())
        stored = journal.life()
        assert stored is not None
    life, new_journal = stored
    return replace(config, life=life, new_journal=new_journal, replacement=replacement)


class _Later:
    """The forger's way to the terminal: ``rig.to_terminal``, which exists only after the terminal driver."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.rig.to_terminal.send(data, meta)


class Rig:
    def __init__(self, scenario: Scenario, policy: str, seed: int, scheduler: Scheduler,
                 plan: FaultPlan | None = None, ledger_path: str | Path | None = None,
                 journal_path: str | Path | None = None,
                 epoch: datetime | None = None, keys: Keys = SCENARIO_KEYS,
                 order_nonces: random.Random | None = None, rng: random.Random | None = None, *,
                 sign_on: bool = False, replacement: bool = False, trace_to: str | Path | None = None,
                 keep_trace: bool = True) -> None:
        """``rng``: a test's own randomness instead of ``random.Random(seed)``; ``sign_on``: the terminal
        signs on with a life number kept in its journal (terminal processes); ``replacement``: it may
        sell on a new journal for an id the host knows; ``trace_to``: the trace is streamed to this
        file as it happens instead of kept in memory (a long run); ``keep_trace=False`` without ``trace_to``:
        no one asked for a trace, its events are only counted."""
        self.scenario, self.policy, self.seed, self.scheduler = scenario, policy, seed, scheduler
        self.trace = Trace(scheduler.now, trace_to, keep=keep_trace)
        self.rng = rng if rng is not None else random.Random(seed)  # a test's own (Hypothesis) randomness
        host_config = scenario.host_config()
        self.ledger_path = str(ledger_path or ":memory:")
        self._host_failure: WriteError | None = None
        self.terminal_config = scenario.terminal_config(policy)
        if epoch is not None:  # real processes: field 7 and the RRN follow the wall clock
            self.terminal_config = replace(self.terminal_config, epoch=epoch)
            host_config = replace(host_config, epoch=epoch)
        self.journal = Journal(journal_path or ":memory:", tid=self.terminal_config.tid)
        if sign_on:
            self.terminal_config = _with_life(self.terminal_config, self.journal, replacement)
        tid = self.terminal_config.tid
        #: Every terminal's MAC key (the host's view); ``None``: this run uses no MACs.
        self.keys: Mapping[str, MacKey] | None = (
            (run_keys(seed, [tid]) if scenario.model.mac else None) if isinstance(keys, str) else keys)
        keys = self.keys
        self.ledger, self.host = build_host(host_config, self.rng, keys, self.ledger_path)
        self.ledger_before = self.ledger.balances()
        plan = plan or scenario.fault_plan()
        self.faults = FaultLayer(plan, self.rng, scheduler, self.trace.emit)
        self.decider, self.to_host = self.faults.decider, self.faults.to_host
        self.forger = Forger(plan.forgeries, self.to_host, _Later(self), scheduler, self.trace.emit, seed,
                             keys is not None, self.terminal_config.epoch)
        # The attacker reads the terminal's requests (card and wallet) only when it has forgeries to build from them.
        terminal_link = self.forger.tap(self.to_host) if plan.forgeries else self.to_host
        self.terminal_driver = build_terminal(self.terminal_config, keys, terminal_link, scheduler, self.journal,
                                              self.trace.emit, self._on_outcome)
        self.terminal = self.terminal_driver.terminal
        self.to_terminal = self.faults.deliver_to(self._terminal_receive)
        self.wallet = build_wallet(scenario, self.terminal_config, scheduler, self.journal, self.ledger,
                                   host_config.default_balance, self.trace.emit, terminal_link, self.rng, keys,
                                   order_nonces or random.Random(f"possim wallet order numbers {seed}"))
        self.wallet.pay_again = self._pay_again
        self.wallet.driver.on_sign_on_again = self.terminal_driver.sign_on_again  # one device, one sign-on
        self.host_driver: HostDriver | None = None
        self._retries: dict[int, float] = {}
        self._requests: dict[int, PaymentRequest] = {}
        self._next_id = 0
        self.scheduled_work = 0  # payments and boots scheduled but not yet happened
        self._deferred: list[PaymentRequest] = []
        self._done: set[int] = set()  # transactions a restarted terminal already journaled

    def resume(self) -> int:
        """A restarted terminal process: restore it from its journal before any new sale.

        The same restore a power loss uses: a sale that was in flight gets the policy's
        recovery, and reversals and advices still owed go out before anything else. The
        STAN continues after the journal's last one, and sales the journal already holds are
        not paid again; wallet orders likewise, from the wallet journal. Returns how many journaled
        transactions (card and wallet) were found.
        """
        records = self.journal.load()
        wallet_records = self.wallet.journal.load()
        last = self.journal.last_stan()
        if last is not None:  # the STAN sent last, status queries included: never used twice
            self.terminal_config = replace(self.terminal_config, stan_start=int(last) % 999_999 + 1)
        self._done = {r.txn_id for r in records} | {r.txn_id for r in wallet_records}
        self._next_id = max(self._done, default=0)
        if records or last is not None:
            self.terminal = self._new_terminal()
            self.terminal_driver.power_on(self.terminal)
        if wallet_records:  # wallet orders in flight: queried or cancelled as after a power loss
            self.wallet.power_on()
        return len(records) + len(wallet_records)

    def _new_terminal(self) -> Terminal:
        return new_terminal(self.terminal_config, self.keys)

    def connect(self, to_host: Transport, host_out: Link | None) -> None:
        """``to_host``: where the terminal's faulted requests go; ``host_out``: the host's replies
        (``None`` when the host runs in another process)."""
        self.faults.outbound.target = to_host
        if host_out is not None:
            self.host_driver = HostDriver(self.host, host_out, self.scheduler, self.trace.emit)
            self.wallet.connect(host_out)

    def host_receive(self, data: bytes, origin: Origin | None = None) -> None:
        """A frame reached the acquirer: wallet frames go to the wallet gateway, card frames to the host.

        A ledger file that refuses a write (a full disk) stops the run: the transaction was
        rolled back, and a run that cannot keep its money is not judged.
        """
        if self.failure is not None:
            return
        try:
            if not self.wallet.host_receive(data, origin):
                self.host_driver.receive(data, origin)  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            if not self.ledger.durable:
                raise
            self._host_failure = WriteError(f"{write_failure(exc, self.ledger_path, 'ledger')}; the run stopped")

    def _terminal_receive(self, data: bytes) -> None:
        if self.failure is not None:
            return
        if not self.wallet.terminal_receive(data):
            self.terminal_driver.receive(data)

    def memory(self) -> None:
        """Wire both sides in this process with the in-memory transport (one per host line, when the
        terminal has several: every line reaches the one acquirer and its ledger)."""
        hosts = self.terminal_config.hosts
        if len(hosts) > 1:
            self.connect(self.lines({h: MemoryTransport(self.host_receive) for h in hosts}), self.to_terminal)
            return
        self.connect(MemoryTransport(self.host_receive), self.to_terminal)

    def lines(self, ends: Mapping[str, Transport]) -> Lines:
        """The terminal's host lines over ``ends`` (address -> transport, primary first), cut as the
        scenario's ``[[line_outages]]`` say; the terminal driver tells them of timeouts and answers."""
        outages = self.scenario.model.line_outages
        cut = [Line(h, end, tuple((o.start, o.end) for o in outages if o.host == h)) for h, end in ends.items()]
        lines = Lines(self.terminal_config.tid, cut, self.terminal_config.failover_after, self.scheduler.now,
                      self.trace.emit)
        self.terminal_driver.lines = lines
        return lines

    def schedule_payments(self) -> None:
        """Payments, settlement and power losses on the clock.

        In virtual time each ``[[transactions]]`` series has one payment in the clock's heap at a time:
        the next is handed over when one is paid, at the place in the order of ties it would have had if
        all were queued at the start (``VirtualClock.reserve``), so a run is the same and a day of
        100,000 sales does not hold 100,000 requests. The asyncio loop gets them all at the start.
        """
        self.trace.emit(RunStarted(self.scenario.name, self.policy, self.seed, self.terminal_config.tid,
                                   self.scenario.raw()))
        done = self._done
        series = [(entry for entry in one if entry[1].txn_id not in done) for one in payment_series(self.scenario)]
        dues, first_id = [], 0
        for spec in self.scenario.model.transactions:
            dues.append(spec.count - sum(1 for txn_id in done if first_id < txn_id <= first_id + spec.count))
            first_id += spec.count
        self._next_id = max(self._next_id, next((i for i in range(first_id, 0, -1) if i not in done), 0))
        firsts = [next(one, None) for one in series]
        first = next((entry for entry in firsts if entry is not None), None)
        shift = first[0] if first is not None and done else 0.0  # a resumed terminal carries on at once
        if self.forger.forgeries:  # only forgeries predict a sale's field 7 from its scheduled time
            self.forger.plan_times = {request.txn_id: at - shift for at, request, _, _ in payment_plan(self.scenario)
                                      if request.txn_id not in done}
        if not done:
            self.forger.schedule()
        self.scheduled_work += sum(dues)
        start = self.scheduler.now()
        clock = self.scheduler if isinstance(self.scheduler, VirtualClock) else None
        place = clock.reserve(sum(dues)) if clock is not None else 0
        for entry, rest, due in zip(firsts, series, dues, strict=True):
            if entry is None:
                continue
            if clock is not None:
                self._hand_over(clock, entry, place, rest, start, shift)
            else:
                for at, request, customer_retries, retry_after in itertools.chain((entry,), rest):
                    self._remember(request, customer_retries, retry_after)
                    self.scheduler.call_later(at - shift - start, partial(self._pay, request))
            place += due
        self._schedule_day(shift)

    def _hand_over(self, clock: VirtualClock, entry: Payment, place: int, rest: Iterator[Payment], start: float,
                   shift: float) -> None:
        """Put one payment of a series on the clock, at the time and place it has had since the start;
        when it is paid, the series' next one follows."""
        at, request, customer_retries, retry_after = entry
        delay = at - shift - start
        when = start + (delay if delay > 0.0 else 0.0)  # call_later's time, as if queued at the start

        def pay() -> None:
            self._remember(request, customer_retries, retry_after)
            following = next(rest, None)
            if following is not None:
                self._hand_over(clock, following, place + 1, rest, start, shift)
            self._pay(request)

        clock.call_at_place(when, place, pay)

    def _remember(self, request: PaymentRequest, customer_retries: bool, retry_after: float) -> None:
        """What a customer who pays again needs of the first payment; nothing for the others."""
        if customer_retries:
            self._requests[request.txn_id] = request
            self._retries[request.txn_id] = retry_after

    def _schedule_day(self, shift: float) -> None:
        settlement = self.scenario.model.settlement
        if settlement is not None:
            self.scheduled_work += 1
            self.scheduler.call_later(settlement.at - shift - self.scheduler.now(), self._settle)
        for loss in () if self._done else self.scenario.model.power_losses:
            self.scheduled_work += 1  # a boot still to come
            self.scheduler.call_later(loss.at - self.scheduler.now(), self._power_off)
            self.scheduler.call_later(loss.at + loss.down_for - self.scheduler.now(), self._power_on)

    def _pay(self, request: PaymentRequest) -> None:
        if self.failure is not None:  # the terminal stopped: no sale is taken any more
            self.scheduled_work -= 1
            return
        if self.terminal_driver.down:  # the customer waits for the terminal to boot
            self._deferred.append(request)
            return
        self.scheduled_work -= 1
        if self.terminal.halted is not None:  # it refuses to sell: the customer is turned away unserved
            return
        if request.instrument == QR_WALLET:
            self.wallet.pay(request)
        else:
            self.terminal_driver.request_payment(request)

    def _settle(self) -> None:
        """End of the day; a terminal without power settles when it boots."""
        if self.terminal_driver.down:
            self.scheduler.call_later(1.0, self._settle)
            return
        self.scheduled_work -= 1
        self.terminal_driver.settle()

    def _power_off(self) -> None:
        self.terminal_driver.power_off()
        self.wallet.power_off()

    def _power_on(self) -> None:
        self.scheduled_work -= 1
        self.terminal = self._new_terminal()
        self.terminal_driver.power_on(self.terminal)
        self.wallet.power_on()
        deferred, self._deferred = self._deferred, []
        for request in deferred:
            self._pay(request)

    def _on_outcome(self, outcome: Outcome) -> None:
        if outcome.txn_id in self._retries and outcome.status in ("unknown", "failed"):
            self._pay_again(outcome.txn_id, self.wallet.retry_instrument(outcome.txn_id,
                                                                         self._requests[outcome.txn_id].instrument))

    def _pay_again(self, txn_id: int, instrument: str) -> None:
        """Told the payment failed, the customer pays for the same basket again (by card or a rescan)."""
        original = self._requests[txn_id]
        self._next_id += 1
        retry = PaymentRequest(self._next_id, original.intent, original.kind, original.amount, original.pan,
                               original.completion_amount, instrument)
        self._requests[retry.txn_id] = retry
        self.wallet.inherit(retry.txn_id, txn_id)
        if QR_WALLET not in (instrument, original.instrument):
            self.trace.emit(CustomerRetries(self.terminal_config.tid, txn_id, retry.txn_id))
        else:
            self.trace.emit(CustomerPaysAgain(self.terminal_config.tid, txn_id, retry.txn_id, instrument))
        self.scheduled_work += 1
        delay = self._retries.pop(txn_id, self.wallet.specs[txn_id].retry_after)
        self.scheduler.call_later(delay, lambda: self._pay(retry))

    @property
    def failure(self) -> StoreError | None:
        """Why the run stopped early: the terminal's journal refused a write (a full disk)."""
        return self.terminal_driver.failure or self.wallet.driver.failure or self._host_failure

    def locally_quiet(self) -> bool:
        """Nothing left to do on this side: no payment due, terminal idle, no message held by the fault layer.

        A terminal stopped by its journal has nothing left to do either: the run ends and says why.
        """
        if self.failure is not None:
            return True
        host_busy = self.host_driver.pending if self.host_driver else 0
        return (self.scheduled_work == 0 and self.forger.pending == 0 and self.terminal.idle
                and self.to_host.in_flight == 0
                and self.to_terminal.in_flight == 0 and host_busy == 0 and self.terminal_driver.timers_armed == 0
                and self.wallet.quiet)

    def finish(self, quiescent: bool, transport: str, extra: Mapping[str, object] | None = None, *,
               reconciled: bool = True) -> RunResult:
        """Judge the run; a run stopped by its journal is not judged: ``failure`` is raised, files closed.

        ``reconciled=False``: no end-of-day reconciliation (``RunResult.reconciliation`` is None), for a
        caller that shows the verdict only; its fee lines are the largest thing a long run keeps.
        """
        if self.failure is not None:
            self.trace.close()
            self.journal.close()
            self.ledger.close()
            raise self.failure
        self.journal.commit()
        self.terminal.forget_history()
        # A ledger in memory holds this run's money only: money under a terminal id that no journal
        # names (a forged terminal's) is judged too, never set aside as another terminal's business.
        verdict = check(self.journal.conn, self.ledger.conn, own_ledger=self.ledger_path == ":memory:")
        self.trace.emit(_finished(quiescent, {**verdict.summary(), **(extra or {})}))
        self.trace.close()
        recon = reconcile(self.journal.conn, self.ledger.conn, self.scenario.fee_schedule()) if reconciled else None
        result = RunResult(self.scenario, self.policy, self.seed, self.trace, verdict, self.ledger_before,
                           self.ledger.balances(), quiescent, self.scheduler.now(), transport, recon,
                           self.terminal.halted)
        self.journal.close()
        self.ledger.close()
        return result

    def finish_terminal(self, quiescent: bool, transport: str) -> TerminalRun:
        """The end of a terminal process's run: log and return what its journal says, nothing more.

        Its ledger here is an empty stand-in (the host's is in another process), so no
        verdict on money is made or logged: every approval would read as a phantom.
        """
        self.journal.commit()
        own = outcomes(self.journal.conn)
        self.trace.emit(_finished(quiescent, own))
        self.trace.close()
        run = TerminalRun(self.scenario, self.policy, self.seed, self.trace, own, quiescent, self.scheduler.now(),
                          transport, self.terminal.halted)
        self.journal.close()
        self.ledger.close()
        return run


def _finished(quiescent: bool, fields: Mapping[str, object]) -> RunFinished:
    """``run_finished`` with the summary written flat, as ``--json`` prints it; ``published`` (a real
    transport's message count) is its own field."""
    summary = dict(fields)
    published = summary.pop("published", None)
    return RunFinished(quiescent, summary, published if isinstance(published, int) else None)

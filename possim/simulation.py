"""The in-memory run: terminal, host and a faulty link on the virtual clock, then the checker.

Everything random draws from one ``random.Random(seed)``; time is the virtual clock, so
a scenario with 30-second timeouts runs in milliseconds and repeats byte for byte.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from acquirer_sim.driver import HostDriver
from acquirer_sim.host import AcquirerHost
from acquirer_sim.ledger import Ledger
from pos_sim.actions import Outcome
from pos_sim.driver import TerminalDriver
from pos_sim.journal import Journal
from pos_sim.terminal import PaymentRequest, Terminal
from possim.checker import Verdict, check
from possim.money import parse_amount
from possim.scenario import Scenario
from possim.trace import Trace
from possim.virtual_clock import VirtualClock
from protocol.faults import FaultDecider, FaultPlan, FaultyLink
from protocol.memory import MemoryTransport

#: Virtual time after which a run that has not gone quiet is cut off (a week).
HORIZON = 7 * 24 * 3600.0


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

    def summary(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, "policy": self.policy, "seed": self.seed,
                **self.verdict.summary(), "quiescent": self.quiescent, "virtual_seconds": round(self.end_time, 3)}


def payment_plan(scenario: Scenario) -> list[tuple[float, PaymentRequest, bool, float]]:
    """Expand the scenario's transactions into (at, request, customer_retries, retry_after)."""
    plan = []
    txn_id = 0
    for spec in scenario.model.transactions:
        for i in range(spec.count):
            txn_id += 1
            completion = parse_amount(spec.completion_amount) if spec.completion_amount else None
            request = PaymentRequest(txn_id=txn_id, intent=f"basket-{txn_id}", kind=spec.kind,
                                     amount=parse_amount(spec.amount), pan=spec.pan, completion_amount=completion)
            plan.append((spec.at + i * spec.every, request, spec.customer_retries, spec.retry_after))
    return plan


def simulate(scenario: Scenario, policy: str | None = None, seed: int | None = None,
             plan: FaultPlan | None = None, ledger_path: str | Path | None = None,
             journal_path: str | Path | None = None) -> RunResult:
    """Run a scenario to quiescence in virtual time and judge it."""
    policy = policy or scenario.model.policy
    seed = scenario.model.seed if seed is None else seed
    clock = VirtualClock()
    trace = Trace(clock.now)
    rng = random.Random(seed)
    host_config = scenario.host_config()
    ledger = Ledger(ledger_path or ":memory:", default_balance=host_config.default_balance)
    terminal_config = scenario.terminal_config(policy)
    journal = Journal(journal_path or ":memory:", tid=terminal_config.tid)
    host = AcquirerHost(host_config, ledger, rng)
    ledger_before = ledger.balances()
    decider = FaultDecider(plan or scenario.fault_plan(), rng)
    host_driver: HostDriver
    terminal_driver: TerminalDriver
    to_host = FaultyLink("to_host", MemoryTransport(lambda d: host_driver.receive(d)), decider, clock, trace.emit)
    to_terminal = FaultyLink("to_terminal", MemoryTransport(lambda d: terminal_driver.receive(d)), decider, clock,
                             trace.emit)
    host_driver = HostDriver(host, to_terminal, clock, trace.emit)
    retries: dict[int, float] = {}
    requests: dict[int, PaymentRequest] = {}
    next_id = [0]

    def on_outcome(outcome: Outcome) -> None:
        if outcome.txn_id in retries and outcome.status in ("unknown", "failed"):
            original = requests[outcome.txn_id]
            next_id[0] += 1
            retry = PaymentRequest(next_id[0], original.intent, original.kind, original.amount, original.pan,
                                   original.completion_amount)
            trace.emit("customer_retries", tid=terminal_config.tid, txn=outcome.txn_id, retry_txn=retry.txn_id)
            clock.call_later(retries.pop(outcome.txn_id), lambda: terminal_driver.request_payment(retry))

    terminal_driver = TerminalDriver(Terminal(terminal_config), to_host, clock, journal, trace.emit, on_outcome)
    trace.emit("run_started", scenario=scenario.name, policy=policy, seed=seed, tid=terminal_config.tid)
    for at, request, customer_retries, retry_after in payment_plan(scenario):
        requests[request.txn_id] = request
        next_id[0] = max(next_id[0], request.txn_id)
        if customer_retries:
            retries[request.txn_id] = retry_after
        clock.call_at(at, lambda r=request: terminal_driver.request_payment(r))
    quiescent = clock.run(horizon=HORIZON)
    journal.commit()
    verdict = check(journal.conn, ledger.conn)
    trace.emit("run_finished", quiescent=quiescent, **verdict.summary())
    result = RunResult(scenario, policy, seed, trace, verdict, ledger_before, ledger.balances(), quiescent, clock.now())
    journal.close()
    ledger.close()
    return result

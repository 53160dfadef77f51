"""The in-memory run: terminal, host and a faulty link on the virtual clock, then the checker.

Everything random draws from one ``random.Random(seed)``; time is the virtual clock, so
a scenario with 30-second timeouts runs in milliseconds and repeats byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from possim.rig import Rig, RunResult, payment_plan
from possim.scenario import Scenario
from possim.virtual_clock import VirtualClock
from protocol.faults import FaultPlan

__all__ = ["HORIZON", "RunResult", "payment_plan", "simulate"]

#: Virtual time after which a run that has not gone quiet is cut off (a week).
HORIZON = 7 * 24 * 3600.0


def simulate(scenario: Scenario, policy: str | None = None, seed: int | None = None,
             plan: FaultPlan | None = None, ledger_path: str | Path | None = None,
             journal_path: str | Path | None = None) -> RunResult:
    """Run a scenario to quiescence in virtual time and judge it."""
    policy = policy or scenario.model.policy
    seed = scenario.model.seed if seed is None else seed
    clock = VirtualClock()
    rig = Rig(scenario, policy, seed, clock, plan, ledger_path, journal_path)
    rig.memory()
    rig.schedule_payments()
    quiescent = clock.run(horizon=HORIZON)
    return rig.finish(quiescent, "memory")

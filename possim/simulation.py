"""The in-memory run: terminal, host and a faulty link on the virtual clock, then the checker.

Everything random draws from one ``random.Random(seed)``; time is the virtual clock, so
a scenario with 30-second timeouts runs in milliseconds and repeats byte for byte.
"""

from __future__ import annotations

import random
from pathlib import Path

from possim.protocol.faults import FaultPlan
from possim.protocol.memory import NAME as MEMORY
from possim.running.rig import Rig, RunResult, payment_plan
from possim.running.virtual_clock import VirtualClock, run_uncollected
from possim.scenario import Scenario, ScenarioError

__all__ = ["HORIZON", "RunResult", "horizon", "payment_plan", "simulate"]

#: How long after its last scheduled event a run that has not gone quiet is cut off (a week):
#: far beyond any retry schedule, so only a run that never settles reaches it.
HORIZON = 7 * 24 * 3600.0


def horizon(scenario: Scenario) -> float:
    """The virtual time a run may take: its schedule's last event plus ``HORIZON``.

    The horizon follows the schedule, so a long schedule (20,000 sales a minute apart) is
    never cut off silently; only a run that keeps busy a week after its last sale is.
    """
    if scenario.is_fleet:
        from possim.fleets.fleet import fleet_horizon

        return fleet_horizon(scenario)
    m = scenario.model
    ends = [t.at + (t.count - 1) * t.every for t in m.transactions]
    ends += [p.at + p.down_for for p in m.power_losses] + [p.end for p in m.partitions]
    ends += [w.end for w in m.host.issuer_unavailable]
    return max(ends) + HORIZON


def simulate(scenario: Scenario, policy: str | None = None, seed: int | None = None,
             plan: FaultPlan | None = None, ledger_path: str | Path | None = None,
             journal_path: str | Path | None = None, rng: random.Random | None = None, *,
             sign_on: bool = False, replacement: bool = False, trace_to: str | Path | None = None,
             reconciled: bool = True, trace: bool = True) -> RunResult:
    """Run a one-terminal scenario to quiescence in virtual time and judge it.

    ``rng``: where the run's random choices come from (link loss and latency, host timings)
    instead of ``random.Random(seed)``. A Hypothesis test passes ``st.randoms()`` here, so the
    random faults of ``[network.*]`` tables (``pos_sim.testing.link_faults``) shrink with the rest.

    ``sign_on``: the terminal signs on first with a life number, as terminal processes do (on a
    ``journal_path`` that another run left, it resumes that life; on a new one, for an id the
    ledger knows, it refuses to sell unless ``replacement``: ``RunResult.refused``).

    ``trace_to``: stream the trace to this file as the run goes; the result's trace then keeps
    no events (``Trace.streamed``), so a run of 100,000 purchases does not hold them in memory.
    ``trace=False`` (without ``trace_to``): no one wants the trace; the run only counts its events
    (``Trace.counted``, ``result.trace.count``), so what it keeps per purchase is its verdict's share.
    ``reconciled=False``: skip the end-of-day reconciliation (``RunResult.reconciliation`` is None)
    when only the verdict is wanted: its per-sale fee lines are most of what a long run keeps.

    A fleet scenario (``[[terminals]]``) raises ``ScenarioError``: it is run by
    :func:`possim.fleets.fleet.simulate_fleet`, never silently as its one ``[terminal]``.
    """
    if scenario.is_fleet:
        raise ScenarioError(f"{scenario.name}: a fleet scenario ([[terminals]]): run it with possim run or "
                            "possim compare")
    policy = policy or scenario.model.policy
    seed = scenario.model.seed if seed is None else seed
    clock = VirtualClock()
    with run_uncollected():
        rig = Rig(scenario, policy, seed, clock, plan, ledger_path, journal_path, rng=rng, sign_on=sign_on,
                  replacement=replacement, trace_to=trace_to, keep_trace=trace)
        try:
            rig.memory()
            if sign_on:
                rig.resume()
                rig.terminal_driver.start()
            rig.schedule_payments()
            steps = 1_000_000 + 1_000 * sum(t.count for t in scenario.model.transactions)
            quiescent = clock.run(horizon=horizon(scenario), max_steps=steps)
            return rig.finish(quiescent, MEMORY, reconciled=reconciled)
        finally:
            rig.trace.close()  # a streamed trace's file, whatever ended the run

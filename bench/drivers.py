"""The in-memory driver choice, measured: discrete-event heap vs asyncio on a virtual clock (looptime).

Both run the same rig (terminal, host, fault layer, journal, ledger); only the scheduler differs.
"""

from __future__ import annotations

import asyncio

import looptime

from possim.realtime import LoopScheduler
from possim.rig import Rig, RunResult
from possim.scenario import Scenario


def simulate_on_looptime(scenario: Scenario, policy: str) -> RunResult:
    """The same run as ``possim.simulation.simulate``, executed by an asyncio loop on virtual time."""
    loop = looptime.new_event_loop(noop_cycles=1, idle_timeout=None)
    try:
        return loop.run_until_complete(_run(scenario, policy))
    finally:
        loop.close()


async def _run(scenario: Scenario, policy: str) -> RunResult:
    rig = Rig(scenario, policy, scenario.model.seed, LoopScheduler(asyncio.get_running_loop()))
    rig.memory()
    rig.schedule_payments()
    loop = asyncio.get_running_loop()
    while True:  # quiescence: nothing scheduled but this poll (looptime jumps virtual time for us)
        await asyncio.sleep(1.0)
        if rig.locally_quiet() and not [h for h in loop._scheduled if not h.cancelled()]:
            return rig.finish(True, "memory-looptime")

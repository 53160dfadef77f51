"""possim: a payment-terminal timeout lab (orchestration: scenarios, simulation, checker, CLI).

As a library, for QA's own test suites (docs/pytest.md)::

    import possim

    result = possim.simulate("response-lost", "reversal")
    assert result.verdict.counts["orphaned_debits"] == 0

Each name of ``__all__`` is loaded on first use (module ``__getattr__``), so ``import possim``,
and with it ``python -m possim`` and the ``possim`` command, import nothing more than before.
The pytest plugin (``possim.pytest_plugin``: ``possim_acquirer``, ``possim_broker``) is
registered as an entry point and needs no import.
"""

from __future__ import annotations

import sys

#: Not ``typing.TYPE_CHECKING``: importing ``typing`` alone would cost ``import possim`` several milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from possim.api import check, compare, load_scenario, save_schedule, simulate
    from possim.pos_sim.config import POLICIES
    from possim.pos_sim.testing import link_faults, schedules

__version__ = "0.1.0"

#: Where each public name lives; ``__getattr__`` imports it from there the first time it is asked for.
_LAZY = {
    "load_scenario": "possim.api", "simulate": "possim.api", "compare": "possim.api", "check": "possim.api",
    "save_schedule": "possim.api", "POLICIES": "possim.pos_sim.config",
    "schedules": "possim.pos_sim.testing", "link_faults": "possim.pos_sim.testing",
}

#: Names asked of a registry each time they are read (a policy registered later is listed), never cached.
_LIVE = frozenset({"POLICIES"})

__all__ = ["POLICIES", "check", "compare", "link_faults", "load_scenario", "save_schedule", "schedules", "simulate"]


def __getattr__(name: str) -> Any:
    """Load a public name on first use and keep it, so later uses cost a dict lookup."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'possim' has no attribute {name!r}")
    __import__(module)  # not importlib.import_module: that import costs every ``import possim``
    value = getattr(sys.modules[module], name)
    if name not in _LIVE:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

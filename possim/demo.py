"""The trainer's demo: the key failure modes, narrated and paced in real time.

Each act runs a shipped scenario without recovery, event by event, then shows the same
faults under the recovery policies side by side, with the money outcome of each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from possim import console as show
from possim.scenario import load
from possim.simulation import simulate
from possim.timeline import rows
from protocol.events import Stamped

ACTS = (
    ("response-lost", "Act 1 - the lost approval",
     "Watch the 0210 die on its way back. The host has debited the card; the terminal only sees silence.",
     "A reversal gives the money back; a status query finds the approval and finishes the sale."),
    ("slow-host", "Act 2 - the slow host",
     "The approval is not lost, only late: it arrives after the terminal gave up.",
     "The late 0210 is logged and ignored; recovery decides the outcome, never the late message."),
    ("reversal-lost", "Act 3 - the lost reversal",
     "The fix itself gets lost: the first two reversals never reach the host.",
     "A reversal is journaled before the sale and repeated (0401) with backoff until acknowledged."),
    ("customer-retries", "Act 4 - the customer pays again",
     "Told the payment failed, the customer pays a second time. Now they have paid twice.",
     "With recovery the first debit is credited back, or found approved so nobody pays twice."),
)
RECOVERY = ("reversal", "query", "query-then-reversal")


def run_demo(console: Console, scenarios: Path, pace: float, sleep: Callable[[float], None] = time.sleep) -> None:
    first = load(scenarios / "response-lost.toml")
    console.print("[bold]possim: why a 'failed' payment can still take the customer's money[/]\n")
    show.compare(console, [simulate(first, p) for p in ("none", *RECOVERY)])
    for name, title, setup, fix in ACTS:
        scenario = load(scenarios / f"{name}.toml")
        console.rule(f"[bold]{title}[/]")
        console.print(scenario.model.description.strip())
        console.print(f"\n[italic]{setup}[/]\n")
        base = simulate(scenario, "none")
        _paced(console, base.trace.records, pace, sleep)
        loss = base.verdict.summary()["customer_loss"]
        console.print(f"\nWithout recovery: [bold red]{base.verdict.counts['orphaned_debits']} orphaned debit(s), "
                      f"customer loses {loss}[/].")
        console.print(f"[italic]{fix}[/]")
        show.compare(console, [base, *(simulate(scenario, p) for p in RECOVERY)])
        sleep(pace * 3)
    console.rule("[bold]end of demo[/]")
    console.print("Replay any act yourself: possim run scenarios/<name>.toml --policy none --report act.html")


def _paced(console: Console, records: list[Stamped], pace: float, sleep: Callable[[float], None]) -> None:
    console.print(f"{'t (s)':>9} | {'terminal':<52} | {'network':<30} | host")
    for t, term, net, host in rows(records):
        style = "bold red" if "LOST" in net or "TIMEOUT" in term or "CRASH" in host else None
        line = f"{t:>9.3f} | {term[:52]:<52} | {net[:30]:<30} | {host[:44]}"
        console.print(line, style=style, highlight=False, markup=False)
        sleep(pace)

"""The trainer's demo: the key failure modes, narrated and paced in real time.

Each act plays a shipped scenario event by event under the policy its narration speaks of
(act 3, the lost reversal, needs a terminal that sends reversals; act 5 is a QR wallet
payment), says what it cost in one plain headline, shows the same faults under every policy
side by side, and ends with one sentence: what fixes it. The rows wrap to the terminal's width (100 columns and 80 too):
nothing is cut. Worded in the reader's language.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from possim.i18n import N_, Tr
from possim.protocol.events import Stamped
from possim.scenario import load
from possim.simulation import simulate
from possim.views import console as show
from possim.views.lesson import tr_for
from possim.views.timeline import rows


@dataclass(frozen=True)
class Act:
    scenario: str
    policy: str  # what the act plays: the policy its narration is about
    title: str
    setup: str
    fix: str


ACTS = (
    Act("response-lost", "none", N_("Act 1 - the lost approval"),
        N_("Watch the 0210 die on its way back. The host has debited the card; the terminal only sees silence."),
        N_("A reversal gives the money back; a status query finds the approval and finishes the sale.")),
    Act("slow-host", "none", N_("Act 2 - the slow host"),
        N_("The approval is not lost, only late: it arrives after the terminal gave up."),
        N_("The late 0210 is logged and ignored; recovery decides the outcome, never the late message.")),
    Act("reversal-lost", "reversal", N_("Act 3 - the lost reversal"),
        N_("This terminal does send reversals, but the fix itself gets lost: the first two reversals never "
           "reach the host."),
        N_("A reversal is journaled before the sale and repeated (0401) with backoff until acknowledged.")),
    Act("customer-retries", "none", N_("Act 4 - the customer pays again"),
        N_("Told the payment failed, the customer pays a second time. Now they have paid twice."),
        N_("With recovery the first debit is credited back, or found approved, so nobody pays twice.")),
    Act("qr-user-paying-timeout", "none", N_("Act 5 - the QR payment (付款码)"),
        N_("The wallet answers 'user paying' while the customer types the password; this terminal gives up, "
           "then the customer confirms and the wallet charges them."),
        N_("Query the order by its order number while the customer is paying, and cancel (撤销) it at the limit: "
           "the payment is found, or the order closes unpaid.")),
)
RECOVERY = ("reversal", "query", "query-then-reversal")


def run_demo(console: Console, scenarios: Path, pace: float, sleep: Callable[[float], None] = time.sleep,
             lang: str | None = None) -> None:
    """Every act in turn. Ctrl-C (``KeyboardInterrupt``, raised again) ends it with which acts were played."""
    tr = Tr(lang or "en")
    console.print(f"[bold]{tr('possim: why a failed payment can still take the customer money')}[/]\n")
    played: list[Act] = []
    try:
        for act in ACTS:
            _act(console, scenarios, act, pace, sleep, tr)
            played.append(act)
    except KeyboardInterrupt:
        _stopped(console, played, tr)
        raise
    console.rule(f"[bold]{tr('end of demo')}[/]")
    console.print(tr("Replay any act yourself: possim run <name> --policy none --report act.html"))


def _stopped(console: Console, played: list[Act], tr: Tr) -> None:
    """What a trainer who stopped the demo has shown, and where it stopped."""
    console.print()
    console.rule(f"[bold]{tr('demo stopped')}[/]")
    shown = ", ".join(tr(act.title) for act in played) or tr("none")
    console.print(tr("Acts played to the end: {acts}", acts=shown))
    if len(played) < len(ACTS):
        console.print(tr("Stopped during: {act}", act=tr(ACTS[len(played)].title)))
    console.print(tr("Replay any act yourself: possim run <name> --policy none --report act.html"))


def _act(console: Console, scenarios: Path, act: Act, pace: float, sleep: Callable[[float], None], tr: Tr) -> None:
    """One act: the scenario played and narrated, its cost, every policy side by side, the fix."""
    scenario = load(scenarios / f"{act.scenario}.toml").in_market(tr.lang)
    console.rule(f"[bold]{tr(act.title)}[/]")
    played = simulate(scenario, act.policy)
    tr = tr_for(played, tr.lang)
    console.print(tr("Playing {scenario} under policy {policy}.", scenario=act.scenario, policy=tr.policy(act.policy)))
    console.print(f"[italic]{tr(act.setup)}[/]\n")
    _paced(console, played.trace.records, pace, sleep, tr)
    console.print()
    show.lesson(console, played, tr, actions=False)
    others = {p: played if p == act.policy else simulate(scenario, p) for p in ("none", *RECOVERY)}
    show.compare(console, list(others.values()), tr)
    console.print(f"[bold]{tr(act.fix)}[/]\n")
    sleep(pace * 3)


def _paced(console: Console, records: list[Stamped], pace: float, sleep: Callable[[float], None], tr: Tr) -> None:
    """One row at a time, the columns sized to the console so long cells wrap instead of being cut."""
    console.print(_grid(console, (tr("t (s)"), tr("terminal"), tr("network"), tr("host")), "bold"))
    for t, term, net, host in rows(records, tr):
        style = show._style(term, net, host)  # the timeline's own alarm colours
        console.print(_grid(console, (f"{t:.3f}", term, net, host), style))
        sleep(pace)


def _grid(console: Console, cells: tuple[str, str, str, str], style: str | None) -> Table:
    width = console.width
    grid = Table.grid(padding=(0, 1))
    rest = max(width - 8 - 4, 30)
    grid.add_column(width=8, justify="right", no_wrap=True)
    grid.add_column(width=rest * 3 // 8, overflow="fold")
    grid.add_column(width=rest * 2 // 8, overflow="fold", style="yellow")
    grid.add_column(width=rest - rest * 3 // 8 - rest * 2 // 8, overflow="fold", style="cyan")
    grid.add_row(*cells, style=style)
    return grid

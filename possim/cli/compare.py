"""``possim compare``: one scenario under several policies with the same faults, side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from possim import console as show
from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.views import console, heading, lang_option
from possim.expect import failed_expectations
from possim.lesson import tr_for
from possim.pos_sim.config import POLICIES
from possim.simulation import RunResult, simulate


def _policy_list(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    """'none, reversal' -> ['none', 'reversal']; an empty list or an unknown name is refused."""
    names = [p.strip() for p in value.split(",") if p.strip()]
    if not names:
        raise click.BadParameter(f"name at least one policy (from {', '.join(POLICIES)})")
    for name in names:
        if name not in POLICIES:
            raise click.BadParameter(f"unknown policy {name!r} (choose from {', '.join(POLICIES)})")
    return names


@click.command("compare")
@click.argument("scenario")
@click.option("--policies", default=",".join(POLICIES), show_default=True, callback=_policy_list,
              help="Comma-separated policies to compare.")
@opt.profile()
@opt.seed()
@click.option("--timelines/--no-timelines", default=True, help="Print each policy's timeline first.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write all policies into one HTML report.")
@lang_option()
def compare_command(scenario: str, policies: list[str], profile: str | None, seed: int | None, timelines: bool,
                    report_path: str | None, lang: str) -> None:
    """Run SCENARIO under each policy with the same faults and show the outcomes side by side.

    Exit code 0: every policy settled and met the file's [expect]; 1: one did not; 2: bad input.
    """
    inputs.writable(report_path)
    sc = inputs.scenario(scenario).with_profile(profile)
    if sc.is_fleet:
        from possim.cli.fleet import compare_fleet

        sys.exit(compare_fleet(sc, policies, seed, report_path, lang))
    results: list[RunResult] = [simulate(sc, p, seed) for p in policies]
    con = console()
    tr = tr_for(results[0], lang)
    heading(con, sc, tr.lang)
    if timelines:
        for r in results:
            show.timeline(con, r, limit=60, tr=tr)
    show.compare(con, results, tr)
    broken = [r.policy for r in results if not _judged(con, r)]
    if report_path:
        from possim.html_report import render

        title = tr("{title}: policies compared", title=sc.model.title)
        Path(report_path).write_text(render(results, title, lang), encoding="utf-8")
        con.print(tr("report written to {path}", path=report_path))
    sys.exit(1 if broken else 0)


def _judged(con: Console, result: RunResult) -> bool:
    """Print what ``result`` breaks (its policy's [expect], quiescence); True when it breaks nothing."""
    failures = failed_expectations(result.scenario.model.expect, result.policy, result.verdict.summary())
    for failure in failures:
        con.print(f"[bold red]policy {result.policy}: expectation failed:[/] {failure}")
    if not result.quiescent:
        con.print(f"[bold red]policy {result.policy}: run did not reach quiescence[/]")
    return result.quiescent and not failures

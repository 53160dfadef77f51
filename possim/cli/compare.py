"""``possim compare``: one scenario under several policies with the same faults, side by side."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import ABORTED
from possim.cli.screen import console, heading
from possim.cli.views import lang_option
from possim.i18n import Tr
from possim.judging.expect import failed_expectations
from possim.pos_sim.policies import REGISTRY as POLICIES
from possim.scenario import Scenario
from possim.simulation import RunResult, simulate
from possim.views import console as show
from possim.views.lesson import tr_for
from possim.views.progress import Step, bar

R = TypeVar("R", bound=Any)


def _policy_list(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    """'none, reversal' -> ['none', 'reversal']; an empty list or an unknown name is refused."""
    names = [p.strip() for p in value.split(",") if p.strip()]
    if not names:
        raise click.BadParameter(f"name at least one policy (from {', '.join(POLICIES.names())})")
    for name in names:
        if name not in POLICIES:
            raise click.BadParameter(f"unknown policy {name!r} (choose from {', '.join(POLICIES.names())})")
    return names


@click.command("compare")
@click.argument("scenario")
@click.option("--policies", default=lambda: ",".join(POLICIES.names()), show_default="every policy",
              callback=_policy_list,
              help="Comma-separated policies to compare.")
@opt.profile()
@opt.seed()
@click.option("--timelines/--no-timelines", default=True, help="Print each policy's timeline first.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write all policies into one HTML report.")
@opt.as_json("Print every policy's summary as one JSON object.")
@click.option("--progress/--no-progress", default=True,
              help="Show a progress bar on stderr (only when stderr is a terminal).")
@lang_option()
def compare_command(scenario: str, policies: list[str], profile: str | None, seed: int | None, timelines: bool,
                    report_path: str | None, as_json: bool, progress: bool, lang: str) -> None:
    """Run SCENARIO under each policy with the same faults and show the outcomes side by side.

    Ctrl-C shows the policies that finished. Exit code 0: every policy settled and met the
    file's [expect]; 1: one did not; 2: bad input; 130: interrupted.
    """
    inputs.writable(report_path)
    sc = inputs.scenario(scenario).with_profile(profile).in_market(lang)
    tr = Tr(lang)
    if sc.is_fleet:
        from possim.cli.fleet import compare_fleet
        from possim.fleets.fleet import sales_of, simulate_fleet

        per = sales_of(sc)
        with bar("possim compare", per * len(policies), progress) as step:
            fleets, stopped = _each(policies, lambda i, p: simulate_fleet(
                sc, p, seed, progress=lambda n: step(i * per + n, tr("policy {policy}", policy=p))), tr)
        if as_json:
            _json(sc, fleets, policies, stopped)
        code = compare_fleet(sc, policies, seed, report_path, lang, fleets) if fleets else 0
        _interrupted(tr, fleets, policies, stopped)
        sys.exit(code)
    with bar("possim compare", len(policies), progress) as step:
        results, stopped = _each(policies, lambda i, p: _counted(step, i + 1, simulate(sc, p, seed)), tr)
    if as_json:
        _json(sc, results, policies, stopped)
    if not results:
        _interrupted(tr, results, policies, stopped)
    broken = _show(sc, results, timelines, report_path, lang)
    _interrupted(tr, results, policies, stopped)
    sys.exit(1 if broken else 0)


def _counted(step: Step, done: int, result: R) -> R:
    step(done)
    return result


def _each(policies: list[str], play: Callable[[int, str], R], tr: Tr) -> tuple[list[R], bool]:
    """Each policy in turn (``play(index, policy)``), a line on stderr as each finishes; Ctrl-C keeps
    the ones that did (True)."""
    done: list[R] = []
    try:
        for n, policy in enumerate(policies, 1):
            done.append(play(n - 1, policy))
            click.echo(tr("possim compare: policy {policy} done ({n} of {total})", policy=tr.policy(policy), n=n,
                          total=len(policies)), err=True)
    except KeyboardInterrupt:
        return done, True
    return done, False


def _json(sc: Scenario, results: list[Any], policies: list[str], stopped: bool) -> None:
    """One object: each finished policy's summary and the expectations it failed; exit as the view would."""
    out = {}
    broken = False
    for r in results:
        failures = failed_expectations(sc.model.expect, r.policy, r.verdict.summary())
        out[r.policy] = {**r.summary(), "expectations_failed": failures}
        broken = broken or bool(failures) or not r.quiescent
    click.echo(json.dumps({"scenario": sc.name, "policies": out, "interrupted": stopped,
                           "not_run": policies[len(results):]}, sort_keys=True))
    sys.exit(ABORTED if stopped else 1 if broken else 0)


def _interrupted(tr: Tr, results: list[Any], policies: list[str], stopped: bool) -> None:
    """After Ctrl-C: say which policies ran (shown above) and which did not, then exit 130."""
    if not stopped:
        return
    ran = ", ".join(r.policy for r in results) or tr("none")
    click.echo(tr("compare interrupted: policies run: {ran}; not run: {rest}", ran=ran,
                  rest=", ".join(policies[len(results):])))
    sys.exit(ABORTED)


def _show(sc: Scenario, results: list[RunResult], timelines: bool, report_path: str | None, lang: str) -> bool:
    """The side-by-side view; True when a policy breaks its [expect] or never settles."""
    con = console()
    tr = tr_for(results[0], lang)
    heading(con, sc, tr.lang)
    if timelines:
        for r in results:
            show.timeline(con, r, limit=60, tr=tr)
    show.compare(con, results, tr)
    broken = [r.policy for r in results if not _judged(con, r, tr)]
    if report_path:
        from possim.views.html_report import render

        title = tr("{title}: policies compared", title=sc.model.title)
        Path(report_path).write_text(render(results, title, lang), encoding="utf-8")
        con.print(tr("report written to {path}", path=report_path))
    return bool(broken)


def _judged(con: Console, result: RunResult, tr: Tr) -> bool:
    """Print what ``result`` breaks (its policy's [expect], quiescence); True when it breaks nothing."""
    failures = failed_expectations(result.scenario.model.expect, result.policy, result.verdict.summary())
    who = tr("policy {policy}:", policy=tr.policy(result.policy))
    for failure in failures:
        con.print(f"[bold red]{escape(who)} {escape(tr('expectation failed:'))}[/] {escape(failure)}")
    if not result.quiescent:
        con.print(f"[bold red]{escape(who)} {escape(tr('run did not reach quiescence within the horizon'))}[/]")
    return result.quiescent and not failures

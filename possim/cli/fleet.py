"""Fleet scenarios on the command line: ``run`` and ``compare`` of a scenario with ``[[terminals]]``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from possim.cli import inputs
from possim.cli.errors import InputError
from possim.cli.screen import console, heading
from possim.fleets import fleet_view
from possim.fleets.fleet import FleetResult, sales_of, simulate_fleet
from possim.i18n import Tr, resolve
from possim.judging.expect import failed_expectations
from possim.scenario import Scenario
from possim.views.progress import bar


def run_fleet(sc: Scenario, policy: str | None, seed: int | None, as_json: bool, trace_path: str | None,
              report_path: str | None, terminal_id: str | None, lang: str | None = None,
              progress: bool = True) -> int:
    """``possim run`` of a fleet: the summary first, one terminal's timeline on demand; returns the exit code."""
    inputs.writable(trace_path, report_path)
    tids = {tid for group in sc.model.terminals for tid in group.tids()}
    if terminal_id is not None and terminal_id not in tids:
        raise InputError(f"--terminal {terminal_id!r}: no such terminal in {sc.name}")
    keep = bool(terminal_id or (trace_path and report_path))  # kept only when something will show it
    stream = trace_path if trace_path and not keep else None  # only the file: written as the run goes
    with bar("possim run", sales_of(sc), progress) as step:
        result = simulate_fleet(sc, policy, seed, trace=keep, progress=step, trace_to=stream)
    if trace_path and result.trace is not None:
        result.trace.write(trace_path)
    if report_path:
        write_report([result], report_path, f"{sc.model.title}", terminal_id, lang)
    failures = failed_expectations(sc.model.expect, result.policy, result.verdict.summary())
    if as_json:
        click.echo(json.dumps({**result.summary(), "expectations_failed": failures, "fleet": result.fleet_json()},
                              sort_keys=True))
    else:
        con, tr = console(), _tr(sc, lang)
        heading(con, sc, tr.lang)
        fleet_view.summary(con, result, failures, tr)
        if terminal_id:
            fleet_view.timeline(con, result, terminal_id, tr=tr)
        if report_path:
            con.print(tr("report written to {path}", path=report_path))
    return 0 if result.quiescent and not failures else 1


def compare_fleet(sc: Scenario, policies: list[str], seed: int | None, report_path: str | None,
                  lang: str | None = None, results: list[FleetResult] | None = None) -> int:
    """``possim compare`` of a fleet: every policy over the same fleet and faults, money at risk per policy
    (``results``: the runs already made, when the caller made them)."""
    results = results if results is not None else [simulate_fleet(sc, p, seed) for p in policies]
    con, tr = console(), _tr(sc, lang)
    heading(con, sc, tr.lang)
    fleet_view.compare(con, results, tr)
    broken = []
    for r in results:
        failures = failed_expectations(sc.model.expect, r.policy, r.verdict.summary())
        for failure in failures:
            con.print(f"[bold red]{escape(tr('policy {policy}:', policy=tr.policy(r.policy)))} "
                      f"{escape(tr('expectation failed:'))}[/] {escape(failure)}")
        if not r.quiescent:
            con.print(f"[bold red]{escape(tr('policy {policy}:', policy=tr.policy(r.policy)))} "
                      f"{escape(tr('run did not reach quiescence within the horizon'))}[/]")
        if failures or not r.quiescent:
            broken.append(r.policy)
    if report_path:
        write_report(results, report_path, f"{sc.model.title}: " + tr("policies compared"), lang=lang)
        con.print(tr("report written to {path}", path=report_path))
    return 1 if broken else 0


def reconcile_fleet_command(sc: Scenario, policy: str | None, seed: int | None, as_json: bool,
                            lang: str | None = None) -> int:
    """``possim reconcile`` of a fleet: the fleet, each group, the terminals that do not balance; exit 1 when any."""
    from possim.money.fleet_reconcile import reconcile_fleet

    rec = reconcile_fleet(sc, policy, seed)
    if as_json:
        click.echo(json.dumps(rec.as_dict(), sort_keys=True))
    else:
        con, tr = console(), _tr(sc, lang)
        heading(con, sc, tr.lang)
        fleet_view.reconciliation(con, rec, tr)
    return 0 if rec.balanced else 1


def write_report(results: list[FleetResult], path: str, title: str, detail: str | None = None,
                 lang: str | None = None) -> None:
    Path(path).write_text(fleet_view.render(results, title, detail, lang), encoding="utf-8")


def _tr(sc: Scenario, lang: str | None) -> Tr:
    """The reader's words and the fleet's currency."""
    return Tr(resolve(lang), sc.model.terminal.currency)

"""The ``possim`` command line. Bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from pos_sim.config import POLICIES
from possim import console as show
from possim.expect import failed_expectations
from possim.scenario import Scenario, ScenarioError, check_policy, load
from possim.simulation import RunResult, simulate


def _console() -> Console:
    """Colour on a terminal; plain, wide text when piped into a file or another program."""
    return Console() if sys.stdout.isatty() else Console(width=140, no_color=True)


class InputError(Exception):
    """Bad input from the user: becomes one line and exit code 2."""


@click.group()
@click.version_option(package_name="possim")
def cli() -> None:
    """possim: reproduce POS timeouts, orphaned debits and their recovery."""


@cli.command()
@click.argument("scenario")
@click.option("--policy", help=f"Recovery policy: {', '.join(POLICIES)} (default: the scenario's).")
@click.option("--seed", type=int, help="RNG seed (default: the scenario's).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), help="Write the JSON-lines trace here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--check-determinism", is_flag=True, help="Run twice and compare the traces.")
@click.option("--timeline/--no-timeline", default=True, help="Print the event timeline.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Keep the host ledger in this SQLite file.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False), help="Keep the terminal journal in this SQLite file.")
def run(scenario: str, policy: str | None, seed: int | None, trace_path: str | None, as_json: bool,
        check_determinism: bool, timeline: bool, ledger_path: str | None, journal_path: str | None) -> None:
    """Run SCENARIO in virtual time and judge it."""
    sc = _load(scenario, policy)
    for p in (ledger_path, journal_path):
        if p and Path(p).exists():
            raise InputError(f"{p}: already exists; possim will not write into an existing ledger or journal")
    if check_determinism:
        sys.exit(_determinism(sc, policy, seed))
    result = simulate(sc, policy, seed, ledger_path=ledger_path, journal_path=journal_path)
    if trace_path:
        result.trace.write(trace_path)
    failures = failed_expectations(sc.model.expect, result.policy, result.verdict.summary())
    if as_json:
        click.echo(json.dumps({**result.summary(), "expectations_failed": failures}, sort_keys=True))
    else:
        con = _console()
        con.print(f"[bold]{sc.model.title}[/]\n{sc.model.description.strip()}\n")
        if timeline:
            show.timeline(con, result)
        show.verdict(con, result, failures)
    sys.exit(0 if result.quiescent and not failures else 1)


@cli.command()
@click.argument("scenario")
@click.option("--policies", default=",".join(POLICIES), show_default=True, help="Comma-separated policies.")
@click.option("--seed", type=int, help="RNG seed (default: the scenario's).")
@click.option("--timelines/--no-timelines", default=True, help="Print each policy's timeline first.")
def compare(scenario: str, policies: str, seed: int | None, timelines: bool) -> None:
    """Run SCENARIO under each policy with the same faults and show the outcomes side by side."""
    names = [p.strip() for p in policies.split(",") if p.strip()]
    for name in names:
        _policy(name)
    sc = _load(scenario, None)
    results: list[RunResult] = [simulate(sc, p, seed) for p in names]
    con = _console()
    con.print(f"[bold]{sc.model.title}[/]\n{sc.model.description.strip()}\n")
    if timelines:
        for r in results:
            show.timeline(con, r, limit=60)
    show.compare(con, results)


@cli.command("fuzz")
@click.option("--policy", default="none", show_default=True, help=f"Policy under test: {', '.join(POLICIES)}.")
@click.option("--examples", default=500, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Generated schedules to try.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the generator.")
@click.option("--out", default="found.toml", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the shrunk failing schedule.")
@click.option("--max-transactions", default=5, show_default=True, type=click.IntRange(1, 50))
def fuzz_command(policy: str, examples: int, seed: int, out: str, max_transactions: int) -> None:
    """Throw generated fault schedules at a policy; shrink the first violation into a scenario."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from possim.fuzz import fuzz, scenario_document, to_toml, violations

    _policy(policy)
    con = _console()
    with Progress(TextColumn(f"fuzzing policy {policy}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("fuzz", total=examples)
        found = fuzz(policy, examples, seed, lambda n: bar.update(task, completed=n), max_transactions)
    show.coverage(con, found.coverage, found.examples)
    if found.schedule is None or found.result is None:
        con.print(f"no violation in {found.examples} generated schedules under policy {policy}")
        sys.exit(0)
    document = scenario_document(found.schedule, found.result)
    Path(out).write_text(to_toml(document), encoding="utf-8")
    con.print(f"[bold red]violation:[/] {', '.join(violations(found.result))} after {found.examples} schedules; "
              f"shrunk and written to {out}")
    con.print(document["description"])
    con.print(f"replay: possim run {out} --policy {policy}")
    sys.exit(1)


def _determinism(sc: Scenario, policy: str | None, seed: int | None) -> int:
    first = simulate(sc, policy, seed).trace.lines()
    second = simulate(sc, policy, seed).trace.lines()
    for i, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            click.echo(f"NOT deterministic: traces differ at event {i + 1}:\n  first:  {a}\n  second: {b}")
            return 1
    if len(first) != len(second):
        click.echo(f"NOT deterministic: {len(first)} events vs {len(second)} events")
        return 1
    click.echo(f"deterministic: two runs gave {len(first)} identical trace events")
    return 0


def _policy(policy: str) -> str:
    try:
        return check_policy(policy)
    except ScenarioError as exc:
        raise InputError(str(exc)) from None


def _load(path: str, policy: str | None) -> Scenario:
    if policy is not None:
        _policy(policy)
    try:
        return load(path)
    except ScenarioError as exc:
        raise InputError(str(exc)) from None


def main() -> None:
    """Entry point: click's own usage errors and ours become one line and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except InputError as exc:
        click.echo(f"possim: error: {exc}", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        click.echo(f"possim: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("possim: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)

"""``possim fuzz``: generated fault schedules against a policy, the first violation shrunk into a scenario file."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import ABORTED
from possim.cli.screen import console
from possim.cli.views import lang_option
from possim.i18n import Tr
from possim.views import console as show

if TYPE_CHECKING:
    from possim.fuzzing.fuzz import FuzzResult


@click.command("fuzz")
@opt.policy("Policy under test.", default="none")
@click.option("--examples", default=500, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Generated schedules to try.")
@opt.seed("Seed of the generator.", default=0)
@click.option("--out", default="found.toml", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the shrunk failing schedule.")
@click.option("--max-transactions", default=5, show_default=True, type=click.IntRange(1, 50),
              help="Most payments in one generated schedule.")
@click.option("--wallet", is_flag=True, help="Put QR wallet payments in the mix (faults on every wallet message, "
              "customer confirmation delays, rescans, forged and replayed wallet requests).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes searching at once (coverage merged; the first violation is shrunk here).")
@opt.as_json("Print the result as one JSON object (examples tried, violation, scenario file, coverage, "
             "forgeries injected).")
@lang_option()
def fuzz_command(policy: str, examples: int, seed: int, out: str, max_transactions: int, wallet: bool,
                 workers: int, as_json: bool, lang: str) -> None:
    """Throw generated fault schedules at a policy; shrink the first violation into a scenario.

    The scenario expects the invariants the violation broke to hold, so `possim run` on it
    fails while the bug exists and passes once it is fixed. Ctrl-C stops the search and
    shows what ran. Hypothesis keeps its files in $XDG_CACHE_HOME/possim/hypothesis
    (~/.cache when unset; $POSSIM_HYPOTHESIS_DIR to choose), never in the current folder.

    Exit code 0: no violation found; 1: one found and written to --out; 2: bad input; 130: stopped by Ctrl-C.
    """
    from possim.fuzzing.fuzz import storage_at_home

    inputs.writable(out)
    tr = Tr(lang)
    with storage_at_home():
        found = _search(policy, examples, seed, workers, max_transactions, wallet, tr)
        document = _write(found, out)
    if as_json:
        click.echo(json.dumps(_as_json(found, seed, examples, out if document else None, document), sort_keys=True))
    else:
        _print(found, out if document else None, document, tr)
    sys.exit(ABORTED if found.interrupted else 1 if document else 0)


def _search(policy: str, examples: int, seed: int, workers: int, max_transactions: int, wallet: bool,
            tr: Tr) -> FuzzResult:
    """The search with a progress bar on stderr; its first progress prints the readiness line (from
    then on Ctrl-C ends it with what ran). An interrupt outside the search still reports the count."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from possim.fuzzing.fuzz import FuzzResult, groups_for
    from possim.fuzzing.fuzz_workers import fuzz_parallel

    ran, shown = [0], [0.0]

    def progress(n: int) -> None:
        if not ran[0]:
            click.echo(tr("fuzzing policy {policy}: up to {examples} schedules, seed {seed} (Ctrl-C stops and "
                          "shows what ran)", policy=policy, examples=examples, seed=seed), err=True)
        ran[0] = n
        bar.update(task, completed=n)
        if (now := time.monotonic()) - shown[0] >= 0.1:
            shown[0] = now
            bar.refresh()

    # auto_refresh=False: the bar is drawn here, in the main thread, never by a refresh thread that
    # Ctrl-C's KeyboardInterrupt could leave waiting on a lock while the command tries to report.
    try:
        with Progress(TextColumn(escape(tr("fuzzing policy {policy}", policy=policy))), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                      auto_refresh=False) as bar:
            task = bar.add_task("fuzz", total=examples)
            return fuzz_parallel(policy, examples, seed, workers, progress, max_transactions, wallet=wallet)
    except KeyboardInterrupt:
        return FuzzResult(policy, examples=ran[0], groups=groups_for(wallet), interrupted=True)


def _write(found: FuzzResult, out: str) -> dict[str, Any] | None:
    """The violation as a scenario file at ``out`` (also when Ctrl-C cut its shrinking short)."""
    from possim.fuzzing.fuzz import scenario_document, to_toml

    if found.schedule is None or found.result is None:
        return None
    document = scenario_document(found.schedule, found.result)
    Path(out).write_text(to_toml(document), encoding="utf-8")
    return document


def _as_json(found: FuzzResult, seed: int, examples: int, out: str | None,
             document: dict[str, Any] | None) -> dict[str, Any]:
    from possim.fuzzing.fuzz import to_toml, violations
    from possim.judging.coverage import FORGERIES_INJECTED, WALLET_FORGERIES_INJECTED, labels

    return {"policy": found.policy, "seed": seed, "examples": found.examples, "examples_requested": examples,
            "interrupted": found.interrupted, "violations": violations(found.result) if found.result else [],
            "summary": found.result.verdict.summary() if found.result else None, "out": out,
            "scenario": to_toml(document) if document else None,
            "coverage": {label: found.coverage.get(label, 0) for label in labels(found.groups)},
            "forgeries_injected": found.coverage.get(FORGERIES_INJECTED, 0),
            "wallet_forgeries_injected": found.coverage.get(WALLET_FORGERIES_INJECTED, 0)}


def _print(found: FuzzResult, out: str | None, document: dict[str, Any] | None, tr: Tr) -> None:
    """For people: the coverage table, what was found, the scenario's TOML and how to replay it."""
    from possim.fuzzing.fuzz import broken, to_toml
    from possim.judging.coverage import FORGERIES_INJECTED, WALLET_FORGERIES_INJECTED

    con = console()
    show.coverage(con, found.coverage, found.examples, found.groups, tr)
    if "forgery" in found.groups:
        con.print(escape(tr("forgeries injected: {forgeries} ({wallet} of them wallet requests)",
                            forgeries=found.coverage.get(FORGERIES_INJECTED, 0),
                            wallet=found.coverage.get(WALLET_FORGERIES_INJECTED, 0))))
    if document is None or found.result is None or out is None:
        line = (tr("interrupted after {examples} schedules under policy {policy}: no violation so far",
                   examples=found.examples, policy=found.policy) if found.interrupted else
                tr("no violation in {examples} generated schedules under policy {policy}",
                   examples=found.examples, policy=found.policy))
        con.print(escape(line))
        return
    head = (tr("interrupted after {examples} schedules; violation found so far (shrinking cut short): "
               "{violation}; written to {out}", examples=found.examples, violation=broken(found.result), out=out)
            if found.interrupted else
            tr("violation after {examples} schedules: {violation}; shrunk and written to {out}",
               examples=found.examples, violation=broken(found.result), out=out))
    con.print(f"[bold red]{escape(head)}[/]")
    con.print(escape(document["description"]))
    con.print()
    con.print(escape(to_toml(document)), soft_wrap=True)
    con.print(escape(tr("replay: possim run {out} --policy {policy} (exit 1 while the bug is there, 0 once it is "
                        "fixed)", out=out, policy=found.policy)))

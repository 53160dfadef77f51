"""``possim fuzz``: generated fault schedules against a policy, the first violation shrunk into a scenario file."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from possim import console as show
from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.views import console


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
              "customer confirmation delays, rescans).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes searching at once (coverage merged; the first violation is shrunk here).")
def fuzz_command(policy: str, examples: int, seed: int, out: str, max_transactions: int, wallet: bool,
                 workers: int) -> None:
    """Throw generated fault schedules at a policy; shrink the first violation into a scenario.

    Exit code 0: no violation found; 1: one found and written to --out; 2: bad input.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from possim.fuzz import scenario_document, to_toml, violations
    from possim.fuzz_workers import fuzz_parallel

    inputs.writable(out)
    con = console()
    with Progress(TextColumn(f"fuzzing policy {policy}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("fuzz", total=examples)
        found = fuzz_parallel(policy, examples, seed, workers, lambda n: bar.update(task, completed=n),
                              max_transactions, wallet=wallet)
    show.coverage(con, found.coverage, found.examples, found.groups)
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

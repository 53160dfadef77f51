"""``possim chaos``: a fleet of terminal processes, an acquirer and Mosquitto, killed at random, then judged."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from possim.cli import options as opt
from possim.cli.errors import ABORTED, as_input_error
from possim.cli.views import lang_option
from possim.i18n import Tr
from possim.views.progress import Step, bar


@click.command("chaos")
@click.option("--terminals", default=20, show_default=True, type=click.IntRange(1, 200),
              help="Terminal processes in the fleet, each with its own journal.")
@click.option("--acquirer-kills", default=20, show_default=True, type=click.IntRange(0, 1000),
              help="How many times the acquirer process is SIGKILLed and restarted.")
@click.option("--terminal-kills", default=20, show_default=True, type=click.IntRange(0, 1000),
              help="How many times a terminal process is SIGKILLed and restarted on its journal.")
@click.option("--broker-kills", default=10, show_default=True, type=click.IntRange(0, 1000),
              help="How many times Mosquitto is SIGKILLed and restarted on its state folder.")
@click.option("--sales", default=12, show_default=True, type=click.IntRange(1, 1000),
              help="Sales each terminal makes, one a second.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the kill schedule.")
@click.option("--folder", type=click.Path(file_okay=False), default=None,
              help="Keep ledger, journals and logs here (default: a temporary folder, removed afterwards).")
@click.option("--settle-timeout", default=300.0, show_default=True, type=click.FloatRange(1, 3600),
              help="Seconds the fleet may take to finish its work after the last kill.")
@click.option("--insecure", is_flag=True, envvar="POSSIM_INSECURE",
              help="An anonymous broker and no MACs (default: a fresh key file in the run's folder, broker "
                   "accounts and the ACL, MACs on every message).")
@opt.as_json("Print the kills and the checker's counts as one JSON object.")
@click.option("--progress/--no-progress", "show_progress", default=True,
              help="Show a progress bar of the kills on stderr (only when stderr is a terminal).")
@lang_option()
def chaos_command(terminals: int, acquirer_kills: int, terminal_kills: int, broker_kills: int, sales: int,
                  seed: int, folder: str | None, settle_timeout: float, insecure: bool, as_json: bool,
                  show_progress: bool, lang: str) -> None:
    """Kill the acquirer, terminals and broker at random under `reversal`, let it settle, judge the money.

    Everything runs on loopback and stops by itself; Ctrl-C stops it and judges what ran.
    Exit 0 when the checker finds no orphaned, double or phantom money and no reversal still
    pending; 1 otherwise; 130 when interrupted.
    """
    from possim.processes.broker import BrokerError
    from possim.processes.chaos import ChaosError, ChaosPlan, print_table, run_chaos
    from possim.processes.keys import KeyFileError

    tr = Tr(lang)

    kills = acquirer_kills + terminal_kills + broker_kills
    steps: list[Step] = []

    def progress(message: str, **values: object) -> None:
        words = {k: tr(str(v)) if k == "kind" else v for k, v in values.items()}
        click.echo(tr(message, **words), err=True)
        for step in steps:
            step(int(str(values.get("n", kills))))

    plan = ChaosPlan(terminals, acquirer_kills, terminal_kills, broker_kills, seed, sales, settle_timeout, insecure)
    with tempfile.TemporaryDirectory(prefix="possim-chaos-") as scratch, as_input_error(BrokerError, KeyFileError), \
            bar("possim chaos", kills, show_progress) as shown:
        steps.append(shown)
        where = Path(folder) if folder else Path(scratch)
        try:
            report = run_chaos(where, plan, progress)
        except ChaosError as exc:
            click.echo(f"possim: chaos run failed: {exc}", err=True)
            sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        print_table(report, sys.stdout, tr)
    sys.exit(ABORTED if report.interrupted else 0 if report.clean else 1)

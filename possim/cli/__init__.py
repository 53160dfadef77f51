"""The ``possim`` command line, one module per concern.

- ``run``: one scenario under one policy (memory, MQTT or TCP), judged against its [expect];
- ``compare``: one scenario under several policies side by side;
- ``processes``: ``keys``, ``broker``, ``acquirer``, ``terminal`` (and ``settle``, its end of day) as separate
  processes, and ``check`` for their files;
- ``certify``: possim as the acquirer of a terminal under test, graded from the wire (``conform``: the
  mirror image, a host under test); ``gradebook``: the outputs both share;
- ``fuzz``: generated fault schedules against a policy;
- ``chaos``: a fleet of real processes killed at random, then judged;
- ``load``: many terminals in one process against K host shards or a host under test, with percentiles;
- ``lab``: the trainer's live lab, a local web page that re-runs a scenario as its arrows are edited;
- ``views``: ``list``, ``demo``, ``replay``, ``reconcile``, and the report files of a run;
- ``statement``: the merchant's statement, the acquirer's error handling, ``reconcile --statement``;
- ``options``: the options several commands share, declared once; ``inputs``: checks on what the user
  names; ``errors``: how bad input becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from possim.cli.certify import certify_command
from possim.cli.chaos import chaos_command
from possim.cli.compare import compare_command
from possim.cli.conform import conform_command
from possim.cli.errors import InputError, guarded, language
from possim.cli.fuzz import fuzz_command
from possim.cli.lab import lab_command
from possim.cli.load import load_command
from possim.cli.processes import acquirer, broker, check_command, keys_command, settle_command, terminal
from possim.cli.proxy import proxy_command
from possim.cli.run import run_command
from possim.cli.statement import acquirer_errors_command, statement_command
from possim.cli.views import demo, glossary_command, list_command, reconcile_command, replay_command

__all__ = ["InputError", "cli", "main"]


@click.group()
@click.version_option(package_name="possim")
def cli() -> None:
    """possim: reproduce POS timeouts, orphaned debits and their recovery."""


for _command in (run_command, compare_command, fuzz_command, keys_command, broker, acquirer, terminal, check_command,
                 replay_command, list_command, demo, glossary_command, reconcile_command, chaos_command,
                 statement_command, acquirer_errors_command, load_command, settle_command, conform_command,
                 certify_command, lab_command):
    cli.add_command(_command)
cli.add_command(proxy_command)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point (``possim``, ``python -m possim``): exits 0, 1 (a run broke its expectations) or 2 (bad input)."""
    words = sys.argv[1:] if args is None else list(args)
    sys.exit(guarded(lambda: cli.main(args=words, standalone_mode=False), language(words)))

"""``possim certify``: possim is the acquirer; a terminal under test is graded from what reaches it."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import click
from rich.console import Console

from possim.cli import gradebook, inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.cli.gradebook import Labels, Row
from possim.i18n import Tr
from possim.judging import certify as lib
from possim.judging.conform import FAIL
from possim.protocol.mac import MacKey
from possim.protocol.profiles import get_profile


@click.command("certify")
@click.option("--profile", type=click.Choice(lib.PROFILES), default="iso", show_default=True,
              help="Wire format and rules of the plan: iso (ASCII ISO 8583, reversal naming field 90) or cup "
                   "(CUP bytes, reversal copying the original, at most 3 tries).")
@click.option("--builtin-terminal", "policy", metavar="POLICY",
              help="Certify possim's own terminal under this recovery policy (none, reversal, query, "
                   "query-then-reversal).")
@click.option("--terminal-command", "command", metavar="'CMD ...'",
              help="Run your terminal once per sale: placeholders {address} (HOST:PORT), {host}, {port}, "
                   "{amount}, {tid}, {profile}, {journal}, {keys}; {amount} and {address} or {port} "
                   "required; no shell.")
@click.option("--restart-command", "restart", metavar="'CMD ...'",
              help="With --terminal-command: how your terminal starts again after a power loss (same "
                   "placeholders); the power-loss case runs only with it.")
@click.option("--interactive", is_flag=True, help="Print each sale to ring up and wait for it to arrive.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False),
              help="More cases (TOML, the shipped plan's format) run after the shipped plan's.")
@click.option("--case", "only", multiple=True, metavar="ID", help="Run only this case of the plan (repeatable).")
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False),
              help="Key file (possim keys) of your terminal: the acquirer checks and adds MACs and the MAC case "
                   "runs; its terminal ids are given to the cases in turn ({tid}).")
@click.option("--timeout", default=lib.DEFAULT_TIMEOUT, show_default=True, type=opt.FiniteFloatRange(0.2, 120),
              help="The terminal's response timeout: the builtin terminal is given it, and a late answer comes "
                   f"{lib.LATE_MARGIN:g} s after it.")
@click.option("--case-timeout", default=lib.DEFAULT_CASE_TIMEOUT, show_default=True,
              type=opt.FiniteFloatRange(1, 3600), help="Longest a case's terminal run may take.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML here (for CI).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write an HTML report here: each case's messages as the acquirer received them, decoded.")
@opt.as_json("Print the verdicts as one JSON object.")
@opt.lang()
def certify_command(profile: str, policy: str | None, command: str | None, restart: str | None, interactive: bool,
                    plan_path: str | None, only: tuple[str, ...],
                    keys_path: str | None, timeout: float, case_timeout: float, junit_path: str | None,
                    report_path: str | None, as_json: bool, lang: str) -> None:
    """Certify a terminal: possim is its acquirer and grades every rule from the wire and the ledger.

    Each case of the plan rings up magic amounts (possim acquirer --magic-table) that make the
    host lose, delay, double or spoil an answer, decline, or refuse a reversal; the verdict comes
    from the requests the acquirer received, in order, and from its ledger, never from the
    terminal's own report. Exit 0 when every case that ran passed, 1 when any failed, 2 for bad input.
    """
    if sum((policy is not None, command is not None, interactive)) != 1:
        raise InputError("give exactly one of --builtin-terminal POLICY, --terminal-command CMD, --interactive")
    if policy is not None:
        from possim.pos_sim.policies import REGISTRY

        if policy not in REGISTRY:
            raise InputError(f"--builtin-terminal: unknown policy {policy!r} "
                             f"(choose from {', '.join(REGISTRY.names())})")
    if restart is not None and command is None:
        raise InputError("--restart-command goes with --terminal-command")
    with as_input_error(lib.CertifyError):
        for template, option in ((command, "--terminal-command"), (restart, "--restart-command")):
            if template is not None:
                lib.check_command(template, option, rings_up=option == "--terminal-command")
    inputs.writable(junit_path, report_path)
    with as_input_error(lib.CertifyError):
        plan = lib.load_plan(profile, Path(plan_path) if plan_path else None)
        cases = lib.select(plan, only)
    tr = Tr(lang, get_profile(profile).currency)
    with tempfile.TemporaryDirectory(prefix="possim-certify-") as tmp:
        workdir = Path(tmp)
        keys, tids = _keys(keys_path, policy is not None, len(cases), workdir)
        terminal = _terminal(policy, command, restart, profile, timeout, case_timeout, keys_path, workdir)
        with as_input_error(lib.CertifyError):
            results = asyncio.run(_run(cases, tids, terminal, profile, workdir, keys, timeout))
    numbers = {c.id: i for i, c in enumerate(plan)}  # a case keeps its plan number when --case picks a few
    _write(results, numbers, profile, junit_path, report_path, as_json, tr, _who(policy, command),
           _who(policy, command, tr))
    sys.exit(1 if any(r.verdict.status == FAIL for r in results) else 0)


def _who(policy: str | None, command: str | None, tr: Tr | None = None) -> str:
    """Which terminal was certified: English for --json, in the reader's language for the table's title."""
    say = tr or Tr("en", "978")
    if policy is not None:
        return say("builtin terminal ({policy})", policy=say.policy(policy))
    return command or say("interactive terminal")


def _keys(keys_path: str | None, builtin: bool, count: int,
          workdir: Path) -> tuple[Mapping[str, MacKey] | None, list[str]]:
    """The acquirer's MAC keys and each case's terminal id. The builtin terminal gets a fresh key file
    (so the MAC case runs); ``--keys`` names your terminal's, whose terminal ids the cases take in turn."""
    from possim.processes import keys as keyring

    tids = lib.tids(count)
    if keys_path is None and not builtin:
        return None, tids
    with as_input_error(keyring.KeyFileError):
        if keys_path is None:
            ring = keyring.create_key_file(workdir / "keys.toml", tids)
        else:
            ring = keyring.load(Path(keys_path))
            tids = sorted(ring.terminals)
            if len(tids) < count:
                raise InputError(f"--keys: the plan has {count} cases, the key file only {len(tids)} terminals "
                                 f"(make one with possim keys --terminals {count})")
    return ring.mac_keys(), tids


def _terminal(policy: str | None, command: str | None, restart: str | None, profile: str, timeout: float,
              case_timeout: float, keys_path: str | None, workdir: Path) -> lib.Terminal:
    if policy is not None:
        return lib.Builtin(policy, profile, timeout, workdir / "keys.toml", case_timeout)
    if command is not None:
        return lib.Command(command, profile, Path(keys_path) if keys_path else None, case_timeout, restart)
    return lib.Interactive(lambda line: click.echo(line, err=True), case_timeout)


async def _run(cases: tuple[lib.CaseModel, ...], tids: list[str], terminal: lib.Terminal, profile: str,
               workdir: Path, keys: Mapping[str, MacKey] | None, answer_timeout: float) -> list[lib.Result]:
    results = []
    async with lib.acquirer(profile, workdir, keys, answer_timeout + lib.LATE_MARGIN) as acq:
        for index, case in enumerate(cases):
            results.append(await lib.run_case(case, index, tids[index], terminal, acq, workdir, profile,
                                              keys is not None))
    return results


def _rows(results: list[lib.Result], numbers: dict[str, int]) -> list[Row]:
    return [Row(r.case.id, str(numbers[r.case.id] + 1), r.case.rule, r.verdict.status, r.verdict.evidence, r.wire)
            for r in results]


def _write(results: list[lib.Result], numbers: dict[str, int], profile: str, junit_path: str | None,
           report_path: str | None, as_json: bool, tr: Tr, who: str, who_said: str) -> None:
    title = tr("possim certify: {terminal} (profile {profile})", terminal=who_said, profile=tr.profile(profile))
    labels = Labels(title,
                    "certification rule", f"possim certify {profile}", "certify.rule", "CertificationFailure")
    rows = _rows(results, numbers)
    if junit_path:
        Path(junit_path).write_text(gradebook.junit_xml(rows, labels), encoding="utf-8")
    if report_path:
        Path(report_path).write_text(gradebook.html_report(rows, labels, tr), encoding="utf-8")
    if as_json:
        doc = {"terminal": who, "profile": profile, "passed": not any(r.verdict.status == FAIL for r in results),
               "cases": [r.as_dict() for r in results]}
        click.echo(json.dumps(doc, sort_keys=True))
    else:
        gradebook.print_table(Console(), rows, labels, tr)

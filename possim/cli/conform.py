"""``possim conform``: drive an ISO 8583 host under test with crafted terminal messages and grade it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from rich.console import Console

from possim.cli import gradebook, inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.cli.gradebook import Labels, Row
from possim.fleets.load import LoadError, check_target
from possim.i18n import Tr
from possim.judging import conform as lib


@click.command("conform")
@click.option("--host", "host_url", required=True, metavar="tcp://HOST:PORT", help="The ISO 8583 host under test.")
@click.option("--profile", type=click.Choice(sorted(lib.PROFILES)), default="iso", show_default=True,
              help="Wire format and rules: iso (ASCII ISO 8583, 2-byte length) or cup (CUP bytes, TPDU and "
                   "header framing, CUP answer codes).")
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False),
              help="Key file (possim keys): MAC every request with the terminal's key, check every answer's "
                   "MAC, and run the MAC case.")
@click.option("--tid", default=None, help="Terminal id in field 41 (default: the key file's first terminal, "
                                          f"else {lib.DEFAULT_TID}).")
@click.option("--timeout", default=lib.DEFAULT_TIMEOUT, show_default=True, type=opt.FiniteFloatRange(0.1, 120),
              help="Seconds each answer is waited for.")
@click.option("--balance-command", metavar="'CMD {card}'",
              help="A command printing a card's balance; {card} is replaced by the card number. Checks the "
                   "debits of the duplicate and late-original cases by balance too.")
@click.option("--allow-remote", is_flag=True, help="Allow --host to name a non-loopback address.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML here (for CI).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write an HTML report here: each case's messages sent and received, decoded.")
@opt.as_json("Print the verdicts as one JSON object.")
@opt.lang()
def conform_command(host_url: str, profile: str, keys_path: str | None, tid: str | None, timeout: float,
                    balance_command: str | None, allow_remote: bool, junit_path: str | None, report_path: str | None,
                    as_json: bool, lang: str) -> None:
    """Grade a host under test from its answers alone, one case per rule.

    Duplicates, reversals of unknown, overtaken and late originals, a status query in flight, a
    reversal of another amount, bad MACs (with --keys), malformed fields and a STAN wrap. Exit 0
    when every case that ran passed, 1 when any failed, 2 for bad input or an unreachable host.
    """
    target = _target(host_url, profile, keys_path, tid, timeout, balance_command, allow_remote)
    inputs.writable(junit_path, report_path)
    tr = Tr(lang, lib.PROFILES[profile].currency)
    with as_input_error(lib.ConformError):
        results = asyncio.run(_run(target))
    failed = any(r.verdict.status == lib.FAIL for r in results)
    if junit_path:
        Path(junit_path).write_text(junit_xml(results, host_url), encoding="utf-8")
    if report_path:
        Path(report_path).write_text(html_report(results, host_url, profile, tr), encoding="utf-8")
    if as_json:
        doc = {"host": host_url, "profile": profile, "passed": not failed,
               "cases": [r.as_dict() for r in results]}
        click.echo(json.dumps(doc, sort_keys=True))
    else:
        _print(Console(), results, host_url, profile, tr)
    sys.exit(1 if failed else 0)


def _target(host_url: str, profile: str, keys_path: str | None, tid: str | None, timeout: float,
            balance_command: str | None, allow_remote: bool) -> lib.Target:
    from possim.processes.keys import KeyFileError
    from possim.processes.keys import load as load_keys
    from possim.protocol.tcp import parse_address
    from possim.protocol.transports import TransportError

    with as_input_error(TransportError):
        host, port = parse_address(host_url)
    try:
        check_target(host, allow_remote)
    except LoadError:
        raise InputError(f"--host {host} is not a loopback address; pass --allow-remote to test it") from None
    key = None
    if keys_path is not None:
        with as_input_error(KeyFileError):
            ring = load_keys(Path(keys_path))
            tid = tid or min(ring.terminals)
            key = ring.mac_key(tid)
    tid = tid or lib.DEFAULT_TID
    inputs.tid(tid)
    if balance_command is not None and "{card}" not in balance_command:
        raise InputError("--balance-command: put {card} where the card number goes")
    return lib.Target(host, port, lib.PROFILES[profile], tid, key, timeout, balance_command)


async def _run(target: lib.Target) -> list[lib.CaseResult]:
    await lib.probe(target)
    return await lib.run_all(target)


def _rows(results: list[lib.CaseResult]) -> list[Row]:
    return [Row(r.case.id, str(r.case.rule), r.case.title, r.verdict.status, r.verdict.evidence, tuple(r.record.wire))
            for r in results]


def _labels(host_url: str, profile: str, tr: Tr) -> Labels:
    return Labels(tr("possim conform: {host} (profile {profile})", host=host_url, profile=tr.profile(profile)),
                  "conformance rule", f"possim conform {host_url}", "conform.rule", "ConformanceFailure")


def _print(con: Console, results: list[lib.CaseResult], host_url: str, profile: str, tr: Tr) -> None:
    gradebook.print_table(con, _rows(results), _labels(host_url, profile, tr), tr)


def junit_xml(results: list[lib.CaseResult], host_url: str) -> str:
    """JUnit XML: one testsuite, one testcase per case (``gradebook.junit_xml``)."""
    return gradebook.junit_xml(_rows(results), _labels(host_url, "", Tr("en")))


def html_report(results: list[lib.CaseResult], host_url: str, profile: str, tr: Tr) -> str:
    """A self-contained page: the verdict table, then each case's message sequence (``gradebook.html_report``)."""
    return gradebook.html_report(_rows(results), _labels(host_url, profile, tr), tr)

"""``possim conform``: drive an ISO 8583 host under test with crafted terminal messages and grade it."""

from __future__ import annotations

import asyncio
import html
import json
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import click
from rich.console import Console
from rich.table import Table

from possim import conform as lib
from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.i18n import Tr
from possim.load import LoadError, check_target

#: How a verdict is shown in the table.
_STYLE = {lib.PASS: "green", lib.FAIL: "bold red", lib.NOT_RUN: "yellow"}


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
    from possim.keys import KeyFileError
    from possim.keys import load as load_keys
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


def _print(con: Console, results: list[lib.CaseResult], host_url: str, profile: str, tr: Tr) -> None:
    table = Table(title=tr("possim conform: {host} (profile {profile})", host=host_url, profile=profile))
    table.add_column(tr("case"))
    table.add_column(tr("conformance rule"))
    table.add_column(tr("verdict"))
    table.add_column(tr("evidence"), overflow="fold")
    for r in results:
        style = _STYLE[r.verdict.status]
        evidence = tr(r.verdict.evidence) if r.verdict.status == lib.NOT_RUN else r.verdict.evidence
        table.add_row(r.case.id, f"{r.case.rule}. {tr(r.case.title)}", f"[{style}]{tr(r.verdict.status)}[/]",
                      evidence)
    con.print(table)
    counts = {s: sum(r.verdict.status == s for r in results) for s in (lib.PASS, lib.FAIL, lib.NOT_RUN)}
    con.print(tr("{passed} passed, {failed} failed, {not_run} not run", passed=counts[lib.PASS],
                 failed=counts[lib.FAIL], not_run=counts[lib.NOT_RUN]))


def junit_xml(results: list[lib.CaseResult], host_url: str) -> str:
    """JUnit XML: one testsuite, one testcase per case; a failure carries the evidence, a case not run is skipped."""
    failures = sum(r.verdict.status == lib.FAIL for r in results)
    skipped = sum(r.verdict.status == lib.NOT_RUN for r in results)
    elapsed = sum(_seconds(r) for r in results)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name=f"possim conform {host_url}", tests=str(len(results)),
                          failures=str(failures), errors="0", skipped=str(skipped), time=f"{elapsed:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"conform.rule{r.case.rule}", name=r.case.id,
                             time=f"{_seconds(r):.3f}")
        if r.verdict.status == lib.FAIL:
            failure = ET.SubElement(case, "failure", message=r.verdict.evidence, type="ConformanceFailure")
            failure.text = r.verdict.evidence
        elif r.verdict.status == lib.NOT_RUN:
            ET.SubElement(case, "skipped", message=r.verdict.evidence)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(_line(w) for w in r.record.wire)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _seconds(r: lib.CaseResult) -> float:
    return max((w.at for w in r.record.wire), default=0.0)


def _line(w: lib.Wire) -> str:
    arrow = "->" if w.direction == "sent" else "<-"
    fields = " ".join(f"{k}={v}" for k, v in w.fields.items())
    return f"{w.at:7.3f}s {arrow} [{w.step or '?'}] {w.mti} {fields}{f' ({w.note})' if w.note else ''}"


def html_report(results: list[lib.CaseResult], host_url: str, profile: str, tr: Tr) -> str:
    """A self-contained page: the verdict table, then each case's message sequence with decoded fields."""
    e = html.escape
    rows = "".join(
        f"<tr class='{r.verdict.status.replace(' ', '-')}'><td><a href='#{e(r.case.id)}'>{e(r.case.id)}</a></td>"
        f"<td>{r.case.rule}. {e(tr(r.case.title))}</td><td>{e(tr(r.verdict.status))}</td>"
        f"<td>{e(r.verdict.evidence)}</td></tr>" for r in results)
    sections = "".join(_section(r, tr) for r in results)
    title = e(tr("possim conform: {host} (profile {profile})", host=host_url, profile=profile))
    return (f"<!doctype html><html lang='{tr.lang}'><head><meta charset='utf-8'><title>{title}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;vertical-align:top}tr.pass td:nth-child(3){color:#070}tr.fail td:nth-child(3)"
            "{color:#b00;font-weight:bold}tr.not-run td:nth-child(3){color:#a60}code{font-size:90%}"
            f"</style></head><body><h1>{title}</h1><table><tr><th>{e(tr('case'))}</th>"
            f"<th>{e(tr('conformance rule'))}</th>"
            f"<th>{e(tr('verdict'))}</th><th>{e(tr('evidence'))}</th></tr>{rows}</table>{sections}</body></html>\n")


def _section(r: lib.CaseResult, tr: Tr) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{w.at:.3f}</td><td>{'&rarr;' if w.direction == 'sent' else '&larr;'} {e(tr(w.direction))}</td>"
        f"<td>{e(w.step or '?')}</td><td>{e(w.mti)}</td><td>{_fields_html(w.fields)}</td>"
        f"<td>{e(w.note or '')}</td></tr>" for w in r.record.wire)
    head = (f"<tr><th>s</th><th></th><th>{e(tr('step'))}</th><th>MTI</th><th>{e(tr('fields'))}</th>"
            f"<th>{e(tr('note'))}</th></tr>")
    body = f"<table>{head}{rows}</table>" if rows else f"<p>{e(tr('no messages'))}</p>"
    return (f"<h2 id='{e(r.case.id)}'>{e(r.case.id)}: {e(tr(r.verdict.status))}</h2>"
            f"<p>{e(tr(r.case.title))}</p><p>{e(r.verdict.evidence)}</p>{body}")


def _fields_html(fields: dict[str, Any]) -> str:
    return " ".join(f"<code>{html.escape(k)}={html.escape(str(v))}</code>" for k, v in fields.items())

"""The outputs of a graded run, shared by ``possim conform`` and ``possim certify``.

Both commands end with the same picture: one row per case (id, rule, verdict, one line of
evidence) and each case's messages on the wire. ``Row`` is that picture; each command turns its
own results into rows, and these functions write the console table, JUnit XML and the HTML page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table

from possim.i18n import Tr
from possim.judging.conform import FAIL, NOT_RUN, PASS, Wire

#: How a verdict is shown in the table.
_STYLE = {PASS: "green", FAIL: "bold red", NOT_RUN: "yellow"}


@dataclass(frozen=True, slots=True)
class Row:
    """One graded case. ``title`` is English (translated when shown); ``evidence`` quotes the wire
    and stays as it is, except the reason of a case not run, which is a catalogue string."""

    id: str
    rule: str
    title: str
    status: str
    evidence: str
    wire: tuple[Wire, ...]

    @property
    def seconds(self) -> float:
        return max((w.at for w in self.wire), default=0.0)


@dataclass(frozen=True, slots=True)
class Labels:
    """What a command calls its run and its rule column (English; translated when shown)."""

    title: str
    rule: str
    suite: str
    classname: str
    failure_type: str


def print_table(con: Console, rows: list[Row], labels: Labels, tr: Tr) -> None:
    table = Table(title=labels.title)
    table.add_column(tr("case"), overflow="fold")
    table.add_column(tr(labels.rule), overflow="fold")
    table.add_column(tr("verdict"))
    table.add_column(tr("evidence"), overflow="fold")
    for r in rows:
        evidence = tr(r.evidence) if r.status == NOT_RUN else r.evidence
        table.add_row(r.id, _rule(r, tr), f"[{_STYLE[r.status]}]{tr(r.status)}[/]", evidence)
    con.print(table)
    counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, NOT_RUN)}
    con.print(tr("{passed} passed, {failed} failed, {not_run} not run", passed=counts[PASS], failed=counts[FAIL],
                 not_run=counts[NOT_RUN]))


def _rule(r: Row, tr: Tr) -> str:
    return f"{r.rule}. {tr(r.title)}" if r.rule else tr(r.title)


def junit_xml(rows: list[Row], labels: Labels) -> str:
    """JUnit XML: one testsuite, one testcase per case; a failure carries the evidence, a case not run is skipped."""
    failures = sum(r.status == FAIL for r in rows)
    skipped = sum(r.status == NOT_RUN for r in rows)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name=labels.suite, tests=str(len(rows)), failures=str(failures),
                          errors="0", skipped=str(skipped), time=f"{sum(r.seconds for r in rows):.3f}")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"{labels.classname}{r.rule}", name=r.id,
                             time=f"{r.seconds:.3f}")
        if r.status == FAIL:
            failure = ET.SubElement(case, "failure", message=r.evidence, type=labels.failure_type)
            failure.text = r.evidence
        elif r.status == NOT_RUN:
            ET.SubElement(case, "skipped", message=r.evidence)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(wire_line(w) for w in r.wire)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def wire_line(w: Wire) -> str:
    arrow = "->" if w.direction == "sent" else "<-"
    fields = " ".join(f"{k}={v}" for k, v in w.fields.items())
    return f"{w.at:7.3f}s {arrow} [{w.step or '?'}] {w.mti} {fields}{f' ({w.note})' if w.note else ''}"


def html_report(rows: list[Row], labels: Labels, tr: Tr) -> str:
    """A self-contained page: the verdict table, then each case's message sequence with decoded fields."""
    e = html.escape
    body = "".join(
        f"<tr class='{r.status.replace(' ', '-')}'><td><a href='#{e(r.id)}'>{e(r.id)}</a></td>"
        f"<td>{e(_rule(r, tr))}</td><td>{e(tr(r.status))}</td>"
        f"<td>{e(r.evidence)}</td></tr>" for r in rows)
    sections = "".join(_section(r, tr) for r in rows)
    title = e(labels.title)
    return (f"<!doctype html><html lang='{tr.lang}'><head><meta charset='utf-8'><title>{title}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;vertical-align:top}tr.pass td:nth-child(3){color:#070}tr.fail td:nth-child(3)"
            "{color:#b00;font-weight:bold}tr.not-run td:nth-child(3){color:#a60}code{font-size:90%}"
            f"</style></head><body><h1>{title}</h1><table><tr><th>{e(tr('case'))}</th>"
            f"<th>{e(tr(labels.rule))}</th>"
            f"<th>{e(tr('verdict'))}</th><th>{e(tr('evidence'))}</th></tr>{body}</table>{sections}</body></html>\n")


def _section(r: Row, tr: Tr) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{w.at:.3f}</td><td>{'&rarr;' if w.direction == 'sent' else '&larr;'} {e(tr(w.direction))}</td>"
        f"<td>{e(w.step or '?')}</td><td>{e(w.mti)}</td><td>{_fields_html(w.fields)}</td>"
        f"<td>{e(w.note or '')}</td></tr>" for w in r.wire)
    head = (f"<tr><th>s</th><th></th><th>{e(tr('step'))}</th><th>MTI</th><th>{e(tr('fields'))}</th>"
            f"<th>{e(tr('note'))}</th></tr>")
    table = f"<table>{head}{rows}</table>" if rows else f"<p>{e(tr('no messages'))}</p>"
    return (f"<h2 id='{e(r.id)}'>{e(r.id)}: {e(tr(r.status))}</h2>"
            f"<p>{e(tr(r.title))}</p><p>{e(r.evidence)}</p>{table}")


def _fields_html(fields: dict[str, Any]) -> str:
    return " ".join(f"<code>{html.escape(k)}={html.escape(str(v))}</code>" for k, v in fields.items())

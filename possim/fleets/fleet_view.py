"""What a fleet run shows: totals first, groups and policies, the worst terminals, one terminal on demand.

A 500-terminal afternoon is 50,000 timeline rows, which nobody reads; the questions are
"how much money is at risk, under which policy, at which tills". So the console and the
HTML page lead with the fleet's totals, then per policy and per group when they differ,
then the ten terminals with the most money at risk; one terminal's timeline is shown when
asked for (``--terminal TID``), and the HTML page lists every terminal in a folded table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from possim.fleets.alerts import Alert
from possim.fleets.alerts import terminals as alert_terminals
from possim.fleets.fleet import COUNTS, FleetResult, TerminalLine
from possim.i18n import N_, Tr, group_text, resolve
from possim.judging.checker import DAMAGE, MEASURES, harmful
from possim.money.fleet_reconcile import FleetReconciliation
from possim.money.money import format_amount
from possim.protocol.events import Stamped
from possim.views import charts
from possim.views.console import balance_headline, measure, settlement_words, trace_table
from possim.views.lesson import story
from possim.views.timeline import rows

#: The columns of the worst-terminals table.
WORST = ("approved", "unknown", "reversed", *DAMAGE)


_EN = Tr("en")


def _cell(key: str, value: object, tr: Tr = _EN) -> str:
    shown = tr.money(str(value)) if key == "money_at_risk" or key.endswith("_loss") else str(value)
    return f"[bold red]{escape(shown)}[/]" if harmful(key, value) or _at_risk(key, value) else escape(shown)


def _at_risk(key: str, value: object) -> bool:
    return key == "money_at_risk" and value not in ("0.00", 0)


def summary(con: Console, result: FleetResult, failures: Sequence[str] = (), tr: Tr = _EN) -> None:
    """The fleet's verdict: totals, per policy (when they differ), per group, the worst terminals."""
    s = result.summary()
    con.print("[bold]" + escape(headline(result, tr)) + "[/]")
    for line in advice(result, tr):
        con.print(escape(line))
    con.print("[bold]" + escape(tr("policy {policy}: {terminals} terminals, {hosts} host(s)",
                                   policy=tr.policy(result.policy), terminals=len(result.terminals),
                                   hosts=result.hosts)
                                + ", " + tr("seed {seed}", seed=result.seed)) + "[/]")
    table = Table()
    table.add_column(tr("measure"))
    table.add_column(tr("whole fleet"), justify="right")
    for key in (*MEASURES, "money_at_risk"):
        table.add_row(_name(key, tr), _cell(key, s[key], tr))
    con.print(table)
    policies = result.by_policy()
    if len(policies) > 1:
        _breakdown(con, tr("per policy"), {tr.policy(p): v for p, v in policies.items()}, tr)
    groups = result.groups()
    if len(groups) > 1:
        _breakdown(con, tr("per group"), {f"{_group(result, g['group'], tr)} ({_policies(g['policy'], tr)})": g
                                          for g in groups}, tr)
    worst(con, result.worst(), tr)
    monitoring(con, result, tr)
    for line in failures:
        con.print(f"[bold red]{escape(tr('expectation failed:'))}[/] {escape(line)}")
    if not result.quiescent:
        con.print(f"[bold red]{escape(tr('run did not reach quiescence within the horizon'))}[/]")


def _breakdown(con: Console, title: str, parts: dict[str, dict[str, Any]], tr: Tr) -> None:
    table = Table(title=title)
    table.add_column("")
    for name in parts:
        table.add_column(escape(name), justify="right")
    for key in ("terminals", *COUNTS, "money_at_risk"):
        table.add_row(_name(key, tr), *(_cell(key, part[key], tr) for part in parts.values()))
    con.print(table)


def worst(con: Console, lines: list[TerminalLine], tr: Tr = _EN) -> None:
    """The terminals with the most money at risk, or one line saying there are none."""
    if not lines:
        con.print(tr("no terminal has money at risk or damage"))
        return
    table = Table(title=tr("the 10 worst terminals (by money at risk)"))
    for col in ("terminal", "group", "policy", *WORST, "money_at_risk"):
        table.add_column(tr(col) if col in ("terminal", "group", "policy") else _name(col, tr),
                         justify="left" if col in ("terminal", "policy") else "right")
    for line in lines:
        table.add_row(line.tid, str(line.group + 1), tr.policy(line.policy),
                      *(_cell(k, line.counts.get(k, 0), tr) for k in WORST),
                      _cell("money_at_risk", format_amount(line.at_risk), tr))
    con.print(table)


def events_of(result: FleetResult, tid: str) -> list[Stamped]:
    """One terminal's events (its messages both ways, its faults, the host's work on its keys)."""
    if result.trace is None:
        return []
    return [s for s in result.trace.records if getattr(s.event, "tid", None) == tid]


def timeline(con: Console, result: FleetResult, tid: str, limit: int = 400, tr: Tr = _EN) -> None:
    """The three-column timeline of one terminal of the fleet."""
    title = tr("terminal {tid} of {scenario} - policy {policy}, seed {seed}", tid=tid, scenario=result.scenario.name,
               policy=tr.policy(result.policy), seed=result.seed)
    trace_table(con, events_of(result, tid), title, limit, tr)


def compare(con: Console, results: Sequence[FleetResult], tr: Tr = _EN) -> None:
    """Policies side by side over the same fleet and faults, money at risk last."""
    first = results[0]
    table = Table(title=tr("{scenario}: {terminals} terminals, same faults, seed {seed}", scenario=first.scenario.name,
                           terminals=len(first.terminals), seed=first.seed))
    table.add_column(tr("measure"))
    for r in results:
        table.add_column(tr.policy(r.policy), justify="right")
    summaries = [r.summary() for r in results]
    for key in (*MEASURES, "money_at_risk"):
        cells = [_cell(key, s[key], tr) if harmful(key, s[key]) or _at_risk(key, s[key])
                 else f"[green]{_cell(key, s[key], tr)}[/]" if key in DAMAGE else _cell(key, s[key], tr)
                 for s in summaries]
        table.add_row(_name(key, tr), *cells)
    table.add_row(tr("terminals at risk"), *(str(sum(1 for line in r.terminals if line.at_risk)) for r in results))
    con.print(table)


# -- HTML ------------------------------------------------------------------------------------

_STYLE = """body{font:14px "Liberation Sans",Arial,"Noto Sans CJK SC",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:2px 5px;text-align:right}th{font-size:12px;overflow-wrap:anywhere}
td:first-child,th:first-child{text-align:left}
.bad{color:#b00;font-weight:bold}details{margin:.8em 0}summary{cursor:pointer;font-weight:bold}
.headline{font-size:19px;font-weight:700;margin:0 0 6px}.point{border:2px solid #b42318;padding:8px 12px}
input{margin:.4em 0;padding:2px 6px}
svg.chart{width:100%;max-width:760px;height:auto;display:block;margin:.4em 0}svg.chart text{fill:#1b1f24}
svg.heat a:focus rect,svg.heat a:hover rect{stroke:#000;stroke-width:2}
.small{display:inline-block;width:560px;max-width:100%;vertical-align:top;margin:0 12px 12px 0}
.small:target{outline:3px solid #1b1f24}"""

_FILTER = """<script>function flt(q){q=q.toUpperCase();for(const r of document.querySelectorAll('#all tbody tr'))
r.style.display=r.cells[0].textContent.toUpperCase().includes(q)?'':'none'}
function opentarget(){const e=location.hash&&document.getElementById(location.hash.slice(1));if(!e)return;
const d=e.closest('details');if(d)d.open=true;e.scrollIntoView({block:'center'})}
window.addEventListener('hashchange',opentarget);window.addEventListener('load',opentarget)</script>"""

#: The per-terminal bars of a terminal's own small chart.
SMALL = ("approved", "unknown", "reversed", "orphaned_debits", "double_debits", "phantom_approvals",
         "pending_reversals")
#: At most this many terminals get a small chart of their own (the worst first).
SMALL_CHARTS = 60


def _td(key: str, value: object, tr: Tr) -> str:
    bad = harmful(key, value) or (key == "money_at_risk" and value != "0.00")
    shown = tr.money(str(value)) if _is_money(key) else str(value)
    return f"<td{' class=bad' if bad else ''}>{html.escape(shown)}</td>"


def _is_money(key: str) -> bool:
    return key == "money_at_risk" or key.endswith("_loss")


def _table(header: Sequence[str], body: list[list[tuple[str, object]]], ident: str = "", cls: str = "",
           tr: Tr = _EN) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = "".join("<tr>" + "".join(_td(k, v, tr) for k, v in row) + "</tr>" for row in body)
    attrs = (f" id={ident}" if ident else "") + (f" class={cls}" if cls else "")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>"


def _name(key: str, tr: Tr) -> str:
    return tr(N_("money at risk")) if key == "money_at_risk" else measure(key, tr)


def _group(result: FleetResult, name: str, tr: Tr) -> str:
    """A group's name in the reader's language (the scenario's translation, if it has one)."""
    return group_text(result.scenario.name, name, tr.lang)


def _policies(names: str, tr: Tr) -> str:
    """``"none,reversal"`` (a group's policies) in the reader's words."""
    return "、".join(tr.policy(p) for p in names.split(",")) if tr.lang != "en" else names


def advice(result: FleetResult, tr: Tr) -> list[str]:
    """Why the fleet's money is at risk and what fixes it, from its counts: the lesson a fleet box owes
    the trainer (the policies' comparison is ``possim compare``)."""
    c = result.verdict.counts
    out = []
    if c["orphaned_debits"]:
        out.append(tr("Why: {n} sales timed out after the bank had taken the money, and the terminals did "
                      "nothing about it: the customer was told the sale failed.", n=c["orphaned_debits"])
                   if result.policy == "none" else
                   tr("Why: {n} sales timed out after the bank had taken the money and were not recovered "
                      "before the run ended.", n=c["orphaned_debits"]))
    if c["double_debits"]:
        out.append(tr("Why: {n} customers paid again after a sale that had gone through.", n=c["double_debits"]))
    if c["phantom_approvals"]:
        out.append(tr("Why: {n} terminals showed APPROVED for money the bank never took.", n=c["phantom_approvals"]))
    if out:
        out.append(tr("What fixes it: run the terminals with automatic reversal (冲正) or a status query (查询) then "
                      "reversal; possim compare {scenario} shows each policy's money at risk.",
                      scenario=result.scenario.name))
    return out


def headline(result: FleetResult, tr: Tr) -> str:
    """The point of a fleet run in one sentence: how many tills put how much money at risk."""
    hurt = sum(1 for line in result.terminals if line.at_risk)
    if not hurt:
        return tr("Nobody lost money: all {total} terminals and the bank agree on every sale (policy {policy}).",
                  total=len(result.terminals), policy=tr.policy(result.policy))
    return tr("{hurt} of {total} terminals put {amount} of customers' and the merchant's money at risk under "
              "policy {policy}.", hurt=hurt, total=len(result.terminals), amount=tr.money(result.money_at_risk),
              policy=tr.policy(result.policy))


def _money_chart(results: Sequence[FleetResult], tr: Tr) -> str:
    """Money at risk per policy as bars, one bar when the page has one policy."""
    axes = charts.Axes(tr("money at risk per policy"), tr("policy"),
                       tr("money at risk ({currency})", currency=tr.money(0).replace("0.00", "").strip()),
                       top=44, bottom=66)
    return charts.bar_chart([tr.policy(r.policy) for r in results], [r.money_at_risk / 100 for r in results], axes,
                            [tr.money(r.money_at_risk) for r in results])


def _over_time(result: FleetResult, tr: Tr) -> str:
    """Orphaned debits (at their sale's start) and response timeouts, summed over run time, with the
    scenario's partitions and the hosts' crashes hatched: when the money went wrong, and why."""
    m = result.marks
    orphans = sorted(m.started[f.txn] for f in result.verdict.findings
                     if f.finding in ("orphaned_debit", "orphaned_wallet_charge") and f.txn is not None
                     and f.txn in m.started)
    series = [charts.Series(tr("orphaned debits"), [(t, i + 1) for i, t in enumerate(orphans)]),
              charts.Series(tr("response timeouts"), [(t, i + 1) for i, t in enumerate(sorted(m.timeouts))])]
    windows = [charts.Window(a, b, tr("partition")) for a, b in m.partitions]
    windows += [charts.Window(a, b, tr("host crash")) for a, b in m.crashes]
    end = max([result.end_time, *(b for _, b in m.partitions)])
    axes = charts.Axes(tr("orphaned debits and timeouts over time"), tr("run time (s)"), tr("count (running total)"),
                       bottom=80)
    return charts.step_chart(series, windows, end, axes)


def _damage(line: TerminalLine) -> int:
    return sum(line.counts.get(k, 0) for k in DAMAGE)


def _heat(result: FleetResult, index: int, tr: Tr) -> tuple[str, str]:
    """Every terminal as a cell, worst first; a hurt terminal's cell links to its own small chart."""
    ranked = result.worst(len(result.terminals))
    hurt = {t.tid for t in ranked}
    ordered = ranked + [t for t in result.terminals if t.tid not in hurt]
    own = ranked[:SMALL_CHARTS]
    cells = [charts.Cell(t.at_risk or (0.5 if _damage(t) else 0), tr("{tid}: {amount} at risk", tid=t.tid,
                                                                      amount=tr.money(t.at_risk)),
                         f"#p{index}-{t.tid}" if t in own else "") for t in ordered]
    axes = charts.Axes(tr("terminals by money at risk, worst first"),
                       tr("one cell per terminal; click a hatched cell for its chart"), "", left=8, right=8,
                       top=30)
    strip = charts.heat_strip(cells, axes, 50, (tr("money at risk or damage"), tr("none")))
    small = "".join(f"<div class=small id='p{index}-{html.escape(t.tid)}'>" + charts.bar_chart(
        [_name(k, tr) for k in SMALL], [t.counts.get(k, 0) for k in SMALL],
        charts.Axes(tr("terminal {tid}: {amount} at risk", tid=t.tid, amount=tr.money(t.at_risk)), tr("measure"),
                    tr("sales"), width=560, height=260, top=40, bottom=66)) + "</div>" for t in own)
    if small:
        title = tr("charts of the {n} worst terminals", n=len(own))
        small = f"<details class=smalls><summary>{html.escape(title)}</summary>{small}</details>"
    return strip, small


def _section(result: FleetResult, detail: str | None, tr: Tr, index: int = 0) -> str:
    s = result.summary()
    keys = (*MEASURES, "money_at_risk")
    heading = tr("policy {policy}: {terminals} terminals, {hosts} host(s)", policy=tr.policy(result.policy),
                 terminals=len(result.terminals), hosts=result.hosts)
    strip, small = _heat(result, index, tr)
    parts = [f"<h2>{html.escape(heading)}</h2>", _over_time(result, tr), strip, small,
             _table([tr("measure"), tr("whole fleet")], [[("", _name(k, tr)), (k, s[k])] for k in keys], tr=tr)]
    groups = result.groups()
    if len(groups) > 1:
        parts.append(f"<h3>{html.escape(tr('per group'))}</h3>" + _table(
            [tr("group"), tr("policy"), tr("terminals"), *(_name(k, tr) for k in COUNTS), _name("money_at_risk", tr)],
            [[("", _group(result, g["group"], tr)), ("", _policies(g["policy"], tr)), ("", g["terminals"]),
              *((k, g[k]) for k in COUNTS), ("money_at_risk", g["money_at_risk"])] for g in groups], tr=tr))
    parts.append(monitoring_html(result, tr))
    ranked = result.worst(len(result.terminals))
    hurt = {t.tid for t in ranked}
    every = tr("every terminal ({n}), worst first", n=len(result.terminals))
    parts.append(f"<h3>{html.escape(tr('the 10 worst terminals'))}</h3>" + _terminal_table(ranked[:10], tr))
    parts.append(f"<details><summary>{html.escape(every)}</summary>"
                 f"<input placeholder='{html.escape(tr('filter by terminal id'))}' oninput='flt(this.value)'>"
                 + _terminal_table(ranked + [t for t in result.terminals if t.tid not in hurt], tr, "all")
                 + "</details>")
    if detail:
        events = rows(events_of(result, detail), tr)
        title = tr("terminal {tid}: {n} events", tid=detail, n=len(events))
        parts.append(f"<details open><summary>{html.escape(title)}</summary>"
                     + _table([tr("t (s)"), tr("terminal"), tr("network"), tr("host")],
                              [[("", f"{t:.3f}"), ("", a), ("", b), ("", c)] for t, a, b, c in events], tr=tr)
                     + "</details>")
    return "\n".join(parts)


def _terminal_table(lines: list[TerminalLine], tr: Tr, ident: str = "") -> str:
    return _table([tr("terminal"), tr("group"), tr("policy"), *(_name(k, tr) for k in WORST),
                   _name("money_at_risk", tr)],
                  [[("", t.tid), ("", t.group + 1), ("", tr.policy(t.policy)),
                    *((k, t.counts.get(k, 0)) for k in WORST), ("money_at_risk", format_amount(t.at_risk))]
                   for t in lines], ident, tr=tr)


def _point(result: FleetResult, tr: Tr) -> str:
    """The headline and the money, above the fold: what a trainer says first."""
    s = result.summary()
    money = _table([tr("measure"), tr("whole fleet")],
                   [[("", _name(k, tr)), (k, s[k])] for k in ("money_at_risk", "orphaned_debits", "double_debits",
                                                               "phantom_approvals", "customer_loss", "merchant_loss")],
                   cls="money", tr=tr)
    why = "".join(f"<p>{html.escape(line)}</p>" for line in advice(result, tr))
    return f"<section class=point><p class=headline>{html.escape(headline(result, tr))}</p>{why}{money}</section>"


def render(results: Sequence[FleetResult], title: str, detail: str | None = None, lang: str | None = None) -> str:
    """One self-contained HTML page: the point, a comparison of money at risk, then each policy's fleet summary."""
    first = results[0]
    tr = Tr(resolve(lang), first.scenario.model.terminal.currency)
    heading, description = story(first.scenario, tr.lang)
    title = title.replace(first.scenario.model.title, heading)
    top = ""
    if len(results) > 1:
        top = f"<h2>{html.escape(tr('money at risk per policy'))}</h2>" + _table(
            [tr("policy"), _name("money_at_risk", tr), tr("terminals at risk"),
             *(_name(k, tr) for k in ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals"))],
            [[("", tr.policy(r.policy)), ("money_at_risk", format_amount(r.money_at_risk)),
              ("", sum(1 for t in r.terminals if t.at_risk)),
              *((k, r.verdict.counts[k]) for k in ("orphaned_debits", "double_debits", "phantom_approvals",
                                                   "pending_reversals"))] for r in results], tr=tr)
    body = _money_chart(results, tr) + top + "".join(_section(r, detail, tr, i) for i, r in enumerate(results))
    return (f"<!doctype html><html lang={tr.html_lang}><head><meta charset=utf-8>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{_FILTER}</head><body>"
            f"<h1>{html.escape(title)}</h1>{_point(first, tr)}<p>{html.escape(description)}</p>{body}</body></html>")


def fleet_json(result: FleetResult) -> dict[str, Any]:
    return result.fleet_json()


# -- end-of-day reconciliation of a fleet -----------------------------------------------------

def reconciliation(con: Console, rec: FleetReconciliation, tr: Tr = _EN, limit: int = 10) -> None:
    """对账 for a fleet: balanced or not, the totals of the fleet and of each group, then the
    terminals that do not balance, the most money first (every line: ``--json``)."""
    whole, result = rec.whole, rec.result
    balance_headline(con, whole, tr)
    con.print("[bold]" + escape(tr("End-of-day reconciliation")) + "[/] - " + escape(
        tr("policy {policy}: {terminals} terminals, {hosts} host(s)", policy=tr.policy(result.policy),
           terminals=len(result.terminals), hosts=result.hosts) + ", " + tr("seed {seed}", seed=result.seed)))
    table = Table()
    table.add_column("")
    for col in ("terminal batch (approved sales)", settlement_words(whole)["settled"], "difference", "fees",
                "merchant net", "charged without a sale", "goods given away"):
        table.add_column(tr(col), justify="right")
    for name, part in [(tr("whole fleet"), whole), *((_group(result, n, tr), p) for n, p in rec.groups.items())]:
        gap = part.settled_total - part.batch_total
        table.add_row(escape(name), f"{part.batch_count} / {tr.money(part.batch_total)}",
                      f"{part.settled_count} / {tr.money(part.settled_total)}", _red(tr.money(gap), bool(gap)),
                      tr.money(part.fees_total), tr.money(part.merchant_net),
                      _red(tr.money(part.customer_charged_without_sale), bool(part.customer_charged_without_sale)),
                      _red(tr.money(part.merchant_goods_given_away), bool(part.merchant_goods_given_away)))
    con.print(table)
    if rec.reversals_without_original:
        con.print(tr("reversals without an original: {n} (they move no money)", n=rec.reversals_without_original))
    unbalanced = rec.terminals()
    if not unbalanced:
        con.print(tr("every terminal balances"))
        return
    worst = Table(title=tr("terminals that do not balance: {n} (the {shown} with the most money first)",
                           n=len(unbalanced), shown=min(limit, len(unbalanced))))
    for col in ("terminal", "group", "mismatches", "charged without a sale", "goods given away"):
        worst.add_column(tr(col), justify="right" if col in ("mismatches",) or "without" in col or "goods" in col
                         else "left")
    for t in unbalanced[:limit]:
        worst.add_row(t.tid, escape(_group(result, t.group, tr)), str(t.mismatches),
                      _red(tr.money(t.customer_charged_without_sale), bool(t.customer_charged_without_sale)),
                      _red(tr.money(t.merchant_goods_given_away), bool(t.merchant_goods_given_away)))
    con.print(worst)
    con.print(tr("every sale, fee and mismatch: --json"))


def _red(text: str, alarm: bool) -> str:
    return f"[bold red]{escape(text)}[/]" if alarm else escape(text)


# -- monitoring: terminals over the alert thresholds (possim.fleets.alerts) ----------------------------

#: How many alerts a view lists before pointing at ``--json`` (the HTML page folds the rest).
ALERTS_SHOWN = 10


def _alert_text(alert: Alert, tr: Tr) -> str:
    what = tr(N_("timeouts")) if alert.measure == "timeouts" else measure(alert.measure, tr)
    return tr("terminal {tid}: {count} {what} (threshold {threshold})", tid=alert.tid, count=alert.count, what=what,
              threshold=alert.threshold)


def monitoring(con: Console, result: FleetResult, tr: Tr = _EN) -> None:
    """One line per terminal over a threshold, the orphaned debits first, or one line saying none is."""
    found = result.alerts()
    thresholds = result.scenario.thresholds()
    if not found:
        con.print(tr("monitoring: no terminal reached {timeouts} timeouts or {orphans} orphaned debit(s)",
                     timeouts=thresholds.timeouts, orphans=thresholds.orphaned_debits))
        return
    con.print("[bold red]" + escape(tr("monitoring: {n} alert(s) on {terminals} terminal(s)", n=len(found),
                                       terminals=len(alert_terminals(found)))) + "[/]")
    for alert in found[:ALERTS_SHOWN]:
        con.print("  " + escape(_alert_text(alert, tr)))
    if len(found) > ALERTS_SHOWN:
        con.print("  " + escape(tr("... and {n} more: --json lists every alert", n=len(found) - ALERTS_SHOWN)))


def monitoring_html(result: FleetResult, tr: Tr) -> str:
    """The alerts as a section of the fleet page, every one of them."""
    found = result.alerts()
    heading = f"<h3>{html.escape(tr('monitoring alerts'))}</h3>"
    if not found:
        return heading + f"<p>{html.escape(tr('no terminal reached an alert threshold'))}</p>"
    items = "".join(f"<li class=bad>{html.escape(_alert_text(a, tr))}</li>" for a in found)
    return heading + f"<ul>{items}</ul>"

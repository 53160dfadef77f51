"""A self-contained HTML report: the point first, then the message sequence chart, verdict, ledger.

Trainers put it on a projector in front of merchants, so the page opens with the headline
(who lost how much and why), the money and what the merchant should do
(:mod:`possim.views.lesson`); the chart explains it below. A long run (many sales) opens with a
summary and its worst transactions as links into the chart, which stays one click away in
a collapsed ``<details>``.

The chart is laid out so no two labels overlap at any width: every row is as tall as its
longest wrapped label, each label has a column of its own (time | terminal | between the
lanes | host), the text between the lanes of a row is the arrow label *or* the network
event *or* the timeout, never two of them, and a long silence gets its own band. Labels
wrap to their column; past three lines they are abbreviated, the full text on hover.
The SVG scales to the page (``viewBox``), so 1024 px projectors show all of it.

Nothing is fetched from a network: CSS, SVG and the step-through script are inline. The
step-through reveals a message when it lands or dies, so a lost arrow and its cross appear
at the step that says LOST, never before.
"""

from __future__ import annotations

import html
import json
import unicodedata
from collections.abc import Sequence as Seq
from dataclasses import dataclass

from possim.i18n import Tr
from possim.judging.checker import DAMAGE, OPTIONAL, shown_measures
from possim.judging.reconcile import Mismatch, Reconciliation
from possim.money.fees import say
from possim.protocol import events as ev
from possim.running.rig import RunResult
from possim.views.console import alarm, instrument, measure, settlement_words, wallet_only
from possim.views.lesson import WALLET_FINDINGS, Case, Point, clock, money_words, point, story, tr_for
from possim.views.msc import (
    HOST,
    HOST_DOWN,
    IN_FLIGHT,
    NETWORK,
    TERMINAL,
    TERMINAL_OFF,
    WALLET,
    Arrow,
    Sequence,
    Step,
    build,
)
from possim.views.timeline import note

LINE, PAD, GAP_BAND, TOP = 15, 7, 20, 44
WIDTH = 1060
TIME_END, FONT = 66, 12.0
MAX_LINES = 3
LONG_RUN = 150  # steps: beyond this the chart is folded away behind the summary
COLOURS = {"financial": "#1f6feb", "reversal": "#d97706", "query": "#7c3aed", "advice": "#0d9488",
           "wallet": "#0a7f5a"}


@dataclass(frozen=True)
class Lanes:
    """Where each lifeline stands and the text column each label owns (x from, x to).

    Three lifelines (terminal | network | acquirer host) for card runs; a run with wallet
    payments adds the wallet's, right of the host, and every column narrows to make room.
    """

    x: dict[str, float]
    columns: dict[str, tuple[float, float]]

    @classmethod
    def of(cls, wallet: bool) -> Lanes:
        if not wallet:
            x = {TERMINAL: 350.0, NETWORK: 555.0, HOST: 760.0}
            return cls(x, {TERMINAL: (TIME_END + 6, x[TERMINAL] - 10), "middle": (x[TERMINAL] + 12, x[HOST] - 12),
                           HOST: (x[HOST] + 10, WIDTH - 4)})
        x = {TERMINAL: 300.0, NETWORK: 460.0, HOST: 620.0, WALLET: 840.0}
        return cls(x, {TERMINAL: (TIME_END + 6, x[TERMINAL] - 10), "middle": (x[TERMINAL] + 12, x[HOST] - 12),
                       HOST: (x[HOST] + 10, x[WALLET] - 10), WALLET: (x[WALLET] + 10, WIDTH - 4)})
LOST = "#b42318"

CSS = """
body{font-family:"Liberation Sans",Arial,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:16px 20px;
color:#1b1f24;max-width:1100px}
h1{font-size:20px;margin:0 0 6px} h2{font-size:17px;margin:22px 0 8px}
.point{border:2px solid #b42318;border-radius:6px;padding:10px 14px;margin:0 0 12px;background:#fff5f4}
.point.good{border-color:#1a7f37;background:#f3fbf4}
.headline{font-size:21px;font-weight:700;margin:0 0 8px;line-height:1.3}
.money{font-size:15px} .money td.num{font-weight:700}
.point ol{margin:6px 0 0;padding-left:22px;line-height:1.4} p.story{max-width:820px;line-height:1.45}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px} td,th{border:1px solid #d0d7de;padding:3px 8px}
th{background:#f6f8fa;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.bad{color:#b42318;font-weight:600} td.ok{color:#1a7f37}
.controls{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #d0d7de;z-index:2}
.controls button{font-size:14px;margin-right:6px;padding:4px 10px}
.caption{display:block;margin-top:4px;font-size:14px;overflow-wrap:anywhere}
svg.msc{width:100%;height:auto;display:block}
svg text{font-size:12px} svg .lane{font-weight:700;font-size:14px}
.future{opacity:.12} .current text{font-weight:700}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:22px;height:3px;vertical-align:middle;margin-right:4px}
details.chart>summary{cursor:pointer;font-size:15px;font-weight:600;margin:10px 0}
svg.chart{width:100%;max-width:760px;height:auto;display:block;margin:6px 0 12px}svg.chart text{fill:#1b1f24}
"""

JS = """
(function(){
  var words = JSON.parse(document.getElementById('words').textContent);
  document.querySelectorAll('section.run').forEach(function(sec){
    var steps = JSON.parse(sec.querySelector('script.steps').textContent);
    var cur = steps.length - 1;
    var cap = sec.querySelector('.caption');
    function show(){
      sec.querySelectorAll('[data-step]').forEach(function(el){
        var s = parseInt(el.getAttribute('data-step'), 10);
        el.classList.toggle('future', s > cur);
        el.classList.toggle('current', s === cur);
      });
      var st = steps[cur];
      cap.textContent = words.step.replace('{n}', cur + 1).replace('{total}', steps.length) + ' | t = ' + st.t +
        ' s | ' + st.lane + ': ' + st.text;
    }
    function go(n){ cur = Math.max(0, Math.min(steps.length - 1, n)); show(); }
    sec.querySelector('.first').addEventListener('click', function(){go(0);});
    sec.querySelector('.prev').addEventListener('click', function(){go(cur - 1);});
    sec.querySelector('.next').addEventListener('click', function(){go(cur + 1);});
    sec.querySelector('.last').addEventListener('click', function(){go(steps.length - 1);});
    sec.addEventListener('keydown', function(e){
      if (e.key === 'ArrowRight') { go(cur + 1); }
      if (e.key === 'ArrowLeft') { go(cur - 1); }
    });
    show();
  });
  function openTarget(){
    var el = location.hash && document.getElementById(location.hash.slice(1));
    if (!el) { return; }
    var d = el.closest('details');
    if (d) { d.open = true; }
    el.scrollIntoView({block: 'center'});
  }
  window.addEventListener('hashchange', openTarget);
  openTarget();
})();
"""


def render(results: Seq[RunResult], title: str, lang: str | None = None) -> str:
    """One page: the point, the story, then each run (chart, verdict, ledger, money); several runs side by side."""
    first = results[0]
    tr = tr_for(first, lang)
    heading, description = story(first.scenario, tr.lang)
    title = title.replace(first.scenario.model.title, heading)  # the scenario's title in the reader's language
    parts = [f"<h1>{_e(title)}</h1>", _point(point(first, tr), tr, first, len(results) > 1)]
    if len(results) > 1:
        parts.append(_comparison(results, tr))
    parts.append(f"<p class='story'>{_e(description)}</p>")
    parts.extend(_run_section(result, i, tr) for i, result in enumerate(results))
    words = {"step": tr("step {n} of {total}")}
    return (f"<!DOCTYPE html><html lang='{tr.html_lang}'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{''.join(parts)}"
            f"<script type='application/json' id='words'>{_json(words)}</script>"
            f"<script>{JS}</script></body></html>")


@dataclass(frozen=True)
class Parts:
    """One run's pieces of the report, each a fragment of HTML, for a page that lays them out itself
    (``possim lab`` puts two runs side by side and replaces them as the trainer edits the faults)."""

    title: str
    point: str
    story: str
    chart: str
    verdict: str
    ledger: str
    reconciliation: str


def parts(result: RunResult, lang: str | None = None, index: int = 0, compared: bool = False) -> Parts:
    """The report of one run in pieces, rendered exactly as :func:`render` renders them."""
    tr = tr_for(result, lang)
    heading, description = story(result.scenario, tr.lang)
    return Parts(heading, _point(point(result, tr), tr, result, compared), f"<p class='story'>{_e(description)}</p>",
                 _chart(build(result.trace.records, tr), tr, index), _verdict(result, tr), _ledger(result, tr),
                 _money(result, tr))


def render_trace(records: Seq[ev.Stamped], title: str, rows: Seq[tuple[str, str]], lang: str | None = None) -> str:
    """One page for a trace file alone (no scenario to re-run, as from ``possim proxy``): the
    message sequence chart of its events and ``rows`` (label, value: the verdict read from it)."""
    tr = Tr(lang or "en")
    table = "".join(f"<tr><th>{_e(k)}</th><td class='num'>{_e(v)}</td></tr>" for k, v in rows)
    return (f"<!DOCTYPE html><html lang='{tr.html_lang}'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
            f"<table>{table}</table><section class='run' tabindex='0' id='run-0'>{_chart(build(records, tr), tr, 0)}"
            f"</section><script type='application/json' id='words'>{_json({'step': tr('step {n} of {total}')})}"
            f"</script><script>{JS}</script></body></html>")


def _point(p: Point, tr: Tr, result: RunResult, compared: bool) -> str:
    """The headline, the money and the remedy: what a merchant must take home from this run."""
    who = tr("Policy {policy}:", policy=tr.policy(result.policy, wallet_only(result))) if compared else ""
    money = "".join(f"<tr><th>{_e(k)}</th><td class='num'>{_e(v)}</td></tr>" for k, v in p.money)
    actions = "".join(f"<li>{_e(a)}</li>" for a in p.actions)
    return (f"<section class='point{' good' if p.good else ''}' id='point'>"
            f"<p class='headline'>{_e(who + ' ' if who else '')}{_e(p.headline)}</p>"
            f"<table class='money'>{money}</table>{_counter(p, tr, result)}"
            f"<div class='todo'><b>{_e(tr('What the merchant should do'))}</b><ol>{actions}</ol></div></section>")


def _counter(p: Point, tr: Tr, result: RunResult) -> str:
    """The wallet payment at the counter, two lanes: the till's screen and the customer's phone, at the
    clock time the cashier lives (``lesson.clock``)."""
    if not p.counter:
        return ""
    phone = tr("the customer's phone shows")
    head = (f"<tr><th>{_e(tr('time'))}</th><th>{_e(tr('the till shows'))}</th>"
            f"<th>{_e(phone)}</th></tr>")
    body = "".join(f"<tr><td class='num'>{clock(result, t)}</td><td>{_e(till)}</td><td>{_e(phone)}</td></tr>"
                   for t, till, phone in p.counter)
    return f"<table class='counter'><caption>{_e(tr('At the counter'))}</caption>{head}{body}</table>"


def _run_section(result: RunResult, index: int, tr: Tr) -> str:
    seq = build(result.trace.records, tr)
    chart = _chart(seq, tr, index)
    if len(seq.steps) > LONG_RUN:
        show_all = tr("Show the full sequence chart ({n} steps)", n=len(seq.steps))
        chart = (_summary(result, seq, tr, index) + f"<details class='chart'><summary>{_e(show_all)}</summary>"
                 f"{chart}</details>")
    heading = tr("Policy {policy} (seed {seed}, {transport})", policy=tr.policy(result.policy, wallet_only(result)),
                 seed=result.seed,
                 transport=tr.transport(result.transport))
    return (f"<section class='run' tabindex='0' id='run-{index}'><h2>{_e(heading)}</h2>{chart}"
            f"<h2>{_e(tr('Checker verdict'))}</h2>{_verdict(result, tr)}"
            f"<h2>{_e(tr('Card accounts at the bank'))}</h2>{_ledger(result, tr)}"
            f"<h2>{_e(tr('Reconciliation'))}</h2>{_money(result, tr)}</section>")


def _chart(seq: Sequence, tr: Tr, index: int) -> str:
    """The step-through controls, the legend, the chart and its steps (for the script)."""
    lanes = {TERMINAL: tr("terminal"), NETWORK: tr("network"), HOST: tr("host"), WALLET: tr("wallet")}
    steps = [{"t": round(s.t, 3), "lane": lanes[s.lane], "text": s.text} for s in seq.steps] or \
        [{"t": 0, "lane": "-", "text": tr("nothing happened")}]
    start, prev, nxt, last = tr("start"), tr("previous"), tr("next"), tr("all")
    return (f"<div class='controls'><button class='first'>&laquo; {_e(start)}</button>"
            f"<button class='prev'>&#x25C0; {_e(prev)}</button>"
            f"<button class='next'>{_e(nxt)} &#x25B6;</button>"
            f"<button class='last'>{_e(last)} &raquo;</button><span class='caption'></span></div>"
            f"{_legend(tr, seq.has_wallet)}{_svg(seq, tr, index)}"
            f"<script type='application/json' class='steps'>{_json(steps)}</script>")


def _summary(result: RunResult, seq: Sequence, tr: Tr, index: int) -> str:
    """A long run: totals and the damaged transactions, each a link to its step in the chart."""
    s = result.verdict.summary()
    totals = tr("{transactions} sales: {approved} approved, {declined} declined, {failed} failed, {unknown} unknown, "
                "{reversed} reversed.", **{k: s[k] for k in ("transactions", "approved", "declined", "failed",
                                                                "unknown", "reversed")})
    from possim.views.lesson import cases

    items = []
    for case in cases(result, tr)[:20]:
        step = _step_of(seq, case.stan)
        text = _case_text(case, tr)
        link = f"<a href='#run-{index}-step-{step}'>{_e(text)}</a>" if step is not None else _e(text)
        items.append(f"<li>{link}</li>")
    worst = f"<p><b>{_e(tr('The worst transactions'))}</b></p><ol>{''.join(items)}</ol>" if items else ""
    return f"<div class='summary'><p>{_e(totals)}</p>{worst}</div>"


def _case_text(case: Case, tr: Tr) -> str:
    """A damaged transaction as the acquirer finds it: a card sale by STAN and RRN, a wallet payment by its
    merchant order number and the wallet's trade number (``Case.stan`` and ``Case.rrn`` hold those)."""
    if case.finding in WALLET_FINDINGS:
        return tr("{finding}: txn {txn}, order no. {order}, wallet trade no. {trade_no}, {amount}, {when} "
                  "(t = {t} s in the chart)", finding=tr(case.finding.replace("_", " ")), txn=case.txn or "-",
                  order=case.stan, trade_no=case.rrn or "-", amount=tr.money(case.amount), when=case.at,
                  t=f"{case.t:.3f}")
    return tr("{finding}: txn {txn}, STAN {stan}, RRN {rrn}, {amount}, {when} (t = {t} s in the chart)",
              finding=tr(case.finding.replace("_", " ")), txn=case.txn or "-", stan=case.stan,
              rrn=case.rrn or "-", amount=tr.money(case.amount), when=case.at, t=f"{case.t:.3f}")


def _step_of(seq: Sequence, stan: str) -> int | None:
    """The chart step that booked the money of ``stan``: the ledger's movement, or the wallet's charge of an order."""
    for step in seq.steps:
        e = step.event
        if ((isinstance(e, ev.LedgerMovement | ev.LedgerCapture) and e.stan == stan)
                or (isinstance(e, ev.WalletCharged) and e.order == stan)):
            return step.index
    return None


# -- the chart ---------------------------------------------------------------------------------


@dataclass
class _Row:
    top: float
    height: float
    gap: float  # seconds of silence before the row (drawn in a band above it), 0 when short


def _layout(seq: Sequence, tr: Tr, g: Lanes) -> tuple[list[_Row], dict[int, list[str]], dict[int, list[str]]]:
    """Each row's top and height, its lane text's lines and the middle text's lines (arrow, network, timeout)."""
    own = {s.index: _wrap(s.text, _column_width(s.lane, g)) for s in seq.steps}
    middle: dict[int, list[str]] = {}
    width = g.columns["middle"][1] - g.columns["middle"][0]
    for s in seq.steps:
        if s.lane == NETWORK:
            middle[s.index] = own.pop(s.index)
    for a in seq.arrows:
        if not a.duplicate and a.sent_step not in middle:
            middle[a.sent_step] = _wrap(_arrow_text(a, tr), width)
    for t in seq.timeouts:
        middle.setdefault(t.end_step, [tr("timeout {seconds} s", seconds=f"{t.seconds:g}")])
    rows, y, previous = [], float(TOP), 0.0
    for s in seq.steps:
        gap = s.t - previous if s.t - previous >= 1.0 else 0.0
        previous = s.t
        y += GAP_BAND if gap else 0
        lines = max(len(own.get(s.index, [])), len(middle.get(s.index, [])), 1)
        height = lines * LINE + PAD + (4 if s.index in middle and s.lane != NETWORK else 0)
        rows.append(_Row(y, height, gap))
        y += height
    return rows, own, middle


def _svg(seq: Sequence, tr: Tr, run: int) -> str:
    g = Lanes.of(seq.has_wallet)
    rows, own, middle = _layout(seq, tr, g)
    height = int((rows[-1].top + rows[-1].height if rows else TOP) + 10)
    out = [f"<svg class='msc' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {height}' "
           f"role='img' aria-label='{_e(tr('message sequence chart'))}'>",
           "<defs>" + "".join(_marker(k, c) for k, c in {**COLOURS, "lost": LOST}.items()) + "</defs>"]
    names = {TERMINAL: tr("POS terminal"), NETWORK: tr("network"), HOST: tr("acquirer host"), WALLET: tr("wallet")}
    for lane, x in g.x.items():
        dash = " stroke-dasharray='2 6'" if lane == NETWORK else ""
        out.append(f"<text class='lane' x='{x:g}' y='20' text-anchor='middle'>{_e(names[lane])}</text>"
                   f"<line x1='{x:g}' y1='30' x2='{x:g}' y2='{height}' stroke='#8c959f'{dash}/>")
    for s, r in zip(seq.steps, rows, strict=True):
        if r.gap:
            y = r.top - GAP_BAND / 2
            out.append(f"<g class='gap' data-step='{s.index}'><line x1='{TIME_END}' y1='{y}' x2='{WIDTH - 4}' "
                       f"y2='{y}' stroke='#d0d7de' stroke-dasharray='3 5'/><text x='{g.x[HOST] + 10:g}' y='{y + 4}' "
                       f"fill='#57606a' font-style='italic'>{_e(_pass(tr, r.gap))}"
                       "</text></g>")
    out.extend(_arrow(a, rows, middle, tr, g) for a in seq.arrows)
    for s, r in zip(seq.steps, rows, strict=True):
        out.append(_step(s, r, own.get(s.index, []), middle.get(s.index) if s.lane == NETWORK else None, run, g))
    for t in seq.timeouts:  # the timer's span on the terminal lifeline, labelled where it fires
        y1, y2, r = rows[t.start_step].top + 8, rows[t.end_step].top + 8, rows[t.end_step]
        label = tr("timeout {seconds} s", seconds=f"{t.seconds:g}")
        text = _text(middle[t.end_step], g.columns["middle"][0], r.top, "start", LOST) \
            if middle.get(t.end_step) == [label] else ""
        out.append(f"<g data-step='{t.end_step}' class='timeout'><rect x='{g.x[TERMINAL] - 6:g}' y='{y1}' width='12' "
                   f"height='{max(4, y2 - y1)}' fill='#f04438' fill-opacity='.25' stroke='{LOST}'/>{text}</g>")
    out.append("</svg>")
    return "".join(out)


def _pass(tr: Tr, seconds: float) -> str:
    return tr("{seconds} s pass", seconds=f"{seconds:,.1f}")


def _step(s: Step, r: _Row, lines: list[str], network: list[str] | None, run: int, g: Lanes) -> str:
    colour = {"bad": LOST, "timeout": LOST, "good": "#1a7f37", "ledger": "#0550ae",
              "recovery": "#9a6700"}.get(s.style, "#1b1f24")
    time = f"<text x='4' y='{r.top + 12}' fill='#57606a'>{s.t:.3f}s</text>"
    if network is not None:
        body = _text(network, g.columns["middle"][0], r.top, "start", colour, s.text)
    elif s.lane == TERMINAL:
        body = _text(lines, g.columns[TERMINAL][1], r.top, "end", colour, s.text)
    else:
        body = _text(lines, g.columns[s.lane if s.lane in g.columns else HOST][0], r.top, "start", colour, s.text)
    return f"<g data-step='{s.index}' id='run-{run}-step-{s.index}'>{time}{body}</g>"


def _text(lines: list[str], x: float, top: float, anchor: str, colour: str, full: str = "") -> str:
    spans = "".join(f"<tspan x='{x}' y='{top + 12 + i * LINE}'>{_e(line)}</tspan>" for i, line in enumerate(lines))
    title = f"<title>{_e(full)}</title>" if full else ""
    return f"<text text-anchor='{anchor}' fill='{colour}'>{title}{spans}</text>"


def _arrow_text(a: Arrow, tr: Tr) -> str:
    if a.lost:
        return tr("{label} LOST ({why})", label=a.label, why=tr(a.lost.replace("_", " ")))
    return a.label + (tr(" (late)") if a.late else "")


def _arrow(a: Arrow, rows: list[_Row], middle: dict[int, list[str]], tr: Tr, g: Lanes) -> str:
    """An arrow from the bottom of its sending row to its landing row, revealed when it lands or dies."""
    sent = rows[a.sent_step]
    x1, y1 = g.x[a.frm], sent.top + sent.height - 3
    end = a.end_step if a.end_step is not None else min(a.sent_step + 1, len(rows) - 1)
    y2 = max(rows[end].top + 8, y1 + 6)
    label = "" if a.duplicate else _text(middle.get(a.sent_step, []), (g.columns["middle"][0] if a.frm == TERMINAL
                                                                       else g.columns["middle"][1]), sent.top,
                                         "start" if a.frm == TERMINAL else "end",
                                         LOST if a.lost else COLOURS[a.kind])
    title = f"<title>{_e(_arrow_text(a, tr))}{_e(tr(' (copy)') if a.duplicate else '')}</title>"
    if a.lost:
        x2 = {TERMINAL_OFF: g.x[TERMINAL] + (8 if a.to == TERMINAL else -8), HOST_DOWN: g.x[HOST] - 8,
              IN_FLIGHT: (g.x[a.frm] + g.x[a.to]) / 2}.get(a.lost, g.x[NETWORK])
        cross = (f"<path d='M{x2 - 6},{y2 - 6} L{x2 + 6},{y2 + 6} M{x2 - 6},{y2 + 6} L{x2 + 6},{y2 - 6}' "
                 f"stroke='{LOST}' stroke-width='3'/>")
        return (f"<g data-step='{end}' class='arrow lost'{_identity(a)}>{title}<line x1='{x1}' y1='{y1}' x2='{x2}' "
                f"y2='{y2}' stroke='{LOST}' stroke-width='2' stroke-dasharray='6 4'/>{cross}{label}</g>")
    x2 = g.x[a.to]
    colour = COLOURS[a.kind]
    dash = " stroke-dasharray='4 3'" if a.late or a.duplicate else ""
    return (f"<g data-step='{end}' class='arrow {a.kind}'{_identity(a)}>{title}"
            f"<line x1='{x1}' y1='{y1}' x2='{x2 - 6 if x2 > x1 else x2 + 6}' y2='{y2}' stroke='{colour}' "
            f"stroke-width='2'{dash} marker-end='url(#m-{a.kind})'/>{label}</g>")


def _identity(a: Arrow) -> str:
    """Which message the arrow is, as a scenario's ``[[faults]]`` name it: ``possim lab`` turns a click into a rule."""
    return f" data-direction='{a.direction}' data-mti='{_e(a.mti)}' data-nth='{a.nth}'"


def _marker(kind: str, colour: str) -> str:
    return (f"<marker id='m-{kind}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' markerHeight='7' "
            f"orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='{colour}'/></marker>")


def _legend(tr: Tr, wallet: bool = False) -> str:
    items = [(tr("purchase / authorization"), COLOURS["financial"]), (tr("reversal"), COLOURS["reversal"]),
             (tr("status query"), COLOURS["query"]), (tr("completion advice"), COLOURS["advice"]),
             *([(tr("wallet payment (QR)"), COLOURS["wallet"])] if wallet else []), (tr("lost"), LOST)]
    return "<div class='legend'>" + "".join(f"<span><i style='background:{c}'></i>{_e(n)}</span>"
                                             for n, c in items) + "</div>"


def _column_width(lane: str, g: Lanes) -> float:
    lo, hi = g.columns["middle" if lane == NETWORK else lane if lane in g.columns else HOST]
    return hi - lo


def _char_width(ch: str) -> float:
    """A generous estimate of a glyph's width at 12 px, so a wrapped line never runs past its column."""
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return FONT * 1.1
    if ch.isupper() or ch in "mwMW@%&":
        return FONT * 0.75
    if ch.isdigit():
        return FONT * 0.58
    if ch in " .,:;'|!il()[]-":
        return FONT * 0.33
    return FONT * 0.56


def _wrap(text: str, width: float) -> list[str]:
    """Lines of at most ``width`` px: break at spaces, or between Chinese characters; three lines at most."""
    lines: list[str] = []
    line, used = "", 0.0
    for token in _tokens(text):
        w = sum(map(_char_width, token))
        if line and used + w > width:
            lines.append(line.rstrip())
            line, used = token.lstrip(), sum(map(_char_width, token.lstrip()))
        else:
            line, used = line + token, used + w
        while used > width:  # one token wider than the column: cut it
            cut, acc = 0, 0.0
            while cut < len(line) and acc + _char_width(line[cut]) <= width:
                acc += _char_width(line[cut])
                cut += 1
            lines.append(line[:max(cut, 1)])
            line = line[max(cut, 1):]
            used = sum(map(_char_width, line))
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > MAX_LINES:
        last = lines[MAX_LINES - 1]
        while last and sum(map(_char_width, last + "\u2026")) > width:
            last = last[:-1]
        lines = [*lines[: MAX_LINES - 1], last + "\u2026"]
    return lines or [""]


def _tokens(text: str) -> list[str]:
    """Words with their leading space; every wide (Chinese) character is a token of its own."""
    out: list[str] = []
    for ch in text:
        wide = unicodedata.east_asian_width(ch) in ("W", "F")
        if not out or wide or ch == " " or unicodedata.east_asian_width(out[-1][-1]) in ("W", "F"):
            out.append(ch)
        else:
            out[-1] += ch
    return out


# -- tables ------------------------------------------------------------------------------------


def _verdict(result: RunResult, tr: Tr) -> str:
    s = result.verdict.summary()
    rows = []
    wallet = wallet_only(result)
    for key in shown_measures(s):
        value = s[key]
        shown = tr.money(value) if key.endswith("_loss") else str(value)
        cls = "bad" if alarm(key, value) else "ok" if key in DAMAGE else "num"
        rows.append(f"<tr><th>{_e(measure(key, tr, wallet))}</th><td class='num {cls}'>{_e(shown)}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def _ledger(result: RunResult, tr: Tr) -> str:
    """Each card's balance at the start and the end of the run, and what the run moved."""
    opening = result.scenario.host_config().default_balance
    rows = []
    for pan in sorted(set(result.ledger_before) | set(result.ledger_after)):
        b0, _ = result.ledger_before.get(pan, (opening, 0))
        b1, h1 = result.ledger_after.get(pan, (b0, 0))
        held = tr("held {amount}", amount=tr.money(h1)) if h1 else ""
        rows.append(f"<tr><td>{pan[:6]}******{pan[-4:]}</td><td class='num'>{_e(tr.money(b0))}</td>"
                    f"<td class='num'>{_e(tr.money(b1))}</td><td class='num'>{_e(tr.money(b1 - b0))}</td>"
                    f"<td>{_e(held)}</td></tr>")
    head = "".join(f"<th>{_e(tr(h))}</th>" for h in ("card", "balance at the start", "balance at the end",
                                                        "change", "held"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _mismatch(m: Mismatch, tr: Tr, key: str = "STAN") -> str:
    """One batch-against-settlement mismatch: its kind, the sale's key and what to do. The key is named as the
    end of day names it (``settlement_words``): a card's STAN (流水号), a wallet's order number (订单号)."""
    return tr("{kind} ({key} {stan}): {note}", kind=tr(m.kind.replace("_", " ")), key=tr(key), stan=m.stan,
              note=note(m.note, tr))


def _money(result: RunResult, tr: Tr) -> str:
    rec = result.reconciliation
    if rec is None:
        return ""
    words = money_words(result)
    rows = [(tr("terminal batch (approved sales)"), tr("{count} sale(s), {amount}", count=rec.batch_count,
                                                        amount=tr.money(rec.batch_total))),
            (tr(words["settlement"]), tr("{count} debit(s), {amount}", count=rec.settled_count,
                                         amount=tr.money(rec.settled_total))),
            (tr("merchant fees"), tr.money(rec.fees_total)), (tr("merchant receives"), tr.money(rec.merchant_net)),
            (tr(words["customer"]), tr.money(rec.customer_charged_without_sale)),
            (tr("merchant's goods given away"), tr.money(rec.merchant_goods_given_away))]
    key = settlement_words(rec)["key"]
    mism = "".join(f"<li>{_e(_mismatch(m, tr, key))}</li>" for m in rec.mismatches)
    return ("<table>" + "".join(f"<tr><th>{_e(k)}</th><td class='num'>{_e(v)}</td></tr>" for k, v in rows)
            + "</table>" + (f"<ul>{mism}</ul>" if mism else f"<p>{_e(tr('Batch and settlement agree.'))}</p>")
            + _fees(rec, tr))


def _fees(rec: Reconciliation, tr: Tr) -> str:
    """Each settled payment with its fee, wallet QR payments included (at their own rate)."""
    if not rec.lines:
        return ""
    head = "".join(f"<th>{_e(tr(h))}</th>" for h in ("txn", "card type", "amount", "fee", "rule"))
    body = "".join(f"<tr><td>{line.txn or '-'}</td><td>{_e(instrument(line.instrument, tr))}</td>"
                   f"<td class='num'>{_e(tr.money(line.amount))}</td><td class='num'>{_e(tr.money(line.fee))}</td>"
                   f"<td>{_e(say(line.rule, tr))}</td></tr>" for line in rec.lines[:50])
    return f"<table class='fees'><tr>{head}</tr>{body}</table>"


def _comparison(results: Seq[RunResult], tr: Tr) -> str:
    escalations = tuple(k for k in OPTIONAL if any(k in r.verdict.summary() for r in results))
    keys = (*DAMAGE, *escalations, "approved", "reversed", "customer_loss", "merchant_loss")
    head = "".join(f"<th>{_e(tr.policy(r.policy))}</th>" for r in results)
    body = []
    for key in keys:
        cells = []
        for r in results:
            v = r.verdict.summary().get(key, 0)
            shown = tr.money(v) if key.endswith("_loss") else str(v)
            cells.append(f"<td class='num {'bad' if alarm(key, v) else ''}'>{_e(shown)}</td>")
        body.append(f"<tr><th>{_e(measure(key, tr, wallet_only(results[0])))}</th>{''.join(cells)}</tr>")
    return (f"<h2>{_e(tr('Same faults, seed {seed}: each policy', seed=results[0].seed))}</h2>"
            f"{_money_chart(results, tr)}<table><tr><th></th>{head}</tr>" + "".join(body) + "</table>")


def _money_chart(results: Seq[RunResult], tr: Tr) -> str:
    """Money at risk per policy as bars (charged without a sale, charged twice, goods given away, holds)."""
    from possim.views import charts

    at_risk = [sum(r.verdict.at_risk.values()) for r in results]
    axes = charts.Axes(tr("money at risk per policy"), tr("policy"),
                       tr("money at risk ({currency})", currency=tr.money(0).replace("0.00", "").strip()),
                       top=44, bottom=66)
    return charts.bar_chart([tr.policy(r.policy) for r in results], [a / 100 for a in at_risk], axes,
                            [tr.money(a) for a in at_risk])


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")

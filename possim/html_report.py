"""A self-contained HTML report: message sequence chart (inline SVG), ledger, verdict, money.

Nothing is fetched from a network: CSS, SVG and the step-through script are inline. A
trainer walks the room through the run with Next / Previous (or the arrow keys); events
after the current step fade out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence as Seq

from possim.checker import DAMAGE, MEASURES, harmful
from possim.money import format_amount
from possim.msc import HOST, NETWORK, TERMINAL, Sequence, build
from possim.rig import RunResult

ROW, TOP = 26, 56
X = {TERMINAL: 370, NETWORK: 575, HOST: 780}
WIDTH = 1080
COLOURS = {"financial": "#1f6feb", "reversal": "#d97706", "query": "#7c3aed", "advice": "#0d9488"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1b1f24;max-width:1120px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} p.story{max-width:820px;line-height:1.45}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px} td,th{border:1px solid #d0d7de;padding:3px 8px}
th{background:#f6f8fa;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.bad{color:#b42318;font-weight:600} td.ok{color:#1a7f37}
.controls{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #d0d7de;z-index:2}
.controls button{font-size:14px;margin-right:6px;padding:4px 10px}
#caption{display:inline-block;margin-left:10px;font-size:14px}
svg text{font-size:12px} svg .lane{font-weight:700;font-size:14px}
.future{opacity:.12} .current text{font-weight:700}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:22px;height:3px;vertical-align:middle;margin-right:4px}
.runs{display:flex;gap:16px;flex-wrap:wrap}
"""

JS = """
(function(){
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
      cap.textContent = 'step ' + (cur + 1) + ' of ' + steps.length + ' | t = ' + st.t + ' s | ' +
        st.lane + ': ' + st.text;
    }
    sec.querySelector('.first').addEventListener('click', function(){cur = 0; show();});
    sec.querySelector('.prev').addEventListener('click', function(){cur = Math.max(0, cur - 1); show();});
    sec.querySelector('.next').addEventListener('click', function(){
      cur = Math.min(steps.length - 1, cur + 1); show();
    });
    sec.querySelector('.last').addEventListener('click', function(){cur = steps.length - 1; show();});
    sec.addEventListener('keydown', function(e){
      if (e.key === 'ArrowRight') { cur = Math.min(steps.length - 1, cur + 1); show(); }
      if (e.key === 'ArrowLeft') { cur = Math.max(0, cur - 1); show(); }
    });
    show();
  });
})();
"""


def render(results: Seq[RunResult], title: str) -> str:
    """One page: the story, then each run (chart, verdict, ledger, money); several runs compare side by side."""
    first = results[0]
    parts = [f"<h1>{_e(title)}</h1>", f"<p class='story'>{_e(first.scenario.model.description.strip())}</p>"]
    if len(results) > 1:
        parts.append(_comparison(results))
    for i, result in enumerate(results):
        parts.append(_run_section(result, i))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{''.join(parts)}"
            f"<script>{JS}</script></body></html>")


def _run_section(result: RunResult, index: int) -> str:
    seq = build(result.trace.records)
    steps = [{"t": round(s.t, 3), "lane": s.lane, "text": s.text} for s in seq.steps] or \
        [{"t": 0, "lane": "run", "text": "nothing happened"}]
    return (f"<section class='run' tabindex='0' id='run-{index}'>"
            f"<h2>Policy {_e(result.policy)} (seed {result.seed}, {result.transport})</h2>"
            "<div class='controls'><button class='first'>&laquo; start</button>"
            "<button class='prev'>&#x25C0; previous</button><button class='next'>next &#x25B6;</button>"
            "<button class='last'>all &raquo;</button><span class='caption' id='caption'></span></div>"
            f"{_legend()}{_svg(seq)}"
            f"<script type='application/json' class='steps'>{_json(steps)}</script>"
            f"<h2>Checker verdict</h2>{_verdict(result)}"
            f"<h2>Ledger before and after</h2>{_ledger(result)}"
            f"<h2>What it cost</h2>{_money(result)}</section>")


def _svg(seq: Sequence) -> str:
    height = TOP + ROW * (len(seq.steps) + 1)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' role='img' "
           "aria-label='message sequence chart'>",
           "<defs>" + "".join(_marker(k, c) for k, c in {**COLOURS, "lost": "#b42318"}.items()) + "</defs>"]
    for lane, label in ((TERMINAL, "POS terminal"), (NETWORK, "network"), (HOST, "acquirer host")):
        dash = " stroke-dasharray='2 6'" if lane == NETWORK else ""
        out.append(f"<text class='lane' x='{X[lane]}' y='22' text-anchor='middle'>{label}</text>"
                   f"<line x1='{X[lane]}' y1='32' x2='{X[lane]}' y2='{height}' stroke='#8c959f'{dash}/>")
    previous = 0.0
    for s in seq.steps:  # the time scale: rows are events, so long silences are marked where they fall
        gap = s.t - previous
        if gap >= 1.0:
            y = _y(s.index) - ROW / 2
            out.append(f"<g class='gap' data-step='{s.index}'><line x1='70' y1='{y}' x2='{WIDTH - 10}' y2='{y}' "
                       f"stroke='#d0d7de' stroke-dasharray='3 5'/><text x='{X[NETWORK] + 60}' y='{y + 4}' "
                       f"fill='#8c959f' font-style='italic'>{gap:,.1f} s pass</text></g>")
        previous = s.t
    for t in seq.timeouts:
        y1, y2 = _y(t.start_step), _y(t.end_step)
        out.append(f"<g data-step='{t.end_step}' class='timeout'><rect x='{X[TERMINAL] - 7}' y='{y1}' width='14' "
                   f"height='{max(4, y2 - y1)}' fill='#f04438' fill-opacity='.25' stroke='#b42318'/>"
                   f"<text x='{X[TERMINAL] + 12}' y='{(y1 + y2) / 2}' text-anchor='start' fill='#b42318'>"
                   f"timeout {t.seconds:g} s</text></g>")
    out.extend(_arrow(a) for a in seq.arrows)
    for s in seq.steps:
        anchor, x = {TERMINAL: ("end", X[TERMINAL] - 14), NETWORK: ("start", X[NETWORK] + 14),
                     HOST: ("start", X[HOST] + 14)}[s.lane]
        colour = {"bad": "#b42318", "timeout": "#b42318", "good": "#1a7f37", "ledger": "#0550ae",
                  "recovery": "#9a6700"}.get(s.style, "#1b1f24")
        limit = {NETWORK: 32, TERMINAL: 40}.get(s.lane, 42)
        out.append(f"<g data-step='{s.index}'><text x='8' y='{_y(s.index) + 4}' fill='#57606a'>{s.t:.3f}s</text>"
                   f"<text x='{x}' y='{_y(s.index) + 4}' text-anchor='{anchor}' fill='{colour}'>"
                   f"<title>{_e(s.text)}</title>{_e(_short(s.text, limit))}</text></g>")
    out.append("</svg>")
    return "".join(out)


def _arrow(a: object) -> str:
    from possim.msc import Arrow

    assert isinstance(a, Arrow)
    x1, y1 = X[a.frm], _y(a.sent_step)
    end = a.end_step if a.end_step is not None else a.sent_step + 1
    if a.lost:
        x2, y2 = (X[NETWORK] if a.lost != "still in flight" else (X[a.frm] + X[a.to]) / 2), _y(end)
        if a.lost == "terminal off":
            x2 = X[a.to]
        return (f"<g data-step='{a.sent_step}' class='arrow lost'><title>{_e(a.label)} lost ({_e(a.lost)})</title>"
                f"<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='#b42318' stroke-width='2' "
                f"stroke-dasharray='6 4'/><text x='{x2}' y='{y2 + 5}' text-anchor='middle' fill='#b42318' "
                f"font-size='18'>&#x2716;</text></g>")
    x2, y2 = X[a.to], _y(end)
    colour = COLOURS[a.kind]
    dash = " stroke-dasharray='4 3'" if a.late or a.duplicate else ""
    tag = " (late)" if a.late else " (copy)" if a.duplicate else ""
    return (f"<g data-step='{a.sent_step}' class='arrow {a.kind}'><title>{_e(a.label)}{tag}</title>"
            f"<line x1='{x1}' y1='{y1}' x2='{x2 - 6 if x2 > x1 else x2 + 6}' y2='{y2}' stroke='{colour}' "
            f"stroke-width='2'{dash} marker-end='url(#m-{a.kind})'/>"
            f"<text x='{x1 + (x2 - x1) * 0.3}' y='{y1 + (y2 - y1) * 0.3 - 6}' text-anchor='middle' "
            f"fill='{colour}'>{_e(a.label)}{tag}</text></g>")


def _marker(kind: str, colour: str) -> str:
    return (f"<marker id='m-{kind}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' markerHeight='7' "
            f"orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='{colour}'/></marker>")


def _legend() -> str:
    items = [("purchase / authorization", COLOURS["financial"]), ("reversal", COLOURS["reversal"]),
             ("status query", COLOURS["query"]), ("completion advice", COLOURS["advice"]), ("lost", "#b42318")]
    return "<div class='legend'>" + "".join(f"<span><i style='background:{c}'></i>{_e(n)}</span>"
                                             for n, c in items) + "</div>"


def _verdict(result: RunResult) -> str:
    s = result.verdict.summary()
    rows = []
    for key in MEASURES:
        value = s[key]
        cls = "bad" if harmful(key, value) else "ok" if key in DAMAGE else "num"
        rows.append(f"<tr><th>{key.replace('_', ' ')}</th><td class='num {cls}'>{_e(str(value))}</td></tr>")
    findings = "".join(f"<li>{_e(f.finding.replace('_', ' '))}: transaction {f.txn}, STAN {f.key[1]}, "
                       f"{_e(f.as_dict()['amount'])}</li>" for f in result.verdict.findings)
    return f"<table>{''.join(rows)}</table>" + (f"<ul>{findings}</ul>" if findings else "")


def _ledger(result: RunResult) -> str:
    pans = sorted(set(result.ledger_before) | set(result.ledger_after))
    rows = []
    for pan in pans:
        b0, h0 = result.ledger_before.get(pan, (None, None))
        b1, h1 = result.ledger_after.get(pan, (0, 0))
        before = f"{format_amount(b0)} / {format_amount(h0 or 0)}" if b0 is not None else "opened on first use"
        rows.append(f"<tr><td>{pan[:6]}******{pan[-4:]}</td><td class='num'>{before}</td>"
                    f"<td class='num'>{format_amount(b1)} / {format_amount(h1)}</td></tr>")
    return ("<table><tr><th>card</th><th>before: balance / held</th><th>after: balance / held</th></tr>"
            + "".join(rows) + "</table>")


def _money(result: RunResult) -> str:
    rec = result.reconciliation
    if rec is None:
        return ""
    d = rec.as_dict()
    cost = d["timeout_cost"]
    rows = [("terminal batch", f"{d['terminal_batch']['count']} sales, {d['terminal_batch']['total']}"),
            ("host settlement", f"{d['host_settlement']['count']} debits, {d['host_settlement']['total']}"),
            ("merchant fees", d["fees_total"]), ("merchant receives", d["merchant_net"]),
            ("customer charged without a sale", cost["customer_charged_without_sale"]),
            ("goods given away (phantom approvals)", cost["merchant_goods_given_away"])]
    mism = "".join(f"<li>{_e(m['kind'].replace('_', ' '))} (STAN {m['stan']}): {_e(m['note'])}</li>"
                   for m in d["mismatches"])
    return ("<table>" + "".join(f"<tr><th>{_e(k)}</th><td class='num'>{_e(v)}</td></tr>" for k, v in rows)
            + "</table>" + (f"<ul>{mism}</ul>" if mism else "<p>Batch and settlement agree.</p>"))


def _comparison(results: Seq[RunResult]) -> str:
    keys = (*DAMAGE, "approved", "reversed", "customer_loss", "merchant_loss")
    head = "".join(f"<th>{_e(r.policy)}</th>" for r in results)
    body = []
    for key in keys:
        cells = []
        for r in results:
            v = r.verdict.summary()[key]
            cells.append(f"<td class='num {'bad' if harmful(key, v) else ''}'>{_e(str(v))}</td>")
        body.append(f"<tr><th>{key.replace('_', ' ')}</th>{''.join(cells)}</tr>")
    return (f"<h2>Same faults, seed {results[0].seed}: each policy</h2><table><tr><th></th>{head}</tr>"
            + "".join(body) + "</table>")


def _y(step: int) -> int:
    return TOP + ROW * step


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _json(data: object) -> str:
    return json.dumps(data).replace("</", "<\\/")

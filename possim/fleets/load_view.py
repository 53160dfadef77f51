"""What ``possim load`` shows besides its tables: the latency histogram as text in the terminal,
and with ``--report`` one self-contained HTML page with the latency histogram and latency over
run time as SVG charts (:mod:`possim.views.charts`), so a slow tail or a stall is seen, not read."""

from __future__ import annotations

import html

from possim.fleets.load import LoadReport, transport_words
from possim.i18n import Tr
from possim.views import charts

_STYLE = """body{font:14px "Liberation Sans",Arial,"Noto Sans CJK SC",sans-serif;margin:1.5em;color:#222;
max-width:1100px}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
svg.chart{width:100%;max-width:760px;height:auto;display:block;margin:.8em 0}svg.chart text{fill:#1b1f24}"""


def text_histogram(report: LoadReport, tr: Tr, width: int = 40) -> list[str]:
    """The latency histogram as lines of text (bins of milliseconds, a bar of ``#``, the count)."""
    edges, counts = report.latency_bins()
    return [tr("latency histogram (ms, request to outcome)"), *charts.text_histogram(edges, counts, "ms", width)]


def latency_histogram(report: LoadReport, tr: Tr) -> str:
    edges, counts = report.latency_bins()
    return charts.histogram(edges, counts, charts.Axes(tr("latency histogram"), tr("latency (ms)"), tr("sales")))


def latency_over_time(report: LoadReport, tr: Tr) -> str:
    """Mean and slowest latency of each second of the run, as steps."""
    points = report.over_time
    series = [charts.Series(tr("mean latency"), [(t, mean) for t, _, mean, _ in points]),
              charts.Series(tr("slowest latency"), [(t, top) for t, _, _, top in points])]
    end = (points[-1][0] + 1) if points else 1.0
    return charts.step_chart(series, [], end, charts.Axes(tr("latency over time"), tr("run time (s)"),
                                                          tr("latency (ms)"), bottom=80))


def render(report: LoadReport, rows: list[tuple[str, object]], tr: Tr) -> str:
    """One page: the run's figures (``rows``, as the console's table has them), then the two charts."""
    title = tr("possim load: {terminals} terminals over {transport}", terminals=report.plan.terminals,
               transport=transport_words(tr, report.plan.transport))
    table = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return (f"<!doctype html><html lang={tr.html_lang}><head><meta charset=utf-8>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table><thead><tr><th>{html.escape(tr('measure'))}</th>"
            f"<th>{html.escape(tr('value'))}</th></tr></thead><tbody>{table}</tbody></table>"
            f"{latency_histogram(report, tr)}{latency_over_time(report, tr)}</body></html>")

"""The charts as a reader sees them, in a real Chromium: the merchant chain's fleet report and a
``possim load --report`` page (200 sales over real TCP sockets), each with SVG charts whose axes
are labelled, and no text overlapping or cut at projector widths (tests/layout.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.layout import geometry
from tests.test_cli import possim

#: Per chart: its kind and the text of its axis titles, read in the page.
CHARTS_JS = """
() => Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
  kind: svg.getAttribute('class'),
  box: svg.getBoundingClientRect().width,
  axes: Array.from(svg.querySelectorAll('text.axis-title')).map(t => t.textContent.trim()).filter(Boolean),
  ticks: svg.querySelectorAll('text.tick').length}))
"""


def _check(page: Any, report: Path, kinds: set[str]) -> list[dict[str, Any]]:
    """Open ``report`` at two widths: charts of ``kinds`` with two axis titles and ticks, nothing overlapping."""
    found: list[dict[str, Any]] = []
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 768})
        page.goto(report.as_uri())
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        found = page.evaluate(CHARTS_JS)
        assert {c["kind"].split()[1] for c in found} >= kinds, found
        for chart in found:
            if "heat" not in chart["kind"]:
                assert len(chart["axes"]) == 2 and chart["ticks"] >= 2, chart
            assert 0 < chart["box"] <= width
        g = geometry(page)
        assert g["overlapCount"] == 0, (width, g["overlaps"])
        assert g["cut"] == [], (width, g["cut"])
    return found


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_merchant_chain_report_shows_its_figures_as_charts(page, tmp_path: Path, lang: str) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "r.html"
    out = possim("run", "merchant-chain", "--policy", "none", "--report", str(report), "--lang", lang)
    assert out.returncode == 0, out.stderr
    found = _check(page, report, {"bars", "steps", "heat"})
    assert sum("bars" in c["kind"] for c in found) >= 2  # money per policy and the worst terminals' own charts
    cell = page.locator("svg.heat a").first
    target = cell.get_attribute("href")
    assert target and target.startswith("#p0-")
    page.locator("details.smalls").evaluate("d => d.open = false")
    cell.click()
    chart = page.locator(target)
    assert chart.is_visible() and chart.locator("svg.chart").count() == 1  # the terminal's own chart, shown
    assert page.evaluate("location.hash") == target


def test_a_load_report_shows_the_latency_histogram_and_latency_over_time(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "load.html"
    out = possim("load", "--no-progress", "--terminals", "20", "--rate", "100", "--duration", "2", "--transport",
                 "tcp", "--report", str(report))
    assert out.returncode == 0, out.stderr
    assert "latency histogram" in out.stdout and "| #" in out.stdout  # the text histogram in the terminal
    found = _check(page, report, {"histogram", "steps"})
    assert [c["axes"] for c in found] == [["latency (ms)", "sales"], ["run time (s)", "latency (ms)"]]
    bins = page.evaluate("Array.from(document.querySelectorAll('rect.bin')).map(r => +r.dataset.value)")
    assert sum(bins) == 200  # every sale is in the histogram

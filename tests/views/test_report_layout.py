"""Every shipped scenario's report in a real Chromium, in both languages, at 1366x768 and 1024x768.

The page's own geometry decides: no two text boxes overlap, no label is cut, and the
headline and the money are above the fold. A fleet scenario is judged on its fleet page
(``possim.fleets.fleet_view``). One browser and one page for the module. Chinese is measured with
real glyphs: ``make chromium`` installs a CJK font, and the test says so when none is there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from possim.scenario import load
from possim.simulation import simulate
from possim.views.html_report import render
from tests.conftest import SCENARIOS
from tests.layout import fold, geometry

VIEWPORTS = ((1366, 768), (1024, 768))
#: Every shipped scenario; a fleet is judged on its own summary page (possim/fleets/fleet_view.py).
NAMES = sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def _page(name: str, lang: str) -> str:
    scenario = load(SCENARIOS / f"{name}.toml")
    if scenario.is_fleet:
        from possim.fleets import fleet_view
        from possim.fleets.fleet import simulate_fleet

        return fleet_view.render([simulate_fleet(scenario, "none")], scenario.model.title, None, lang)
    result = simulate(scenario, "none")
    return render([result], result.scenario.model.title, lang)


def _has_cjk_font() -> bool:
    import subprocess

    try:
        out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(out.stdout.strip())


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", NAMES)
def test_report_has_no_overlapping_or_cut_label_and_opens_with_the_point(page, tmp_path: Path, name: str,
                                                                         lang: str) -> None:  # type: ignore[no-untyped-def]
    if lang == "zh":
        assert _has_cjk_font(), "no Chinese font: run `make chromium` (installs fonts-noto-cjk)"
    report = tmp_path / "r.html"
    report.write_text(_page(name, lang), encoding="utf-8")
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(report.as_uri())
        where = fold(page)
        assert where["headline"]["bottom"] <= height and where["money"]["bottom"] <= height, (width, where)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        g = geometry(page)
        assert g["count"] > 50
        assert g["overlapCount"] == 0, (width, g["overlaps"])
        assert g["cut"] == [], (width, g["cut"])


def test_the_geometry_check_sees_an_overlap_and_a_cut_label(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "r.html"
    report.write_text(render([simulate(load(SCENARIOS / "response-lost.toml"), "none")], "t"), encoding="utf-8")
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(report.as_uri())
    page.evaluate("""() => {
      const svg = document.querySelector('svg.msc');
      const t = document.createElementNS('http://www.w3.org/2000/svg', 'text');
      t.setAttribute('x', '4'); t.setAttribute('y', '56'); t.textContent = 'an overlapping label';
      svg.appendChild(t);
      const d = document.createElement('div');
      d.style.cssText = 'width:40px;overflow:hidden;white-space:nowrap';
      d.textContent = 'a label far too long for its box';
      document.body.appendChild(d);
    }""")
    g = geometry(page)
    assert g["overlapCount"] >= 1
    assert any("label far too long" in c for c in g["cut"])

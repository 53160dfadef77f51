"""possim's own SVG charts: valid SVG, labelled axes, values drawn to scale, both languages; the
fleet page's charts from a real fleet run; progress bars only for a person at a terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from rich.console import Console

from possim.fleets import fleet_view
from possim.fleets.fleet import simulate_fleet
from possim.scenario import from_dict
from possim.views import charts
from possim.views.progress import bar
from tests.fleets.test_fleet import SMALL
from tests.test_cli import POSSIM

SVG = "{http://www.w3.org/2000/svg}"
#: A small fleet with a partition and a host crash, so the over-time chart has windows to mark.
FAULTY: dict[str, Any] = {**SMALL, "partitions": [{"start": 40, "end": 70, "direction": "both"}],
                          "host": {"crash_after_commit": [{"mti": "0200", "nth": 5, "down_for": 20}]}}


def _tree(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _texts(root: ET.Element, *classes: str) -> list[str]:
    """The text of every SVG text element that has all of ``classes``."""
    return [t.text or "" for t in root.iter(f"{SVG}text") if set(classes) <= set((t.get("class") or "").split())]


def _axes(title: str = "money at risk per policy") -> charts.Axes:
    return charts.Axes(title, "policy", "money at risk (EUR)", top=44, bottom=66)


def test_a_bar_chart_is_svg_with_titled_axes_and_bars_to_scale() -> None:
    root = _tree(charts.bar_chart(["none", "reversal", "query"], [40.0, 10.0, 0.0], _axes(),
                                  ["€40.00", "€10.00", "€0.00"]))
    assert root.tag == f"{SVG}svg"
    assert _texts(root, "axis-title") == ["policy", "money at risk (EUR)"]
    assert _texts(root, "chart-title") == ["money at risk per policy"]
    assert set(_texts(root, "tick", "x")) >= {"none", "reversal", "query"}
    assert _texts(root, "tick", "y") == ["0", "10", "20", "30", "40"]  # the y tick labels
    assert _texts(root, "value") == ["€40.00", "€10.00", "€0.00"]
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    heights = [float(r.get("height", "nan")) for r in bars]
    plot = _axes().plot_height
    assert heights == pytest.approx([plot, plot / 4, 0.0], abs=0.1)
    bottoms = {round(float(r.get("y", "0")) + float(r.get("height", "0")), 1) for r in bars}
    assert bottoms == {round(_axes().top + plot, 1)}  # every bar stands on the x axis


def test_one_policy_is_still_a_chart_with_one_bar() -> None:
    root = _tree(charts.bar_chart(["none"], [55.8], _axes()))
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 1 and float(bars[0].get("height", "0")) > 0
    assert _texts(root, "axis-title") == ["policy", "money at risk (EUR)"]


def test_a_step_chart_hatches_and_labels_its_windows_and_names_each_series() -> None:
    series = [charts.Series("orphaned debits", [(10, 1), (50, 2)]), charts.Series("timeouts", [(5, 1), (45, 3)])]
    root = _tree(charts.step_chart(series, [charts.Window(40, 70, "partition"), charts.Window(80, 90, "host crash")],
                                   100, charts.Axes("over time", "run time (s)", "count", bottom=80)))
    windows = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "window"]
    assert len(windows) == 2 and all(r.get("fill") == "url(#hatch)" for r in windows)
    assert _texts(root, "window-label") == ["partition", "host crash"]
    assert _texts(root, "legend") == ["orphaned debits", "timeouts"]
    paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "series"]
    assert len(paths) == 2 and paths[0].get("stroke-dasharray") is None and paths[1].get("stroke-dasharray")
    assert _texts(root, "axis-title") == ["run time (s)", "count"]


def test_overlapping_windows_of_one_kind_are_drawn_as_one() -> None:
    got = charts.merged([charts.Window(40, 70, "partition"), charts.Window(1, 21, "host crash"),
                         charts.Window(7, 27, "host crash"), charts.Window(90, 95, "host crash")])
    assert got == [charts.Window(1, 27, "host crash"), charts.Window(40, 70, "partition"),
                   charts.Window(90, 95, "host crash")]


def test_a_histogram_draws_each_bin_to_scale_and_labels_its_edges() -> None:
    edges, counts = charts.buckets([(1000, 3), (2500, 6), (9000, 1)], 8)
    assert sum(counts) == 10 and len(edges) == len(counts) + 1
    axes = charts.Axes("latency histogram", "latency (ms)", "sales")
    root = _tree(charts.histogram([e / 1000 for e in edges], counts, axes))
    bins = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bin"]
    assert [int(r.get("data-value", "-1")) for r in bins] == counts
    tallest = max(bins, key=lambda r: float(r.get("height", "0")))
    assert tallest.get("data-value") == "6"
    assert float(tallest.get("height", "0")) == pytest.approx(axes.plot_height * 6 / charts.ticks(6)[-1], abs=0.1)
    assert _texts(root, "axis-title") == ["latency (ms)", "sales"] and "1" in _texts(root, "tick", "x")


def test_a_long_tail_folds_into_the_last_bin() -> None:
    edges, counts = charts.buckets([(1000, 50), (1200, 40), (30_000_000, 1)], 10, cap=1200)
    assert sum(counts) == 91 and counts[-1] >= 1 and edges[-1] < 30_000_000  # the caller labels it the maximum


def test_the_text_histogram_has_one_line_per_bin_with_a_bar_to_scale() -> None:
    lines = charts.text_histogram([0, 1, 2, 3], [4, 8, 0], "ms", width=8)
    assert lines == ["0-1 ms | ####     4", "1-2 ms | ######## 8", "2-3 ms |          0"]


def test_a_heat_strip_hatches_damage_and_links_cells() -> None:
    cells = [charts.Cell(500, "SHOP0001: €5.00 at risk", "#p0-SHOP0001"), charts.Cell(0, "SHOP0002: €0.00")]
    root = _tree(charts.heat_strip(cells, charts.Axes("terminals", "one cell per terminal", "", left=8, right=8),
                                   legend=("money at risk or damage", "none")))
    links = list(root.iter(f"{SVG}a"))
    assert [a.get("href") for a in links] == ["#p0-SHOP0001"]
    hatched = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "url(#heat-hatch)"]
    assert len(hatched) == 2  # the damaged cell and the legend's swatch
    assert _texts(root, "legend") == ["money at risk or damage", "none"]


@pytest.fixture(scope="module")
def faulty() -> Any:
    return simulate_fleet(from_dict(FAULTY), "none")


def test_a_fleet_run_marks_its_partitions_crashes_timeouts_and_sale_starts(faulty: Any) -> None:
    m = faulty.marks
    assert m.partitions == [(40.0, 70.0)]
    assert len(m.crashes) == 2  # each of the two host shards crashes on its 5th purchase, for 20 s
    assert all(until - at == pytest.approx(20) for at, until in m.crashes)
    assert len(m.started) == faulty.verdict.counts["transactions"]
    assert m.timeouts and all(0 <= t <= faulty.end_time for t in m.timeouts)
    traced = simulate_fleet(from_dict(FAULTY), "none", trace=True).marks
    assert traced.timeouts == m.timeouts and traced.crashes == m.crashes and traced.started == m.started


@pytest.mark.parametrize("lang, words", [("en", ("money at risk per policy", "orphaned debits and timeouts over time",
                                                 "partition", "host crash", "run time (s)")),
                                         ("zh", ("各策略的风险金额", "单边账与超时随时间的变化", "网络分区", "主机崩溃",
                                                 "运行时间（秒）"))])  # noqa: RUF001
def test_the_fleet_page_has_its_charts_in_the_readers_language(faulty: Any, lang: str,
                                                               words: tuple[str, ...]) -> None:
    page = fleet_view.render([faulty], "small fleet", None, lang)
    svgs = [_tree(s[: s.index("</svg>") + 6]) for s in ("<svg" + p for p in page.split("<svg")[1:])]
    text = {t for root in svgs for t in _texts(root)}
    assert set(words) <= text
    orphans = faulty.verdict.counts["orphaned_debits"]
    over_time = next(r for r in svgs if "steps" in (r.get("class") or ""))
    legend = [p.find(f"{SVG}title") for p in over_time.iter(f"{SVG}path") if p.get("class") == "series"]
    assert legend[0] is not None and (legend[0].text or "").endswith(f": {orphans}")  # every orphan is on the line
    cells = [g for r in svgs for g in r.iter(f"{SVG}g") if g.get("class") == "cell"]
    assert len(cells) == len(faulty.terminals)
    worst = faulty.worst()[0]
    assert f"id='p0-{worst.tid}'" in page and f"href='#p0-{worst.tid}'" in page


def test_a_progress_bar_is_drawn_for_a_terminal_and_not_for_a_pipe() -> None:
    shown, piped = io.StringIO(), io.StringIO()
    with bar("possim run", 10, console=Console(file=shown, force_terminal=True, width=80)) as step:
        step(5)
    with bar("possim run", 10, console=Console(file=piped, force_terminal=False, width=80)) as step:
        step(5)
    with bar("possim run", 10, enabled=False, console=Console(file=io.StringIO(), force_terminal=True)) as step:
        step(5)
    assert "possim run" in shown.getvalue()
    assert piped.getvalue() == ""


def _small_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(tomli_w.dumps(FAULTY), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    return {**env, "COLUMNS": "100", "TERM": "xterm"}


def test_fleet_run_shows_no_progress_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    out = subprocess.run([*POSSIM, "run", str(_small_fleet(tmp_path)), "--policy", "reversal"], capture_output=True,
                         text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    assert "possim run" not in out.stderr and "━" not in out.stderr
    assert "SHOP" in out.stdout or "no terminal" in out.stdout


def _on_a_terminal(args: list[str]) -> tuple[bytes, bytes]:
    """Run possim with stderr on a pseudo-terminal: what the terminal showed, and stdout."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*POSSIM, *args], stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL,
                            env=_env())
    os.close(follower)
    seen = b""
    try:
        while True:  # read the terminal until the process closes its end (EOF or EIO on Linux)
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, "no output and no exit within 60 s"
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return seen, stdout


@pytest.mark.parametrize("extra, shown", [((), True), (("--no-progress",), False)])
def test_fleet_run_shows_progress_on_a_terminal_unless_told_not_to(tmp_path: Path, extra: tuple[str, ...],
                                                                   shown: bool) -> None:
    seen, stdout = _on_a_terminal(["run", str(_small_fleet(tmp_path)), "--policy", "reversal", *extra])
    assert (b"possim run" in seen) is shown, seen[-300:]
    assert b"possim run" not in stdout  # the bar never reaches stdout


def test_load_shows_its_bar_on_a_terminal_and_not_on_a_pipe() -> None:
    args = ["load", "--terminals", "10", "--rate", "50", "--duration", "2"]
    seen, _ = _on_a_terminal(args)
    assert "━".encode() in seen and b"load" in seen
    piped = subprocess.run([*POSSIM, *args], capture_output=True, text=True, timeout=120, env=_env())
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == "possim load: 10 terminals connected, sales started\n"  # not even a blank line

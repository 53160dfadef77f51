"""Views in Chinese and English: catalogues compiled and complete, money with its currency, lost means lost."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from possim.i18n import LOCALE_DIR, LanguageError, Tr, resolve
from possim.pos_sim.config import POLICIES
from possim.protocol.mti import NAMES
from possim.scenario import from_dict, load
from possim.simulation import simulate
from possim.views import console as show
from possim.views.demo import run_demo
from possim.views.html_report import render
from possim.views.lesson import tr_for
from possim.views.mermaid import to_mermaid
from possim.views.msc import HOST_DOWN, build
from possim.views.timeline import rows
from tests.conftest import SCENARIOS


def test_compiled_catalogues_match_their_po_sources() -> None:
    """Compared by content (every id and its translation), never by the bytes a given Babel writes."""
    import gettext

    from babel.messages.pofile import read_po

    pos = sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))
    assert pos
    for po in pos:
        with po.open("rb") as f:
            catalog = read_po(f)
        wanted: dict[object, str] = {}
        for m in catalog:
            if not (m.id and m.string and not m.fuzzy):
                continue
            if m.pluralizable:  # ngettext's entries: keyed (singular, form) as gettext keeps them
                wanted |= {(m.id[0], form): text for form, text in enumerate(m.string)}
            else:
                wanted[m.id] = m.string
        with po.with_suffix(".mo").open("rb") as f:
            compiled = gettext.GNUTranslations(f)
        got = {k: v for k, v in compiled._catalog.items() if k}  # type: ignore[attr-defined]
        assert got == wanted, f"{po}: run python -m possim.i18n"
        assert len(wanted) > 100


def test_every_string_of_every_view_has_a_chinese_entry() -> None:
    Tr.missing.clear()
    con = Console(file=io.StringIO(), width=100)
    for path in sorted(SCENARIOS.glob("*.toml")):
        if load(path).is_fleet:
            continue  # a fleet has its own summary view (possim/fleets/fleet_view.py)
        results = [simulate(load(path), p) for p in POLICIES]
        tr = tr_for(results[0], "zh")
        render(results, "t", "zh")
        for r in results:
            show.lesson(con, r, tr)
            show.timeline(con, r, tr=tr)
            show.verdict(con, r, ["x"], tr)
            to_mermaid(r.trace.records, "t", tr)
            show.reconciliation(con, r.reconciliation, "t", tr)
    run_demo(con, SCENARIOS, 0, lambda _: None, "zh")
    for name in NAMES.values():
        Tr("zh")(name)
    assert sorted(m for _, m in Tr.missing) == []


def test_language_comes_from_the_option_then_possim_lang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSSIM_LANG", raising=False)
    assert resolve(None) == "en"
    monkeypatch.setenv("POSSIM_LANG", "zh_CN.UTF-8")
    assert resolve(None) == "zh" and resolve("en") == "en"
    with pytest.raises(LanguageError):
        resolve("fr")


def test_amounts_carry_the_terminal_currency() -> None:
    data = {"title": "yuan", "description": "one sale", "terminal": {"currency": "156"},
            "transactions": [{"amount": "25.00"}]}
    result = simulate(from_dict(data))
    tr = tr_for(result, "zh")
    assert tr.money(2500) == "¥25.00"
    assert rows(result.trace.records, tr)[0][1] == "持卡人付款 ¥25.00（消费，第 1 笔）"  # noqa: RUF001
    assert Tr("en", "978").money("25.00") == "€25.00"


def test_chinese_report_opens_with_the_orphaned_debit_and_the_remedy() -> None:
    result = simulate(load(SCENARIOS / "response-lost.toml").in_market("zh"), "none")
    page = render([result], "t", "zh")
    head = page.index("class='headline'")
    assert head < page.index("<svg")
    assert "持卡人被扣款 ¥25.00" in page and "单边账" in page[head:page.index("<svg")]
    assert "€" not in page and "4000000000000002" not in page
    assert "终端号 POS00001" in page and "参考号 329100000001" in page and "差错处理" in page
    assert "<html lang='zh-CN'>" in page


def test_a_message_to_a_host_that_is_down_is_lost_everywhere() -> None:
    result = simulate(load(SCENARIOS / "host-crash-after-debit.toml"), "query-then-reversal")
    seq = build(result.trace.records)
    down = [a for a in seq.arrows if a.lost == HOST_DOWN]
    assert [a.mti for a in down] == ["0600", "0600", "0600", "0400"]
    mermaid = to_mermaid(result.trace.records, "t")
    assert "T-xH: 0600 status query no. 002 LOST (host down)" in mermaid
    assert "T->>H: 0600" not in mermaid and "T-->>H: 0600 status query no. 002" not in mermaid
    table = rows(result.trace.records)
    hosts = [host for _, _, _, host in table if host]
    assert "X 0600 LOST: the host is down" in hosts
    assert not any(h.startswith("<- 0600") for h in hosts)


def test_the_step_through_reveals_a_lost_arrow_at_the_step_that_says_lost() -> None:
    result = simulate(load(SCENARIOS / "response-lost.toml"), "none")
    seq = build(result.trace.records)
    lost = next(a for a in seq.arrows if a.lost)
    assert seq.steps[lost.end_step].text.startswith("X 0210 LOST")
    page = render([result], "t")
    identity = "data-direction='to_terminal' data-mti='0210' data-nth='1'"  # the message, for possim lab's clicks
    assert f"<g data-step='{lost.end_step}' class='arrow lost' {identity}>" in page
    assert f"<g data-step='{lost.sent_step}' class='arrow lost'" not in page


def test_ledger_panel_shows_the_balance_at_the_start_and_the_change() -> None:
    page = render([simulate(load(SCENARIOS / "response-lost.toml"), "none")], "t")
    assert "opened on first use" not in page
    assert "<td class='num'>€1,000,000.00</td><td class='num'>€999,975.00</td><td class='num'>-€25.00</td>" in page


@pytest.mark.parametrize("width", [100, 80])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_demo_fits_the_terminal(width: int, lang: str) -> None:
    out = io.StringIO()
    run_demo(Console(file=out, width=width, no_color=True), SCENARIOS, 0, lambda _: None, lang)
    from rich.cells import cell_len

    lines = out.getvalue().splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= width
    assert "329100000001" in out.getvalue()  # the RRN wraps, never cut


def test_long_run_opens_with_a_summary_and_folds_the_chart(tmp_path: Path) -> None:
    page = render([simulate(load(SCENARIOS / "flaky-network.toml"), "none")], "t")
    assert page.index("class='summary'") < page.index("<details class='chart'>") < page.index("<svg")
    assert "href='#run-0-step-" in page


def test_every_string_of_the_fleet_views_has_a_chinese_entry() -> None:
    """A fleet run's console summary, comparison, worst tills and one till's timeline, in Chinese."""
    from possim.fleets import fleet_view
    from possim.fleets.fleet import simulate_fleet
    from tests.fleets.test_fleet import SMALL

    Tr.missing.clear()
    out = io.StringIO()
    con = Console(file=out, width=120)
    sc = from_dict(SMALL)
    results = [simulate_fleet(sc, p, trace=True) for p in ("none", "reversal")]
    tr = Tr("zh", sc.model.terminal.currency)
    fleet_view.summary(con, results[0], ["x"], tr)
    fleet_view.compare(con, results, tr)
    fleet_view.timeline(con, results[0], results[0].worst()[0].tid, tr=tr)
    fleet_view.worst(con, [], tr)
    fleet_view.render(results, "t", results[0].terminals[0].tid, "zh")
    assert sorted(m for _, m in Tr.missing) == []
    text = out.getvalue()
    assert "全部终端" in text and "单边账" in text and "whole fleet" not in text

"""The views show wallet payments (their own lifeline, losses, fees), MAC forgeries and refusals, escalations, the CUP
profile in Chinese, and the glossary (the command and the doc share one table)."""

from __future__ import annotations

import re
import tomllib

from click.testing import CliRunner

from possim.cli import cli
from possim.i18n import LOCALE_DIR, Tr
from possim.scenario import load
from possim.simulation import simulate
from possim.views.glossary import markdown
from possim.views.html_report import render
from possim.views.lesson import point, story, tr_for
from possim.views.mermaid import to_mermaid
from possim.views.msc import WALLET, build
from possim.views.timeline import rows
from tests.conftest import SCENARIOS

ROOT = SCENARIOS.parent


def test_the_wallet_is_its_own_lifeline_in_the_chart_and_in_mermaid() -> None:
    result = simulate(load(SCENARIOS / "qr-cancel-race.toml"), "reversal")
    seq = build(result.trace.records, tr_for(result, "en"))
    assert seq.has_wallet
    assert {(a.frm, a.to) for a in seq.arrows} == {("terminal", WALLET), (WALLET, "terminal")}
    charged = next(s for s in seq.steps if s.text == "wallet: customer charged CN¥38.50")
    assert charged.lane == WALLET
    mermaid = to_mermaid(result.trace.records, "t")
    assert "participant W as Wallet" in mermaid and "T-->>W: QR_PAY wallet pay (scanned code)" in mermaid
    page = render([result], "t", "zh")
    assert ">钱包</text>" in page and "钱包：顾客被扣款 ¥38.50" in page  # noqa: RUF001


def test_card_runs_keep_three_lifelines() -> None:
    result = simulate(load(SCENARIOS / "response-lost.toml"), "none")
    assert not build(result.trace.records).has_wallet
    assert "participant W" not in to_mermaid(result.trace.records, "t")


def test_a_qr_loss_is_said_in_plain_words_with_the_order_number() -> None:
    result = simulate(load(SCENARIOS / "qr-user-paying-timeout.toml"), "none")
    p = point(result, tr_for(result, "en"))
    assert p.headline == ("The customer's wallet was charged CN¥25.00 and the cashier's screen said "
                          "USER PAYING - PAYMENT FAILED.")
    # date, terminal id, transaction number, then the random part a stranger cannot guess
    assert any(re.search(r"order number 20261125POS00001000001[0-9A-Z]{10}\b", a) for a in p.actions)
    zh = point(result, tr_for(result, "zh"))
    assert zh.headline.startswith("顾客的钱包已被扣款 ¥25.00")


def test_an_escalated_reversal_is_not_good_news_and_is_counted_everywhere() -> None:
    result = simulate(load(SCENARIOS / "reversal-escalated.toml"), "reversal")
    p = point(result, tr_for(result, "en"))
    assert not p.good
    assert p.headline.startswith("The reversal failed 3 times; the terminal asked the merchant to contact the acquirer")
    texts = [cell for row in rows(result.trace.records) for cell in row[1:]]
    assert "REVERSAL FAILED after 3 tries: handed to the acquirer" in texts
    others = [simulate(load(SCENARIOS / "reversal-escalated.toml"), q) for q in ("none", "query")]
    page = render([result, *others], "t")
    assert page.count("escalated to the acquirer") == 2  # the comparison and the verdict
    assert "<th>escalated to the acquirer</th><td class='num bad'>1</td>" in page


def test_forgery_and_the_hosts_refusal_have_rows() -> None:
    result = simulate(load(SCENARIOS / "forged-reversal.toml"), "none")
    texts = [cell for row in rows(result.trace.records) for cell in row[1:] if cell]
    assert any(t.startswith("! forged reversal 0400 injected") for t in texts)
    assert "MAC missing or wrong: answered 63, nothing changed" in texts


def test_the_report_lists_wallet_payments_with_their_fee() -> None:
    page = render([simulate(load(SCENARIOS / "card-failed-then-qr.toml"), "none")], "t")
    assert "<td>wallet QR payment</td><td class='num'>CN¥66.00</td><td class='num'>CN¥0.25</td>" in page


def test_every_shipped_scenario_reads_in_chinese() -> None:
    texts = tomllib.loads((LOCALE_DIR / "zh" / "scenarios.toml").read_text(encoding="utf-8"))
    for path in sorted(SCENARIOS.glob("*.toml")):
        scenario = load(path)
        title, description = story(scenario, "zh")
        assert path.stem in texts and title != scenario.model.title, path.stem
        assert description.strip() and description != scenario.model.description.strip()
    response_lost = load(SCENARIOS / "response-lost.toml")
    assert story(response_lost, "en") == (response_lost.model.title, response_lost.model.description.strip())
    page = render([simulate(response_lost, "none")], response_lost.model.title, "zh")
    assert "<h1>批准应答在返回途中丢失</h1>" in page and "典型的单边账" in page


def test_glossary_command_and_doc_share_one_table() -> None:
    doc = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    assert markdown() in doc
    out = CliRunner().invoke(cli, ["glossary", "--lang", "zh"])
    assert out.exit_code == 0 and "单边账" in out.output and "银行已扣款" in out.output
    en = CliRunner().invoke(cli, ["glossary", "--lang", "en"])
    assert "The bank took the money" in en.output
    bad = CliRunner().invoke(cli, ["glossary", "--lang", "fr"])
    assert bad.exit_code == 2
    assert Tr("zh")("What it means here") == "含义"

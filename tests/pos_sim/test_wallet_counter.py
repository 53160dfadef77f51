"""QR wallet payments as the counter lives them: the till and the phone side by side, the
cancel (撤销) worded as a cancel, the counter's guidance, and the wallet's bill on the
merchant's statement and in the reconciliation. Real runs, real SQLite ledgers and journals."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sqlite3
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from possim.cli import cli, main
from possim.i18n import Tr
from possim.judging.reconcile import check_statement, journal_records, reconcile
from possim.money.fees import FeeSchedule
from possim.money.statement import build, business_days
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.scenario import from_dict, load
from possim.simulation import simulate
from possim.views.console import measure, wallet_only
from possim.views.lesson import point
from possim.views.timeline import counter
from tests.conftest import SCENARIOS


def possim(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """One in-process CLI call: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def _run(tmp_path: Path, name: str, policy: str) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """A scenario run kept on disk: its ledger and journal databases, opened again from the files."""
    ledger, journal = tmp_path / f"{policy}-L.db", tmp_path / f"{policy}-J.db"
    simulate(load(SCENARIOS / f"{name}.toml"), policy, ledger_path=str(ledger), journal_path=str(journal))
    return sqlite3.connect(ledger), sqlite3.connect(journal)


def test_the_till_says_cancelled_while_the_phone_says_paid() -> None:
    """qr-cancel-race under the cancel: at one moment the two screens disagree, then the refund shows."""
    result = simulate(load(SCENARIOS / "qr-cancel-race.toml"), "reversal")
    moments = counter(result.trace.records, Tr("en", "156"))
    assert ("NOT CONFIRMED IN TIME - CANCELLING", "PAID CN¥38.50") in [(till, phone) for _, till, phone in moments]
    assert moments[-1][2] == "refund of CN¥38.50 on its way to the wallet"
    assert point(result, Tr("en", "156")).counter == moments


def test_a_wallet_lesson_says_cancel_never_the_card_reversal() -> None:
    """In Chinese a wallet's cancel is 撤销, never 冲正; the cashier is told to look before asking again."""
    for name in ("qr-cancel-race", "qr-cancel-after-midnight", "qr-system-error"):
        for policy in POLICY_REGISTRY.names():
            result = simulate(load(SCENARIOS / f"{name}.toml"), policy)
            zh = point(result, Tr("zh", "156"))
            words = " ".join([zh.headline, *zh.actions, *(c for row in zh.counter for c in row[1:])])
            assert "冲正" not in words, (name, policy)
    race = simulate(load(SCENARIOS / "qr-cancel-race.toml"), "reversal")
    assert wallet_only(race) and not wallet_only(simulate(load(SCENARIOS / "card-failed-then-qr.toml"), "none"))
    zh_measures = [measure(k, Tr("zh"), True) for k in ("reversed", "pending_reversals")]
    assert all("撤销" in m and "冲正" not in m for m in zh_measures)
    en = point(race, Tr("en", "156"))
    assert any("Alipay's rule" in a and "(a cancel, 撤销)" in a for a in en.actions)
    unsure = point(simulate(load(SCENARIOS / "qr-cancel-race.toml"), "none"), Tr("en", "156"))
    assert any("Before asking the customer to pay again" in a and "merchant app" in a for a in unsure.actions)


def test_the_statement_lists_the_wallets_charge_and_reconcile_names_it(tmp_path: Path) -> None:
    """The orphaned wallet charge of qr-user-paying-timeout is on the T+1 statement as the wallet's
    bill (order number, trade number, the QR fee) and the statement check calls it charged without a sale."""
    ledger, journal = _run(tmp_path, "qr-user-paying-timeout", "none")
    [day] = business_days(ledger)
    statement = build(ledger, day, FeeSchedule())
    [line] = statement.lines
    order, trade_no = ledger.execute("SELECT out_trade_no, trade_no FROM wallet_trades").fetchone()
    assert (line.rrn, line.auth_code, line.card, str(line.amount), str(line.fee), str(line.net)) == \
        (order, trade_no, "alipay", "25.00", "0.10", "24.90")
    assert f"trade no. {trade_no}" in line.description and "QR wallet 0.38%" in line.description
    check = check_statement(statement.lines, journal_records(journal))
    [difference] = check.differences
    assert difference.kind == "charged_without_sale" and difference.rrn == order
    assert "merchant app" in difference.remedy and "never charge the customer again" in difference.remedy
    [mismatch] = reconcile(journal, ledger, FeeSchedule()).mismatches
    assert mismatch.note.startswith(f"wallet bill (alipay trade no. {trade_no}) charged the customer")


def test_a_paid_wallet_sale_agrees_with_the_statement_and_a_same_day_cancel_is_not_listed(tmp_path: Path) -> None:
    """query finds the payment: statement and journal agree; the cancel's refund nets the day to nothing."""
    ledger, journal = _run(tmp_path, "qr-cancel-race", "query")
    [day] = business_days(ledger)
    statement = build(ledger, day, FeeSchedule())
    assert [str(line.amount) for line in statement.lines] == ["38.50"]
    assert check_statement(statement.lines, journal_records(journal)).agrees
    ledger, journal = _run(tmp_path, "qr-cancel-race", "reversal")
    assert build(ledger, day, FeeSchedule()).lines == []


def test_possim_statement_of_a_wallet_run_writes_the_wallets_bill(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = possim(capsys, "statement", "qr-user-paying-timeout", "--policy", "none")
    assert code == 0, err
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert (row["card"], row["amount"], row["fee"]) == ("alipay", "25.00", "0.10")
    assert "1 sale CN¥25.00" in err


def _two_days(tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str) -> tuple[Path, Path, Path]:
    """qr-cancel-after-midnight under the cancel: the statements of the sale's day and of the next
    day, in ``lang``, with the run's journal (the cancel is acknowledged after midnight)."""
    journal, ledger = tmp_path / "J.db", tmp_path / "L.db"
    first, second = tmp_path / "day1.csv", tmp_path / "day2.csv"
    code, _, err = possim(capsys, "statement", "qr-cancel-after-midnight", "--policy", "reversal", "--lang", lang,
                          "--date", "2026-11-25", "--ledger-out", str(ledger), "--journal-out", str(journal),
                          "--out", str(first))
    assert code == 0, err
    code, _, err = possim(capsys, "statement", str(ledger), "--scenario", "qr-cancel-after-midnight", "--lang",
                          lang, "--date", "2026-11-26", "--out", str(second))
    assert code == 0, err
    return journal, first, second


def _check(capsys: pytest.CaptureFixture[str], journal: Path, statement: Path, lang: str, agrees: bool) -> str:
    """``reconcile --statement``'s words; it exits 0 when statement and records agree, 1 when they differ."""
    code, out, err = possim(capsys, "reconcile", str(journal), "--statement", str(statement), "--lang", lang)
    assert code == (0 if agrees else 1), err
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_cancel_after_midnight_is_a_refund_under_way_with_nothing_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str) -> None:
    """The sale's day settles 38.50 the terminal already refunded after the cut-off: the check lists the
    refund as under way, expected and no difference (exit 0), showing on the next day's statement, never
    to cancel, refund or hand over goods; the next day's statement carries the -38.50 adjustment and agrees."""
    journal, first, second = _two_days(tmp_path, capsys, lang)
    out = _check(capsys, journal, first, lang, agrees=True)
    if lang == "zh":
        assert "预期之中，不算差异：1 笔退款在途" in out and "0 处差异" in out and "对账单与记录相符" in out  # noqa: RUF001
        assert "退款已在途" in out and "无需处理" in out and "“已退款”" in out and "订单号（商户订单号）" in out  # noqa: RUF001
        assert "2026-11-26 的对账单会把这笔退款列为调整 -38.50" in out
        for wrong in ("已冲正", "凭证号", "参考号", "交付商品", "撤销或退款", "持卡人"):
            assert wrong not in out, wrong
    else:
        assert "expected, not a difference: 1 refund under way" in out and "0 differences" in out
        assert "Refund under way" in out and "nothing to do" in out and "as refunded" in out
        assert "The statement of 2026-11-26 shows the refund as an adjustment of -38.50" in out
        for wrong in ("reversed", "voucher no.", "RRN", "Hand over the goods", "cancel (撤销) or refund the order"):
            assert wrong not in out, wrong
    out = _check(capsys, journal, second, lang, agrees=True)
    assert "-38.50" in out
    assert ("对账单与记录相符" if lang == "zh" else "statement and records agree") in out


def test_a_chinese_statement_names_the_wallet_and_reads_back(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Under zh the wallet line says 支付宝 (card column and description); reconcile reads it back as the
    wallet's line (the order number finds it), as it reads the English CSV's ``alipay``."""
    for lang in ("zh", "en"):
        journal, out_csv = tmp_path / f"{lang}-J.db", tmp_path / f"{lang}.csv"
        code, _, err = possim(capsys, "statement", "qr-user-paying-timeout", "--policy", "none", "--lang", lang,
                              "--journal-out", str(journal), "--out", str(out_csv))
        assert code == 0, err
        [row] = list(csv.reader(io.StringIO(out_csv.read_text(encoding="utf-8"))))[1:]
        if lang == "zh":
            assert row[6] == "支付宝" and "alipay" not in ",".join(row)
            assert row[-1].startswith("钱包账单（支付宝）")  # noqa: RUF001
        else:
            assert row[6] == "alipay" and row[-1].startswith("wallet bill (alipay)")
        out = _check(capsys, journal, out_csv, "en", agrees=False)
        assert "look order" in out and "merchant app" in out and "Alipay" in out


def test_a_wallet_end_of_day_in_chinese_says_order_number_customer_and_wallet_settlement(
        capsys: pytest.CaptureFixture[str]) -> None:
    """reconcile of a QR run keys its lines by order number (订单号), its customer is 顾客 and the wallet
    settles (钱包结算); a card run keeps 流水号, 持卡人 and 银行结算, a mixed run names both."""
    views = {}
    for name in ("qr-user-paying-timeout", "response-lost", "card-failed-then-qr"):
        code, out, err = possim(capsys, "reconcile", name, "--policy", "none", "--lang", "zh")
        assert code in (0, 1), err
        views[name] = out
    qr = views["qr-user-paying-timeout"]
    assert "订单号" in qr and "钱包结算" in qr and "顾客：交易未成功却被扣款 ¥25.00" in qr  # noqa: RUF001
    for wrong in ("流水号", "持卡人", "银行结算"):
        assert wrong not in qr, wrong
    card = views["response-lost"]
    assert "流水号" in card and "持卡人" in card and "银行结算" in card and "订单号" not in card
    assert "流水号/订单号" in views["card-failed-then-qr"] and "银行与钱包结算" in views["card-failed-then-qr"]


def test_reconcile_json_keeps_a_refund_under_way_apart_and_a_real_difference_still_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--json``: the refund under way is listed apart and the day agrees; a wallet charge the till showed as
    failed and nobody gave back (qr-user-paying-timeout, no recovery) is a difference and exits 1."""
    journal, first, _ = _two_days(tmp_path, capsys, "en")
    code, out, err = possim(capsys, "reconcile", str(journal), "--statement", str(first), "--json")
    assert code == 0, err
    check = json.loads(out)
    assert check["agrees"] and check["differences"] == []
    assert [(d["kind"], d["statement"]) for d in check["refunds_under_way"]] == [("refund_under_way", "38.50")]
    orphan_journal, orphan_csv = tmp_path / "orphan-J.db", tmp_path / "orphan.csv"
    code, _, err = possim(capsys, "statement", "qr-user-paying-timeout", "--policy", "none", "--journal-out",
                          str(orphan_journal), "--out", str(orphan_csv))
    assert code == 0, err
    code, out, err = possim(capsys, "reconcile", str(orphan_journal), "--statement", str(orphan_csv), "--json")
    assert code == 1, err
    check = json.loads(out)
    assert not check["agrees"] and check["refunds_under_way"] == []
    assert [d["kind"] for d in check["differences"]] == ["charged_without_sale"]


def _cli(*args: str) -> str:
    """``possim ARGS`` through click's runner, 200 columns wide: its output (exit 0 or 1, never an error)."""
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    assert result.exit_code in (0, 1), result.output
    return result.output


def _page(path: Path) -> str:
    """What a person reads on an HTML page: no scripts, styles or tags."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_cancel_that_became_a_refund_is_a_refund_in_the_timeline_and_the_chart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    """qr-cancel-after-midnight under the cancel: the gateway refused the cancel as too late and the terminal
    refunded the order, so the terminal's last row (console timeline and the report's chart) and the wallet's
    answer say refund (退款); a cancel that refunded a paid order in time (qr-cancel-race) stays a cancel."""
    monkeypatch.chdir(tmp_path)
    said = {"zh": ("退款已确认：货款退回顾客钱包", "钱包应答：已退款", "撤销已确认"),  # noqa: RUF001
            "en": ("refund (退款) acknowledged: the payment goes back to the wallet", "wallet answers: refunded",
                   "cancel acknowledged")}[lang]
    refund, answer, cancel = said
    out = _cli("run", "qr-cancel-after-midnight", "--policy", "reversal", "--lang", lang, "--report", "r.html")
    timeline = out.split("qr-cancel-after-midnight - ")[1]
    assert refund in timeline and answer in timeline and cancel not in timeline
    chart = _page(tmp_path / "r.html")
    assert refund in chart and cancel not in chart
    race = _cli("run", "qr-cancel-race", "--policy", "reversal", "--lang", lang)
    assert cancel in race and refund not in race


def test_after_a_refund_the_advice_says_the_money_comes_back_not_to_look_the_order_up() -> None:
    """The till said the payment was not confirmed, but the order was then refunded: the cashier is told the
    money is on its way back (the wallet's rule), never to look the order up before charging again. Without
    recovery nothing was given back, and looking the order up is still the advice."""
    scenario = load(SCENARIOS / "qr-cancel-after-midnight.toml")
    for lang, look_up, back in (("zh", "请顾客重新付款之前", "告诉顾客退款按原支付方式退回"),
                                ("en", "Before asking the customer to pay again",
                                 "tell the customer the refund goes back the way they paid")):
        refunded = point(simulate(scenario, "reversal"), Tr(lang, "156")).actions
        assert not [a for a in refunded if look_up in a]
        assert [a for a in refunded if back in a and "20261125POS00001000001" in a]
        orphaned = point(simulate(scenario, "none"), Tr(lang, "156")).actions
        assert [a for a in orphaned if look_up in a] and not [a for a in orphaned if back in a]


#: Card words a wallet payment's views never use, and the wallet's words they use instead (zh, then en).
CARD_WORDS = {"zh": ("持卡人", "银行结算", "流水号", "签购单", "银行对账单"),
              "en": ("bank settlement", "stan ", "STAN", "the slips", "bank statement")}
WALLET_WORDS = {"zh": ("顾客被扣款但交易未成功", "钱包结算", "顾客损失"),
                "en": ("customer's wallet charged without a sale", "wallet settlement", "customer loss (wallet")}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_wallet_run_speaks_of_customer_wallet_settlement_and_order_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    """Every qr-* scenario under every policy: the lesson's money, the measures, the findings and the HTML
    report say customer (顾客), wallet settlement (钱包结算) and order number (订单号), never cardholder,
    bank settlement or STAN (流水号); a card run (response-lost) keeps the card's words."""
    monkeypatch.chdir(tmp_path)
    for path in sorted(SCENARIOS.glob("qr-*.toml")):
        for policy in POLICY_REGISTRY.names():
            out = _cli("run", path.stem, "--policy", policy, "--lang", lang, "--report", "r.html")
            views = {"run": out, "report": _page(tmp_path / "r.html")}
            for view, text in views.items():
                assert [w for w in CARD_WORDS[lang] if w in text] == [], (path.stem, policy, view)
                assert [w for w in WALLET_WORDS[lang] if w not in text] == [], (path.stem, policy, view)
    orphan = _cli("run", "qr-user-paying-timeout", "--policy", "none", "--lang", lang, "--report", "r.html")
    order = "订单号 2026" if lang == "zh" else "order no. 2026"
    assert order in orphan.split("钱包单边账" if lang == "zh" else "finding: orphaned wallet charge")[-1]
    assert order in _page(tmp_path / "r.html")
    card = _cli("run", "response-lost", "--policy", "none", "--lang", lang, "--report", "r.html")
    card_words = {"zh": ("持卡人", "银行结算", "流水号"), "en": ("customer charged without a sale", "bank settlement",
                                                              "stan 000001")}[lang]
    assert [w for w in card_words if w not in card] == []
    assert [w for w in card_words[:2] if w not in _page(tmp_path / "r.html")] == []


def test_a_refund_still_owed_after_a_too_late_cancel_is_said_to_be_under_way() -> None:
    """qr-cancel-after-midnight with every refund (QR_REFUND) lost on its way to the gateway: the terminal
    still owes the refund, so the advice says it is under way and never to charge again, not to look the
    order up before asking the customer to pay again."""
    with (SCENARIOS / "qr-cancel-after-midnight.toml").open("rb") as f:
        data = tomllib.load(f)
    data.pop("expect")
    data["faults"] = [{"action": "drop", "direction": "to_host", "mti": "QR_REFUND", "nth": n} for n in range(1, 30)]
    result = simulate(from_dict(data), "reversal")
    assert result.verdict.counts["pending_reversals"] == 1
    for lang, under_way, look_up in (("zh", "退款在途：订单 2026", "请顾客重新付款之前"),  # noqa: RUF001
                                     ("en", "Refund under way: the cancel (撤销) of order 2026",
                                      "Before asking the customer to pay again")):
        actions = point(result, Tr(lang, "156")).actions
        assert [a for a in actions if under_way in a] and not [a for a in actions if look_up in a]

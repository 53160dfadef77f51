# ruff: noqa: RUF001 - Chinese text uses full-width punctuation
"""The merchant's side of the money: T+1 statement, reconciliation against it, the acquirer's error handling."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from possim.acquirer_sim import errors_handling as eh
from possim.acquirer_sim.host import AcquirerHost, AwaitIssuer
from possim.acquirer_sim.ledger import Ledger, read_ledger
from possim.cli import main
from possim.judging.checker import ledger_money
from possim.judging.reconcile import MerchantRecord, check_statement
from possim.money.fees import FeeSchedule
from possim.money.statement import COLUMNS, build, read
from possim.pos_sim.terminal import Terminal
from tests.conftest import SCENARIOS
from tests.helpers import new_host, new_terminal, purchase, replies, sends

DAY = date(2026, 11, 25)
KEY = ("POS00001", "000007", "1125100000")


def possim(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """One in-process CLI call: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def _sale(ledger: Ledger, now: float, key: tuple[str, str, str], amount: int, rrn: str) -> None:
    ledger.record(now, key, "0200", "4000000000000002", amount, rrn, "A00007", "00", "debited", "debit", b"")


def test_sale_then_refund_next_day_is_an_adjustment_with_the_fee_returned() -> None:
    ledger = Ledger()
    _sale(ledger, 0.0, KEY, 250_00, "329100000007")
    assert eh.escalate(ledger, 86_400.0, KEY, eh.REVERSAL_FAILED)
    assert not eh.escalate(ledger, 86_500.0, KEY, eh.REVERSAL_FAILED)  # a repeat keeps the first case
    [result] = eh.run_error_handling(ledger, 86_400.0)
    assert (result.outcome, result.amount, result.rrn) == ("refunded", 250_00, "329100000007")
    assert eh.run_error_handling(ledger, 90_000.0) == []  # the case is closed: no second refund
    assert ledger_money(ledger.conn)[KEY] == (0, 0)
    assert ledger.find(KEY).state == "reversed"  # type: ignore[union-attr]  # a late reversal finds nothing
    fees = FeeSchedule()
    day1 = build(ledger.conn, DAY, fees)
    assert [(str(x.amount), str(x.fee), str(x.net), str(x.adjustments)) for x in day1.lines] == \
        [("250.00", "1.50", "248.50", "0.00")]
    day2 = build(ledger.conn, date(2026, 11, 26), fees)
    [refund] = day2.lines
    assert (str(refund.amount), str(refund.fee), str(refund.net), str(refund.adjustments)) == \
        ("0.00", "-1.50", "-248.50", "-250.00")
    assert "差错处理" in refund.description


def test_same_day_reversal_leaves_no_line_and_late_reversal_is_an_adjustment() -> None:
    ledger = Ledger()
    _sale(ledger, 0.0, KEY, 100_00, "329100000007")
    late = ("POS00001", "000008", "1125100100")
    _sale(ledger, 60.0, late, 40_00, "329100000008")
    for key, at in ((KEY, 120.0), (late, 86_400.0 + 60)):
        orig = ledger.find(key)
        assert orig is not None
        ledger.transition(at, orig, "reversed", [("credit", orig.amount)])
    assert [x.rrn for x in build(ledger.conn, DAY, FeeSchedule()).lines] == ["329100000008"]
    [adjust] = build(ledger.conn, date(2026, 11, 26), FeeSchedule()).lines
    assert (adjust.rrn, str(adjust.adjustments), str(adjust.fee)) == ("329100000008", "-40.00", "-0.24")


def test_a_case_without_money_closes_with_nothing_to_refund() -> None:
    ledger = Ledger()
    ledger.record(0.0, KEY, "0200", "4000000000000002", 500, None, None, "05", "declined", None, b"")
    eh.escalate(ledger, 10.0, KEY, eh.SETTLEMENT, "settlement")
    [result] = eh.run_error_handling(ledger, 20.0)
    assert (result.outcome, result.amount) == ("nothing_to_refund", 0)
    assert not build(ledger.conn, DAY, FeeSchedule()).lines
    with pytest.raises(ValueError, match="unknown escalation source"):
        eh.escalate(ledger, 10.0, KEY, "x", "phone")


def _line(rrn: str, amount: str, auth: str = "A1") -> dict[str, str]:
    return {"date_time": "2026-11-25 10:00:00", "terminal": "T1", "rrn": rrn, "auth_code": auth, "amount": amount}


def test_check_statement_names_each_kind_of_difference(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    rows = [_line("1", "10.00"), _line("2", "20.00"), _line("3", "30.00"), _line("4", "40.00", "B9")]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    at = read(path)[0].at
    records = [MerchantRecord("T1", rrn, auth, Decimal(amount), at)
               for rrn, auth, amount in (("1", "A1", "10.00"), ("3", "A1", "33.00"), ("4", "A1", "40.00"),
                                         ("5", "A5", "5.00"))]
    check = check_statement(read(path), records)
    assert check.matched == 1
    kinds = {d.kind: d for d in check.differences}
    assert set(kinds) == {"charged_without_sale", "amount_differs", "auth_code_differs", "missing_from_statement"}
    assert "error handling" in kinds["charged_without_sale"].remedy
    assert "T+2" in kinds["charged_without_sale"].remedy
    assert "advice" in kinds["missing_from_statement"].remedy and "0320" in kinds["missing_from_statement"].remedy
    assert "chargeback" not in " ".join(check.text())


def test_statement_mismatch_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped scenario: the T+1 statement lists the charge, reconcile names it with the remedy,
    the error-handling run refunds it and the next day's statement shows the refund."""
    ledger, journal, day1, day2 = (str(tmp_path / n) for n in ("L.db", "J.db", "day1.csv", "day2.csv"))
    code, _, err = possim(capsys, "statement", str(SCENARIOS / "statement-mismatch.toml"), "--ledger-out", ledger,
                          "--journal-out", journal, "--out", day1)
    assert code == 0, err
    sales = list(csv.DictReader(io.StringIO(Path(day1).read_text(encoding="utf-8"))))
    assert [(r["amount"], r["fee"], r["net"]) for r in sales] == [("1000.00", "3.80", "996.20"),
                                                                  ("250.00", "0.95", "249.05")]
    orphan_rrn = sales[1]["rrn"]
    code, out, _ = possim(capsys, "reconcile", journal, "--statement", day1)
    assert code == 1
    assert f"Charged without a sale: the statement settles 250.00 (terminal POS00001, RRN {orphan_rrn}" in out
    assert "ask the acquirer for error handling (差错处理)" in out and "chargeback" not in out
    code, out, _ = possim(capsys, "acquirer-errors", "--ledger", ledger, "--rrn", orphan_rrn)
    assert code == 0 and "refunded 250.00 to the card" in out and "2026-11-26" in out
    code, _, _ = possim(capsys, "statement", ledger, "--scenario", "statement-mismatch", "--out", day2)
    assert code == 0
    [refund] = list(csv.DictReader(io.StringIO(Path(day2).read_text(encoding="utf-8"))))
    assert (refund["date_time"][:10], refund["rrn"], refund["adjustments"], refund["fee"], refund["net"]) == \
        ("2026-11-26", orphan_rrn, "-250.00", "-0.95", "-249.05")
    code, out, _ = possim(capsys, "reconcile", journal, "--statement", day2)
    assert code == 0 and "-250.00" in out


def test_escalated_journal_rows_become_refunds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, journal = str(tmp_path / "L.db"), str(tmp_path / "J.db")
    assert possim(capsys, "statement", "statement-mismatch", "--ledger-out", ledger, "--journal-out", journal)[0] == 0
    with sqlite3.connect(journal) as conn:  # what a CUP terminal journals when its last reversal try failed
        conn.execute("UPDATE journal SET reversal = 'escalated' WHERE status = 'unknown'")
    conn.close()
    code, out, _ = possim(capsys, "acquirer-errors", "--ledger", ledger, "--journal", journal, "--on", "2026-11-27")
    assert code == 0 and "(reversal_failed): refunded 250.00" in out
    conn = read_ledger(ledger)
    assert sum(net for net, _ in ledger_money(conn).values()) == 1000_00
    conn.close()


@pytest.mark.parametrize("args, message", [
    (("acquirer-errors", "--ledger", "{ledger}", "--rrn", "999"), "no single sale with this RRN"),
    (("acquirer-errors", "--ledger", "{ledger}", "--key", "POS00001,000002"), "no such sale"),
    (("acquirer-errors", "--ledger", "{ledger}", "--on", "tomorrow"), "a date is YYYY-MM-DD"),
    (("reconcile", "{journal}", "--statement", "{journal}"), "not a text file"),
    (("statement", "{journal}"), "not a possim ledger"),
])
def test_bad_input_is_one_line_and_changes_no_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     args: tuple[str, ...], message: str) -> None:
    ledger, journal = str(tmp_path / "L.db"), str(tmp_path / "J.db")
    assert possim(capsys, "statement", "statement-mismatch", "--ledger-out", ledger, "--journal-out", journal)[0] == 0
    before = Path(ledger).read_bytes()
    code, _, err = possim(capsys, *(a.format(ledger=ledger, journal=journal) for a in args))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert Path(ledger).read_bytes() == before


def test_the_summary_says_sale_for_one_and_sales_otherwise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The console's line of totals counts in English words (ngettext), in Chinese with the one form 笔交易."""
    ledger = str(tmp_path / "L.db")
    code, _, err = possim(capsys, "statement", "qr-user-paying-timeout", "--policy", "none", "--ledger-out", ledger,
                          "--out", str(tmp_path / "day1.csv"))
    assert code == 0 and ": 1 sale CN¥25.00," in err and "1 sales" not in err
    code, _, err = possim(capsys, "statement", "statement-mismatch", "--out", str(tmp_path / "mismatch.csv"))
    assert code == 0 and ": 2 sales €1,250.00," in err
    code, _, err = possim(capsys, "statement", "qr-user-paying-timeout", "--policy", "none", "--lang", "zh",
                          "--out", str(tmp_path / "zh.csv"))
    assert code == 0 and "1 笔交易 ¥25.00" in err and "sale" not in err


def test_slips_with_chinese_headers_match_by_voucher_and_batch_number(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Slips as a Chinese merchant types them: 终端号, 批次号, 凭证号 (the STAN), 金额, no reference number.
    The voucher and batch numbers find the statement's line; a voucher the statement lacks does not."""
    day1 = tmp_path / "day1.csv"
    assert possim(capsys, "statement", "statement-mismatch", "--lang", "zh", "--out", str(day1))[0] == 0
    sold, orphan = list(csv.DictReader(io.StringIO(day1.read_text(encoding="utf-8"))))
    slips = tmp_path / "slips.csv"
    slips.write_text("终端号,批次号,凭证号,金额\n"
                     f"{sold['终端号']},{sold['批次号']},{sold['凭证号']},{sold['金额']}\n"
                     f"{orphan['终端号']},{orphan['批次号']},999999,{orphan['金额']}\n", encoding="utf-8")
    code, out, err = possim(capsys, "reconcile", str(slips), "--statement", str(day1), "--lang", "zh")
    assert code == 1, err
    assert "1 笔交易相符，2 处差异" in out, out
    code, out, _ = possim(capsys, "reconcile", str(slips), "--statement", str(day1), "--json")
    assert json.loads(out)["matched"] == 1
    english = tmp_path / "english.csv"  # the English header names the voucher number stan (or trace) too
    english.write_text(f"terminal,batch,stan,amount\n{sold['终端号']},{sold['批次号']},{sold['凭证号']},{sold['金额']}\n",
                       encoding="utf-8")
    code, out, _ = possim(capsys, "reconcile", str(english), "--statement", str(day1))
    assert "1 sale agrees" in out
    nothing = tmp_path / "amounts.csv"
    nothing.write_text("终端号,金额\nPOS00001,1.00\n", encoding="utf-8")
    code, _, err = possim(capsys, "reconcile", str(nothing), "--statement", str(day1), "--lang", "zh")
    assert code == 2 and "凭证号（voucher）" in err and len(err.splitlines()) == 1


def test_a_scenario_with_its_own_start_reconciles_and_is_handled_on_its_own_days(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """start = 2026-12-07: --scenario gives reconcile --statement and acquirer-errors the run's clock, so the
    journal's sales fall on the statement's day and the error handling runs the next business day."""
    day = tmp_path / "day.toml"
    day.write_text('title = "A Monday"\ndescription = "The first answer is lost."\nstart = 2026-12-07T14:03:05\n'
                   '[[faults]]\naction = "drop"\ndirection = "to_terminal"\nmti = "0210"\nnth = 1\n'
                   '[[transactions]]\namount = "25.00"\n[[transactions]]\namount = "40.00"\n', encoding="utf-8")
    ledger, journal, day1, day2 = (str(tmp_path / n) for n in ("L.db", "J.db", "day1.csv", "day2.csv"))
    assert possim(capsys, "statement", str(day), "--policy", "none", "--ledger-out", ledger, "--journal-out", journal,
                  "--out", day1)[0] == 0
    lines = list(csv.DictReader(io.StringIO(Path(day1).read_text(encoding="utf-8"))))
    assert {r["date_time"][:10] for r in lines} == {"2026-12-07"} and len(lines) == 2
    code, out, _ = possim(capsys, "reconcile", journal, "--statement", day1, "--scenario", str(day), "--json")
    check = json.loads(out)
    assert (code, check["matched"], [d["kind"] for d in check["differences"]]) == (1, 1, ["charged_without_sale"])
    orphan = check["differences"][0]["rrn"]
    code, out, _ = possim(capsys, "acquirer-errors", "--ledger", ledger, "--rrn", orphan, "--scenario", str(day))
    assert code == 0 and "error handling on 2026-12-08" in out and "refunded 25.00" in out
    assert possim(capsys, "statement", ledger, "--scenario", str(day), "--out", day2)[0] == 0
    [refund] = list(csv.DictReader(io.StringIO(Path(day2).read_text(encoding="utf-8"))))
    assert (refund["date_time"], refund["rrn"], refund["adjustments"]) == ("2026-12-08 09:00:00", orphan, "-25.00")
    code, out, _ = possim(capsys, "reconcile", journal, "--statement", day2, "--scenario", str(day))
    assert code == 0 and "statement and records agree" in out

def _cup_exchange(terminal: Terminal, host: AcquirerHost, actions: list[object], now: float) -> float:
    """Play a CUP terminal against a CUP host to the end (the host waits for the issuer)."""
    while sends(actions):  # type: ignore[arg-type]
        out: list[object] = []
        for send in sends(actions):  # type: ignore[arg-type]
            now += 1
            answered = host.receive(now, send.data)
            for wait in [a for a in answered if isinstance(a, AwaitIssuer)]:
                answered = host.issuer_answered(now, wait.key)
            for reply in replies(answered):
                out += terminal.receive(now, reply.data)
        actions = out
    return now


def test_the_statement_batch_is_the_batch_each_cup_sale_was_in() -> None:
    """Sale 1 is settled in batch 1 (its batch end closed it); sale 2, sold after, is in batch 2,
    still open: each statement line names its own batch (60.2), not a fixed 000001."""
    terminal, host = new_terminal(profile="cup"), new_host(profile="cup")
    now = _cup_exchange(terminal, host, terminal.request_payment(0, purchase(1, amount=100_00)), 0)
    now = _cup_exchange(terminal, host, terminal.settle(now), now)
    assert terminal.batch_number == 2
    _cup_exchange(terminal, host, terminal.request_payment(now, purchase(2, amount=200_00)), now)
    lines = build(host.ledger.conn, DAY, FeeSchedule()).lines
    assert sorted((str(line.amount), line.batch) for line in lines) == [("100.00", "000001"), ("200.00", "000002")]

# ruff: noqa: RUF001 - Chinese text uses full-width punctuation
"""A Chinese class reads Chinese: every view of every shipped scenario under ``--lang zh``.

Run text, the HTML report, compare (text and report), the statement (CSV and summary),
``reconcile`` of the scenario and ``reconcile --statement``, and the demo are rendered
through the command line and searched for English left in them, for euros and for the
generic Visa-range test card. What may stay Latin is small and explicit:

- a single Latin token: abbreviations and names the Chinese text labels beside them
  (MTI 0200, F39, STAN, RRN, MAC, CUP, QR, TID, terminal ids, scenario file names);
- command lines a reader types (``possim compare merchant-chain``, ``--policy none``);
- ``ALLOWED``: technical phrases kept in English on purpose.

Anything else made of two or more Latin words in a row is untranslated text, and a policy's
name as ``--policy`` takes it (``none``, ``reversal``...) outside a command line is too.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from possim.cli import cli, main
from possim.i18n import Tr
from possim.pos_sim.config import POLICIES
from possim.scenario import ScenarioError, from_dict, load
from tests.conftest import SCENARIOS

#: Technical phrases a Chinese trainer says in English too.
ALLOWED = ("MQTT QoS",)
#: Two or more Latin words in a row (a word glued to a number, like the unit in "0.050s", is not one).
LATIN_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z'’.-]*(?:[ ]+[A-Za-z][A-Za-z'’.-]*)+")
#: A possim command line: the program, then ASCII words, options, placeholders, files and numbers.
COMMAND = re.compile(r"possim(?: +(?:--?[a-z][a-z-]*|<[^<>\s]+>|[A-Za-z0-9_./-]+))+")
POLICY_WORD = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, POLICIES), key=len, reverse=True))
                         + r")(?![\w-])")
#: The generic test cards, whole or masked (first 6, last 4).
VISA_CARD = re.compile(r"(?<!\d)4\d{5}(?:\d{6}|\*{6})\d{4}(?!\d)")


def _text(page: str) -> str:
    """What a person reads on an HTML page: no scripts, styles or tags."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def leaks(text: str) -> list[str]:
    """Untranslated text, euros and Visa-range cards in ``text``, each once."""
    for phrase in ALLOWED:
        text = text.replace(phrase, " ")
    text = COMMAND.sub(" ", text)
    found = set(LATIN_RUN.findall(text)) | {f"policy name {m}" for m in POLICY_WORD.findall(text)}
    found |= {"€"} if "€" in text else set()
    found |= {f"card {m}" for m in VISA_CARD.findall(text)}
    return sorted(found)


def test_the_detector_flags_english_and_lets_labelled_tokens_and_commands_pass() -> None:
    assert leaks("策略 none（种子 1，memory）") == ["policy name none"]
    assert leaks("消费：credit, standard merchant 0.6%") == ["standard merchant"]
    assert leaks("持卡人被扣款 €25.00，卡号 400000******0002") == ["card 400000******0002", "€"]
    assert leaks("-> 0200 消费 流水号 000001 参考号 329100000001，MAC 错误，10.050s MAC") == []
    assert leaks("（在 possim 中：possim acquirer-errors --ledger LEDGER --rrn 329100000002）") == []
    assert leaks("重放：possim run <名称> --policy none --report act.html --lang zh") == []
    assert leaks("response-lost：相同故障，reversal-escalated") == []


def _views(runner: CliRunner, name: str) -> dict[str, str]:
    """Every view of scenario ``name`` in Chinese, by view."""
    def out(*args: str) -> str:
        result = runner.invoke(cli, [*args, "--lang", "zh"], env={"COLUMNS": "200"})
        assert result.exit_code in (0, 1), f"{args}: {result.output}"
        return result.output

    views = {"run": out("run", name, "--report", "run.html"), "compare": out("compare", name, "--report", "cmp.html")}
    views["report"] = _text(Path("run.html").read_text(encoding="utf-8"))
    views["compare report"] = _text(Path("cmp.html").read_text(encoding="utf-8"))
    views["reconcile"] = out("reconcile", name)
    if not load(name).is_fleet:  # a fleet's statement is of its hosts' ledgers (possim load), not of a run
        for leftover in ("L.db", "J.db", "S.csv"):
            Path(leftover).unlink(missing_ok=True)
        runner.invoke(cli, ["statement", name, "--ledger-out", "L.db", "--journal-out", "J.db", "--out", "S.csv",
                            "--lang", "zh"])
        if Path("S.csv").exists():  # a run whose ledger booked no money has no statement (one error line)
            views["statement CSV"] = Path("S.csv").read_text(encoding="utf-8")
            views["statement"] = out("statement", "L.db", "--scenario", name)
            views["reconcile --statement"] = out("reconcile", "J.db", "--statement", "S.csv")
    return views


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.toml")))
def test_every_view_of_a_shipped_scenario_is_chinese(name: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Tr.missing.clear()
    views = _views(CliRunner(), name)
    found = {view: leaks(text) for view, text in views.items() if leaks(text)}
    assert found == {}
    assert sorted(m for _, m in Tr.missing) == []
    assert "¥" in views["run"] + views["reconcile"]


def test_the_demo_is_chinese_from_the_first_act_to_the_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--lang", "zh", "--pace", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert leaks(result.output) == []
    assert result.output.count("¥") > 10
    cards, qr = result.output.split("付款码", 1)  # the QR act's title: a wallet payment, paid by the customer
    assert "持卡人损失" in cards and "持卡人被扣款但交易未成功" in cards
    assert "持卡人" not in qr, qr
    assert "顾客被扣款但交易未成功" in qr and "顾客损失" in qr


def test_the_chinese_statement_reads_back_and_english_keeps_its_columns(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A Chinese statement CSV is the one reconcile --statement reads; English keeps the column codes."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    zh = runner.invoke(cli, ["statement", "statement-mismatch", "--lang", "zh", "--journal-out", "J.db",
                             "--out", "zh.csv"])
    en = runner.invoke(cli, ["statement", "statement-mismatch", "--lang", "en", "--out", "en.csv"])
    assert zh.exit_code == en.exit_code == 0
    header_zh, first_zh = Path("zh.csv").read_text(encoding="utf-8").splitlines()[:2]
    header_en, first_en = Path("en.csv").read_text(encoding="utf-8").splitlines()[:2]
    assert header_zh == "交易时间,终端号,批次号,凭证号,参考号,授权码,卡号,金额,手续费,净额,调整,摘要"
    assert header_en.startswith("date_time,terminal,batch,voucher,rrn,")
    assert first_zh.startswith("2026-11-25 10:00:00,POS00001,000001,000001,") and "621234******0010" in first_zh
    assert first_en.split(",")[6] == "400000******0010"  # English runs the scenario as written
    assert first_zh.split(",")[7:11] == first_en.split(",")[7:11]  # the same money in both worlds
    check = runner.invoke(cli, ["reconcile", "J.db", "--statement", "zh.csv", "--lang", "zh"])
    assert check.exit_code == 1 and "有扣款无交易" in check.output and "凭证号 000002" in check.output


def test_a_scenario_names_its_business_day_and_every_view_dates_by_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """start = ...: the remedy and the statement name the date and time of the sale, never run seconds."""
    monkeypatch.chdir(tmp_path)
    Path("day.toml").write_text(
        'title = "A Monday sale"\ndescription = "The answer is lost."\nstart = 2026-12-07T14:03:05\n'
        '[[faults]]\naction = "drop"\ndirection = "to_terminal"\nmti = "0210"\nnth = 1\n'
        '[[transactions]]\namount = "25.00"\n', encoding="utf-8")
    runner = CliRunner()
    run = runner.invoke(cli, ["run", "day.toml", "--policy", "none", "--no-timeline", "--lang", "zh"],
                        env={"COLUMNS": "200"})
    assert "批次号 000001、凭证号 000001、参考号 341140000001 和交易时间 2026-12-07 14:03:05（¥25.00）" in run.output
    assert "t = " not in run.output and "秒" not in run.output.split("商户应该怎么做")[1].split("\n\n")[0]
    statement = runner.invoke(cli, ["statement", "day.toml", "--lang", "zh"])
    assert statement.output.splitlines()[1].startswith("2026-12-07 14:03:05,POS00001,000001,000001,341140000001,")
    english = runner.invoke(cli, ["run", "day.toml", "--policy", "none", "--no-timeline"], env={"COLUMNS": "200"})
    assert ("batch no. 000001, voucher no. 000001, reference no. (RRN) 341140000001, date and time "
            "2026-12-07 14:03:05 (€25.00)") in english.output
    with pytest.raises(ScenarioError, match=r"^scenario: start: Input should be a valid datetime"):
        from_dict({"title": "t", "description": "d", "start": "yesterday", "transactions": [{"amount": "1.00"}]})


def test_no_message_is_in_the_catalogue_twice() -> None:
    """Blocks added side by side must not define one English text twice (the compiler keeps only one)."""
    from collections import Counter

    from babel.messages.pofile import read_po

    from possim.i18n import LOCALE_DIR

    po = (LOCALE_DIR / "zh" / "LC_MESSAGES" / "possim.po").read_text(encoding="utf-8")
    ids = ["".join(re.findall(r'"(.*)"', m)) for m in re.findall(r'^msgid ((?:".*"\n)+)', po, flags=re.M)]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    with (LOCALE_DIR / "zh" / "LC_MESSAGES" / "possim.po").open("rb") as f:
        assert len(read_po(f)) == len(ids) - 1  # the header's empty msgid is not a message


def _run(runner: CliRunner, *args: str) -> str:
    """``possim run`` in memory, 200 columns wide: its output (exit 0 or 1, never an error)."""
    result = runner.invoke(cli, ["run", *args], env={"COLUMNS": "200"})
    assert result.exit_code in (0, 1), result.output
    return result.output


def test_the_counter_is_shown_once_at_clock_time_and_ends_on_the_refund(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A wallet run's counter table: once (in the lesson), at the business day's clock time; a cancel the
    gateway refused as too late ends on the refund (退款), the till never says unpaid, and the policy's
    name is the cancel's (撤销), never the card reversal's (冲正)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for name, lang, title in (("qr-cancel-race", "zh", "收银台前"), ("qr-cancel-race", "en", "At the counter"),
                              ("card-failed-then-qr", "en", "At the counter")):
        lines = [line.strip() for line in _run(runner, name, "--lang", lang).splitlines()]
        assert lines.count(title) == 1, (name, lang)
    out = _run(runner, "qr-cancel-after-midnight", "--lang", "zh", "--policy", "reversal")
    counter = out.split("收银台前")[1].split("商户应该怎么做")[0]
    assert [c for c in ("23:59:40", "23:59:55", "00:00:10") if c not in counter] == []
    assert "50380" not in counter and "未支付" not in counter
    assert "退款完成" in counter and "撤销完成" not in counter
    assert "策略 自动撤销" in out and "自动冲正" not in out
    assert "策略 自动冲正" in _run(runner, "response-lost", "--lang", "zh", "--policy", "reversal")


def test_zh_run_names_lines_and_stans_in_chinese(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Line names, the STAN of a mismatch and its colons are Chinese; a card limit is a purchase's
    (消费), never a cash withdrawal's (取款), and a declined request is not booked."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    backup = _run(runner, "backup-line", "--lang", "zh")
    assert re.findall(r"\b(?:primary|backup)\b", backup.replace("backup-line", "")) == []
    assert "放弃主线路（连续超时）：改走备用线路" in backup
    _run(runner, "response-lost", "--lang", "zh", "--report", "r.html")
    report = _text(Path("r.html").read_text(encoding="utf-8"))
    assert "STAN" not in report and "单边账（流水号 000001）：主机结算了" in report and "扣款: " not in report
    limit = _run(runner, "transaction-limit", "--lang", "zh")
    assert "取款" not in limit and "65（超出消费次数限制）" in limit and "记账：拒绝" not in limit
    assert "主机拒绝（61），未记账" in limit
    assert not [line for line in limit.splitlines() if re.fullmatch(r"\s*\d+\.\s*", line)]


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """One in-process ``possim`` call through its entry point (the error line is its work): code, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.mark.parametrize("args, literal", [
    (("run", "response-lots"), "'response-lost'"),
    (("run", "{tmp}/nothing.toml"), "{tmp}/nothing.toml"),
    (("acquirer-errors", "--ledger", "{tmp}/slips.csv", "--on", "tomorrow"), "'tomorrow'"),
    (("statement", "{tmp}/slips.csv"), "{tmp}/slips.csv"),
    (("reconcile", "{tmp}/slips.csv", "--statement", "{tmp}/missing.csv"), "{tmp}/missing.csv"),
    (("reconcile", "{tmp}/slips.csv", "--statement", "{tmp}/slips.csv"), "(date_time)"),
])
def test_a_chinese_error_line_is_chinese_and_names_keys_and_paths_as_given(
        args: tuple[str, ...], literal: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under zh the ``possim: error:`` line is Chinese, prefix and message; still one line and exit code 2."""
    # slips.csv: neither a ledger nor a statement
    (tmp_path / "slips.csv").write_text("terminal,rrn\nPOS00001,1\n", encoding="utf-8")
    words = [a.format(tmp=tmp_path) for a in args]
    code, out, err = _main(capsys, *words, "--lang", "zh")
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("possim：错误：") and literal.format(tmp=tmp_path) in line
    assert leaks(line) == [], line
    monkeypatch.setenv("POSSIM_LANG", "zh")  # the environment's language too, the option before the error or not
    assert _main(capsys, *words)[2] == err
    monkeypatch.delenv("POSSIM_LANG")
    code, _, english = _main(capsys, *words)
    assert code == 2 and english.startswith("possim: error: ") and "错误" not in english


def test_reconcile_against_a_file_that_is_no_statement_says_which_columns_in_chinese(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The statement's columns are named by the Chinese statement's labels, with the code the CSV may use."""
    (tmp_path / "notes.csv").write_text("终端号,备注\nPOS00001,x\n", encoding="utf-8")
    code, _, err = _main(capsys, "reconcile", str(tmp_path / "notes.csv"), "--statement", str(tmp_path / "notes.csv"),
                         "--lang", "zh")
    assert code == 2
    assert "缺少 交易时间 (date_time)、参考号 (rrn)、金额 (amount)" in err and "终端号 (terminal)）" not in err

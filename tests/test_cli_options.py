# ruff: noqa: RUF001 - Chinese text uses full-width punctuation
"""Every command that prints a result has --json; every command that prints for people has --lang.

The rule is checked on the click group itself, so a new command is held to it the day it is
added; the exceptions are few and each says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from possim.cli import cli
from possim.i18n import Tr

#: Commands without --json: what they print is not a result another program reads.
NO_JSON = {
    "broker": "runs Mosquitto until stopped; prints only its readiness line on stderr",
    "acquirer": "serves until stopped; its output is the JSON event log on stderr",
    "demo": "a narrated walk-through for a room of people, not a result",
    "lab": "serves a web page until stopped; prints only its readiness line",
}
#: Commands without --lang: nothing they print is meant for people to read.
NO_LANG = {
    "broker": "Mosquitto's readiness line only",
}


def _options(command: click.Command) -> set[str]:
    return {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}


def _cases() -> list[object]:
    cases = []
    for name in sorted(cli.commands):
        for kind, flag, exempt in (("json", "--json", NO_JSON), ("lang", "--lang", NO_LANG)):
            if name in exempt:
                continue
            cases.append(pytest.param(name, flag, id=f"{name}-{kind}"))
    return cases


@pytest.mark.parametrize("name, flag", _cases())
def test_every_command_has_the_option(name: str, flag: str) -> None:
    assert flag in _options(cli.commands[name])


def test_the_exceptions_name_real_commands() -> None:
    assert set(NO_JSON) | set(NO_LANG) <= set(cli.commands)


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_merchants_day_in_chinese_and_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """statement, reconcile --statement and acquirer-errors speak Chinese with --lang zh and print JSON with --json."""
    monkeypatch.chdir(tmp_path)
    Tr.missing.clear()
    code, out = _invoke("statement", "statement-mismatch", "--ledger-out", "L.db", "--journal-out", "J.db",
                        "--out", "day1.csv", "--lang", "zh")
    assert code == 0 and "的对账单" in out
    code, out = _invoke("statement", "L.db", "--scenario", "statement-mismatch", "--json")
    assert code == 0 and json.loads(out)["lines"]
    code, out = _invoke("reconcile", "J.db", "--statement", "day1.csv", "--lang", "zh")
    assert code == 1 and "处理办法" in out and "对账单与记录不符" in out and "what to do" not in out
    code, out = _invoke("acquirer-errors", "--ledger", "L.db", "--rrn", "329100000002", "--lang", "zh")
    assert code == 0 and "差错处理" in out and "已退款" in out
    assert Tr.missing == set()


def test_list_glossary_and_keys_as_json_and_in_chinese(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = _invoke("list", "--json")
    assert code == 0 and json.loads(out)["response-lost"]["fleet"] is False
    code, out = _invoke("list", "--lang", "zh")
    assert code == 0 and "response-lost                  批准应答在返回途中丢失" in out.splitlines()
    code, out = _invoke("glossary", "--json", "--lang", "zh")
    assert code == 0 and {"english": "orphaned debit", "chinese": "单边账",
                          "meaning": "银行已扣款，终端却显示交易失败。"} in json.loads(out)["terms"]
    code, out = _invoke("keys", "--out", "k.json", "--terminals", "1", "--json")
    assert code == 0 and set(json.loads(out)["key_check_values"]) == {"POS00001"}
    assert "mac_key" not in out
    code, out = _invoke("keys", "--out", "k2.json", "--terminals", "1", "--lang", "zh")
    assert code == 0 and "密钥校验值" in out


def test_a_terminal_process_summary_as_text_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    from possim.cli.processes import _print_summary

    Tr.missing.clear()
    _print_summary({"transactions": 2, "approved": 1, "quiescent": True, "settlement": "balanced after batch upload"},
                   False, "zh")
    out = capsys.readouterr().out
    assert "批上送后平账" in out and "是" in out and "quiescent" not in out
    assert Tr.missing == set()
    _print_summary({"transactions": 2, "quiescent": False}, True, "zh")
    assert json.loads(capsys.readouterr().out) == {"transactions": 2, "quiescent": False}

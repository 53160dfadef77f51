# ruff: noqa: RUF001 - Chinese text uses full-width punctuation
"""Click's own usage errors (a wrong option, a missing argument) speak the reader's language.

The Chinese line names options and values literally and nothing else in English; the English line
is exactly what click wrote, so translating it never changed it.
"""

from __future__ import annotations

import re

import click
import pytest

from possim.cli import cli, main
from possim.cli.usage import said

#: (command line, what the Chinese line must say): one case per click text possim translates.
CASES = [
    (["run", "response-lost", "--policy", "bogus"], "'--policy' 的值无效：'bogus' 不是可选值"),
    (["run", "response-lost", "--polcy", "x"], "没有选项 '--polcy'。（是不是想用其中之一：'--policy', '--profile'？）"),
    (["run", "response-lost", "--seed", "abc"], "'--seed' 的值无效：'abc' 不是有效的整数。"),
    (["run"], "缺少参数 'SCENARIO'。"),
    (["run", "response-lost", "a", "b"], "多出几个参数（a b）"),
    (["run", "response-lost", "a"], "多出一个参数（a）"),
    (["runn", "x"], "没有命令 'runn'。是不是想用 'run'？"),
    (["run", "response-lost", "--json=3"], "选项 '--json' 不带值。"),
    (["run", "response-lost", "--lang", "zh", "--seed"], "选项 '--seed' 需要一个值。"),
]
#: Latin words a Chinese line may carry: option names, values and choices the user typed or may type.
LITERAL = re.compile(r"'[^']*'|\b[a-z]\b|--[a-z-]+")


def _line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return int(str(ended.value.code)), err.strip()


@pytest.mark.parametrize(("argv", "chinese"), CASES)
def test_a_usage_error_is_one_chinese_line_under_zh(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                    chinese: str) -> None:
    code, line = _line(capsys, argv if "--lang" in argv else [*argv, "--lang", "zh"])
    assert code == 2 and line.startswith("possim：错误：") and chinese in line, line
    assert re.findall(r"[A-Za-z]{3,}", LITERAL.sub(" ", line.removeprefix("possim"))) == [], line


@pytest.mark.parametrize(("argv", "chinese"), CASES)
def test_the_english_line_is_clicks_own_text(capsys: pytest.CaptureFixture[str], argv: list[str],
                                             chinese: str) -> None:
    argv = [a for a in argv if a not in ("--lang", "zh")]
    with pytest.raises(click.UsageError) as raised:
        cli.main(args=argv, standalone_mode=False)
    code, line = _line(capsys, argv)
    assert code == 2 and line == f"possim: error: {raised.value.format_message()}"


def test_a_text_click_words_some_other_way_is_left_as_it_is() -> None:
    assert said("something click says one day") == "something click says one day"
    assert type(said("something click says one day")) is str

"""The commands of README.md and docs/*.md run as written, from an empty folder, as after ``pip install``.

Rules (README.md, "Running scenarios", says them to the reader too):

- every line of a fenced ``sh`` block that starts with ``possim`` is run (a line ending in ``\\``
  continues on the next), in order, all the blocks of one file in one empty folder, so the
  files earlier commands write are there for later ones;
- it must exit 0, or N when its comment says ``# exits N``;
- not run: a block right after the line ``<!-- shells: ... -->`` (processes that run in other
  shells until stopped), a line whose comment says ``# not run: REASON``, and lines that are
  not ``possim`` commands (``make``, ``mkdir``, profilers).

The commands run in this process through ``possim.cli.main``, as the ``possim`` script calls
it; tests/test_install.py checks the installed script itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from possim.cli import main
from tests.conftest import ROOT

SHELLS = "<!-- shells:"
EXITS = re.compile(r"#\s*exits (\d+)\s*$")
NOT_RUN = re.compile(r"#\s*not run:")


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    exits: int

    @property
    def args(self) -> list[str]:
        return shlex.split(self.text, comments=True)[1:]


def commands(path: Path) -> list[Command]:
    """The ``possim`` commands of ``path``'s ``sh`` blocks that the rules above say to run."""
    found: list[Command] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    in_block = skip_block = False
    pending = ""
    for number, line in enumerate(lines, start=1):
        if not in_block:
            if line.strip() == "```sh":
                in_block, skip_block = True, number > 1 and lines[number - 2].startswith(SHELLS)
            continue
        if line.strip() == "```":
            in_block = False
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        if skip_block or not text.startswith("possim ") or NOT_RUN.search(text):
            continue
        match = EXITS.search(text)
        found.append(Command(number, text, int(match.group(1)) if match else 0))
    return found


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_runs_its_bulk() -> None:
    readme = commands(ROOT / "README.md")
    assert len(readme) >= 30
    assert not any("scenarios/" in c.text for c in readme)


def test_the_rules_leave_out_what_they_say_and_nothing_else(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```sh\nmake demo\npossim list   # the names\npossim run x \\\n    --json   # exits 2\n"
                   "possim demo --pace 1   # not run: minutes\n```\n\n<!-- shells: not run -->\n```sh\n"
                   "possim broker\n```\n")
    assert commands(doc) == [Command(3, "possim list   # the names", 0),
                             Command(5, "possim run x  --json   # exits 2", 2)]
    assert commands(doc)[1].args == ["run", "x", "--json"]


def _exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(args)
    return int(exited.value.code or 0)


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if commands(p)], ids=lambda p: p.name)
def test_every_command_runs_as_written(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POSSIM_LANG", raising=False)
    for command in commands(path):
        code = _exit_code(command.args)
        out = capsys.readouterr()
        assert code == command.exits, f"{path.name}:{command.line}: {command.text}\n{out.out[-2000:]}{out.err[-2000:]}"

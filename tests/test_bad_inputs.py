"""Bad input through the real command line: one line naming the key or path, exit 2, no traceback, no file touched.

Each row of ``CASES`` is a command a user might type with something wrong in it: a path
that cannot be written, a port already taken, a damaged ledger or journal, a typo or a
negative amount in a scenario, an impossible ``[expect]``. The command runs as a real
``python -m possim`` process; the test folder is compared byte for byte before and after.

A full disk cannot be made portably from outside the process, so those cases drive
``possim.cli.main`` in this process with SQLite's own limit (``PRAGMA max_page_count``) on
the journal's or the ledger's connection: SQLite then fails exactly as on a full disk (SQLITE_FULL).
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from possim.acquirer_sim import ledger as ledger_module
from possim.cli import main
from possim.judging.checker import Finding
from possim.pos_sim import journal as journal_module
from possim.protocol import storage
from possim.views.console import finding_line
from tests.conftest import SCENARIOS

POSSIM = [sys.executable, "-m", "possim"]
SHIPPED = (SCENARIOS / "response-lost.toml").read_text()

Setup = Callable[[Path, Path], None]


def possim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSSIM, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real journal and ledger from a real run (``j.db``, ``l.db``), copied and damaged by the cases."""
    folder = tmp_path_factory.mktemp("pristine")
    out = possim("run", "response-lost", "--policy", "none", "--json", "--journal", "j.db", "--ledger", "l.db",
                 cwd=folder)
    assert out.returncode == 0, out.stderr
    return folder


def _copy(name: str, damaged: bool = False) -> Setup:
    """Copy the pristine ``name``; ``damaged``: garbage over the root page of its main table."""

    def setup(src: Path, dst: Path) -> None:
        data = bytearray((src / name).read_bytes())
        if damaged:
            table = "journal" if name == "j.db" else "entries"
            with closing(sqlite3.connect(src / name)) as conn:
                (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
                (size,) = conn.execute("PRAGMA page_size").fetchone()
            data[(root - 1) * size:root * size] = b"\xff" * size  # 0xff is no b-tree page type
        (dst / name).write_bytes(bytes(data))

    return setup


def _file(name: str, text: str) -> Setup:
    def setup(_src: Path, dst: Path) -> None:
        (dst / name).write_text(text)

    return setup


def _scenario(old: str, new: str) -> Setup:
    """The shipped response-lost scenario with ``old`` replaced by ``new`` (which must be there)."""
    assert old in SHIPPED
    return _file("bad.toml", SHIPPED.replace(old, new, 1))


def _both(*setups: Setup) -> Setup:
    def setup(src: Path, dst: Path) -> None:
        for s in setups:
            s(src, dst)

    return setup


def _nothing(_src: Path, _dst: Path) -> None:
    """The case needs no file of its own."""


RUN = ["run", "response-lost"]
TCP_NOWHERE = ["--transport", "tcp", "--connect", "tcp://127.0.0.1:1"]

# (command with {port} for a port another socket listens on, files it needs, what the one line must say)
CASES: list[Any] = [
    pytest.param([*RUN, "--journal", "/proc/possim-j.db"], _nothing,
                 ["/proc/possim-j.db", "cannot create a file in folder /proc"], id="journal-unwritable-folder"),
    pytest.param([*RUN, "--ledger", "/proc/possim-l.db"], _nothing,
                 ["/proc/possim-l.db", "cannot create a file in folder /proc"], id="ledger-unwritable-folder"),
    pytest.param([*RUN, "--ledger", "new.db", "--journal", "/proc/possim-j.db"], _nothing,
                 ["/proc/possim-j.db"], id="good-ledger-is-not-created-when-the-journal-cannot-be"),
    pytest.param([*RUN, "--journal", "plain/j.db"], _file("plain", "a file, not a folder"),
                 ["plain/j.db", "is a file, not a folder"], id="journal-under-a-file"),
    pytest.param(["broker", "--port", "{port}"], _nothing,
                 ["port {port} on 127.0.0.1 is already in use"], id="broker-port-taken"),
    pytest.param(["keys", "--out", "/proc/keys.json", "--terminals", "2"], _nothing,
                 ["/proc/keys.json", "cannot write in folder /proc"], id="keys-unwritable-folder"),
    pytest.param(["keys", "--out", "/nonexistent-possim/dir/keys.json", "--terminals", "2"], _nothing,
                 ["/nonexistent-possim/dir/keys.json", "does not exist"], id="keys-missing-folder"),
    pytest.param(["check", "--journal", "j.db", "--ledger", "l.db"], _both(_copy("j.db", True), _copy("l.db")),
                 ["j.db: corrupted journal"], id="check-corrupted-journal"),
    pytest.param(["check", "--journal", "j.db", "--ledger", "l.db"], _both(_copy("j.db"), _copy("l.db", True)),
                 ["l.db: corrupted ledger"], id="check-corrupted-ledger"),
    pytest.param(["check", "--journal", "j.db", "--ledger", "l.db"],
                 _both(_file("j.db", "not a database\n" * 300), _copy("l.db")),
                 ["j.db: not a possim journal: not a SQLite database"], id="check-journal-not-sqlite"),
    pytest.param(["terminal", "response-lost", "--tid", "POS00001", "--journal", "j.db", *TCP_NOWHERE],
                 _copy("j.db", True), ["j.db: corrupted journal"], id="terminal-resumes-corrupted-journal"),
    pytest.param(["terminal", "response-lost", "--tid", "POS00001", "--broker", "mqtt://127.0.0.1:1", "--connect",
                  "tcp://127.0.0.1:1", "--connect", "tcp://127.0.0.1:2"], _nothing,
                 ["several --connect addresses (backup lines) need --transport tcp"], id="backup-lines-over-mqtt"),
    pytest.param(["run", "bad.toml"], _scenario("nth = 1", 'nth = 1\n[[line_outages]]\nhost = "b"\nstart = 0\nend = 9'),
                 ["bad.toml", "line_outages: host 'b' is not one of [terminal] hosts"],
                 id="scenario-outage-of-no-line"),
    pytest.param(["acquirer", "--broker", "mqtt://127.0.0.1:1", "--ledger", "l.db"], _copy("l.db", True),
                 ["l.db: corrupted ledger"], id="acquirer-serves-corrupted-ledger"),
    pytest.param(["run", "bad.toml"], _scenario('amount = "25.00"', 'amount = "-5.00"'),
                 ["bad.toml", "transactions.0.amount", "'-5.00'", "negative"], id="scenario-negative-amount"),
    pytest.param(["run", "bad.toml"], _scenario('amount = "25.00"', 'amount = "0.00"'),
                 ["bad.toml", "transactions.0.amount", "zero amounts are not allowed"], id="scenario-zero-amount"),
    pytest.param(["run", "bad.toml"], _scenario('amount = "25.00"', 'ammount = "25.00"'),
                 ["bad.toml", "transactions.0.ammount: unknown key (did you mean 'amount'?)",
                  "transactions.0.amount: required"], id="scenario-typo-key"),
    pytest.param(["run", "bad.toml"], _scenario("nth = 1", "nht = 1\nwhen = 2"),
                 ["faults.0.nht: unknown key (did you mean 'nth'?)", "faults.0.when: unknown key (known: action"],
                 id="scenario-every-problem-in-one-line"),
    pytest.param(["run", "bad.toml"], _scenario("phantom_approvals = 0", 'phantom_approvals = "25.001"'),
                 ["bad.toml", "expect.phantom_approvals", "'25.001'", "whole number"], id="expect-count-decimals"),
    pytest.param(["run", "bad.toml"], _scenario('customer_loss = "25.00"', 'customer_loss = "-5.00"'),
                 ["bad.toml", "expect.none.customer_loss", "'-5.00'", "negative"], id="expect-negative-money"),
    pytest.param(["run", "bad.toml"], _scenario('customer_loss = "25.00"', 'customer_loss = ">= 25.001"'),
                 ["bad.toml", "expect.none.customer_loss", "two decimals"], id="expect-money-three-decimals"),
]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, setup, needles", CASES)
def test_bad_input_is_one_line_naming_it_exit_2_and_touches_nothing(
        args: list[str], setup: Setup, needles: list[str], pristine: Path, tmp_path: Path, taken_port: int) -> None:
    setup(pristine, tmp_path)
    before = _snapshot(tmp_path)
    out = possim(*(a.format(port=taken_port) for a in args), cwd=tmp_path)
    lines = out.stderr.splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("possim: error: "), out.stderr
    for needle in needles:
        assert needle.format(port=taken_port) in lines[0], lines[0]
    assert out.stdout == ""
    assert _snapshot(tmp_path) == before
    assert not any(Path(a).exists() for a in args if a.startswith(("/proc/", "/nonexistent")))


# A full disk, in this process: the journal's connection may not grow past its pages at open.

SALES = 60
MANY = f"""title = "many sales"
description = "More sales than a journal page holds, so the journal must grow."
seed = 1

[[transactions]]
at = 0
amount = "1.00"
count = {SALES}
every = 0.05
"""


def _run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err.splitlines()


def _cannot_grow(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """Every file ``module`` opens from now on holds no page beyond those it has at open (SQLITE_FULL after)."""
    real_open = module.open_file

    def capped(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_open(*args, **kwargs)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(module, "open_file", capped)


@pytest.fixture
def journal_cannot_grow(monkeypatch: pytest.MonkeyPatch) -> None:
    _cannot_grow(monkeypatch, journal_module)


@pytest.fixture
def ledger_cannot_grow(monkeypatch: pytest.MonkeyPatch) -> None:
    _cannot_grow(monkeypatch, ledger_module)


@pytest.mark.parametrize("option, what", [("--journal", "journal"), ("--ledger", "ledger")])
def test_a_file_on_a_full_disk_is_one_line_and_leaves_no_file(
        option: str, what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(storage, "FILE_PRAGMAS", (*storage.FILE_PRAGMAS, "PRAGMA max_page_count = 1"))
    path = tmp_path / "f.db"
    code, out, err = _run_main([*RUN, option, str(path)], capsys)
    assert code == 2 and out == ""
    assert err == [f"possim: error: {path}: cannot write the {what}: the disk is full"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("transport", [["--transport", "memory"], ["--transport", "tcp"]])
@pytest.mark.usefixtures("journal_cannot_grow")
def test_a_terminal_whose_journal_fills_stops_sending_says_why_and_exits_2(
        transport: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No request reaches the host without its journal row: the Send after a failed write never happens.

    Exit 2, as for every file possim cannot use: 1 would mean "judged, and expectations broken",
    and a run whose terminal stopped is not judged at all (nothing on stdout).
    """
    (tmp_path / "many.toml").write_text(MANY)
    journal, ledger = tmp_path / "j.db", tmp_path / "l.db"
    code, out, err = _run_main(["run", str(tmp_path / "many.toml"), "--policy", "reversal", *transport,
                                "--journal", str(journal), "--ledger", str(ledger)], capsys)
    assert code == 2 and out == ""
    assert err == [f"possim: error: {journal}: cannot write the journal: the disk is full; "
                   "the terminal stopped and sent nothing after it"]
    with closing(sqlite3.connect(journal)) as j, closing(sqlite3.connect(ledger)) as lg:
        journaled = {stan for (stan,) in j.execute("SELECT stan FROM journal")}
        received = {stan for (stan,) in lg.execute("SELECT stan FROM originals")}
    assert 0 < len(journaled) < SALES
    assert received <= journaled, f"the host got requests the journal never held: {sorted(received - journaled)}"


@pytest.mark.parametrize("transport", [["--transport", "memory"], ["--transport", "tcp"]])
@pytest.mark.usefixtures("ledger_cannot_grow")
def test_a_run_whose_ledger_fills_stops_says_why_and_exits_2(
        transport: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "many.toml").write_text(MANY)
    ledger = tmp_path / "l.db"
    code, out, err = _run_main(["run", str(tmp_path / "many.toml"), *transport, "--ledger", str(ledger)], capsys)
    assert code == 2 and out == ""
    assert err == [f"possim: error: {ledger}: cannot write the ledger: the disk is full; the run stopped"]


# A finding for money no journal row owns names the request, not "txn None".

def test_a_finding_without_a_journal_row_names_the_request(pristine: Path, tmp_path: Path) -> None:
    _copy("j.db")(pristine, tmp_path)
    _copy("l.db")(pristine, tmp_path)
    with closing(sqlite3.connect(tmp_path / "j.db")) as conn:
        conn.execute("DELETE FROM journal")
        conn.commit()
    with closing(sqlite3.connect(tmp_path / "l.db")) as conn:
        (transmission,) = conn.execute("SELECT transmission FROM originals").fetchone()
    sent = f"{transmission[0:2]}-{transmission[2:4]} {transmission[4:6]}:{transmission[6:8]}:{transmission[8:10]}"
    out = possim("check", "--journal", "j.db", "--ledger", "l.db", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    findings = [line.strip() for line in out.stdout.splitlines() if "finding:" in line]
    assert findings == [f"finding: orphaned_debit terminal POS00001 no journal row, sent {sent}, stan 000001 "
                        "amount 25.00"]
    line = finding_line(Finding("open_hold", None, ("POS00001", "000001", transmission), 2500))
    assert line == f"finding: open hold, no journal row, stan 000001 sent {sent}, €25.00"
    assert "None" not in line

"""An acquirer whose ledger is held by someone else waits, logs the wait, and answers: it never wedges.

A ledger file is in write-ahead-log mode, so a reader (a report, ``possim check``) never
blocks the acquirer at all. A writer holding the lock (another tool writing the file) makes
the acquirer wait: SQLite's busy timeout, then a retry of the whole transaction, then the
answer once the lock is released. Over TCP, against a real acquirer process.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from possim.processes.broker import free_port
from tests.procs import is_event, run, running

#: How long the other writer holds the ledger: longer than SQLite's 5 s busy timeout, so the
#: acquirer's first attempt gives up and its retry is what gets through.
HOLD = 7.0

SCENARIO = """
title = "one sale"
description = "One purchase, answered after the ledger was released."
[terminal]
response_timeout = 60
[[transactions]]
amount = "25.00"
"""


def _scenario(tmp_path: Path, sales: int = 1) -> Path:
    path = tmp_path / f"sales-{sales}.toml"
    path.write_text(SCENARIO + f"count = {sales}\n", encoding="utf-8")
    return path


@pytest.mark.asyncio
async def test_a_writer_holding_the_ledger_delays_the_answer_and_the_wait_is_logged(tmp_path: Path) -> None:
    ledger, journal, url = tmp_path / "ledger.db", tmp_path / "journal.db", f"tcp://127.0.0.1:{free_port()}"
    terminal = ("--transport", "tcp", "--connect", url, "--tid", "POS00077", "--journal", str(journal), "--policy",
                "reversal", "--no-log")
    async with running("acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        # the terminal's first day: its life begins (the sign-on writes the ledger) and its first sale
        first = await run("terminal", str(_scenario(tmp_path)), *terminal)
        assert first.returncode == 0, first.stderr
        other = sqlite3.connect(ledger, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, taken before the next sale starts
        try:  # the terminal resumes its journal and life (a sign-on the ledger records), then sells again
            sale = asyncio.create_task(run("terminal", str(_scenario(tmp_path, 2)), *terminal))
            await acquirer.wait_for_line(is_event("msg_received", mti="0800", stan="000003"),
                                         "the resuming sign-on reaching the host")
            await asyncio.sleep(HOLD)  # the hold itself is what is tested, not a wait for something
        finally:
            other.execute("ROLLBACK")
            other.close()
        done = await sale
        line = await acquirer.wait_for_line(is_event("ledger_wait"), "the acquirer logging its wait")
        assert await acquirer.stop() == 0
    summary = json.loads(done.stdout)
    assert done.returncode == 0 and summary["approved"] == 2
    wait = json.loads(line)
    assert wait["attempts"] >= 2 and wait["seconds"] >= HOLD - 1.0


@pytest.mark.asyncio
async def test_a_reader_holding_the_ledger_does_not_delay_the_acquirer(tmp_path: Path) -> None:
    ledger, journal, url = tmp_path / "ledger.db", tmp_path / "journal.db", f"tcp://127.0.0.1:{free_port()}"
    async with running("acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        reader = sqlite3.connect(ledger, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM entries").fetchone()  # a read snapshot held for the whole sale
        try:
            done = await run("terminal", str(_scenario(tmp_path)), "--transport", "tcp", "--connect", url,
                             "--tid", "POS00078", "--journal", str(journal), "--policy", "reversal", "--no-log")
        finally:
            reader.execute("ROLLBACK")
            reader.close()
        assert await acquirer.stop() == 0
    assert done.returncode == 0 and json.loads(done.stdout)["approved"] == 1
    assert "ledger_wait" not in acquirer.log

"""``possim settle``: a terminal process settles its journal's batch with a running acquirer over TCP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from possim.broker import free_port
from tests.processes import run, running
from tests.procs import query

#: One pre-authorization whose completion advice (0220) is lost on its only try.
SCENARIO = """
title = "advice lost"
description = "A pre-authorization completed by an advice that never reaches the acquirer."
policy = "none"
[[faults]]
action = "drop"
direction = "to_host"
mti = "0220"
[[transactions]]
kind = "auth"
amount = "50.00"
completion_amount = "42.00"
"""


@pytest.mark.asyncio
async def test_possim_settle_uploads_the_batch_and_the_acquirer_captures_the_lost_advice(tmp_path: Path) -> None:
    toml, ledger, journal = tmp_path / "advice.toml", tmp_path / "ledger.db", tmp_path / "journal.db"
    toml.write_text(SCENARIO, encoding="utf-8")
    url = f"tcp://127.0.0.1:{free_port()}"
    common = ("--transport", "tcp", "--connect", url, "--tid", "POS00042", "--journal", str(journal), "--no-log",
              "--time-scale", "0.05")
    async with running("acquirer", "--transport", "tcp", "--listen", url, "--ledger", str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        day = await run("terminal", str(toml), *common)
        assert day.returncode == 0, day.stderr
        assert query(ledger, "SELECT state FROM originals") == [("held",)]
        end = await run("settle", str(toml), *common)
        assert await acquirer.stop() == 0
    assert end.returncode == 0, end.stderr
    assert json.loads(end.stdout)["settlement"] == "balanced after batch upload"
    assert query(ledger, "SELECT outcome FROM batch_uploads") == [("captured",)]
    assert query(ledger, "SELECT state FROM originals") == [("captured",)]
    assert query(journal, "SELECT completion FROM journal") == [("acked",)]

"""``possim settle``: a terminal process settles its journal's batch with a running acquirer over TCP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from possim.processes.broker import free_port
from tests.procs import query, run, running

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


#: One sale at a China UnionPay terminal (profile cup): batch numbers in field 60.2.
CUP_SCENARIO = """
title = "one CUP sale"
description = "A China UnionPay terminal sells once; the merchant settles twice."
policy = "reversal"
[terminal]
profile = "cup"
[[transactions]]
kind = "purchase"
amount = "88.00"
"""


@pytest.mark.asyncio
async def test_possim_settle_twice_on_a_cup_terminal_sends_two_batches(tmp_path: Path) -> None:
    """The second settlement is the next batch (60.2 advanced, kept in the journal across processes),
    not the first batch's totals again; the acquirer closed the first batch at its batch end."""
    toml, ledger, journal = tmp_path / "cup.toml", tmp_path / "ledger.db", tmp_path / "journal.db"
    toml.write_text(CUP_SCENARIO, encoding="utf-8")
    url = f"tcp://127.0.0.1:{free_port()}"
    common = ("--transport", "tcp", "--connect", url, "--tid", "POS00088", "--journal", str(journal), "--no-log",
              "--time-scale", "0.05", "--profile", "cup")
    async with running("acquirer", "--transport", "tcp", "--profile", "cup", "--listen", url,
                       "--ledger", str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        day = await run("terminal", str(toml), *common)
        assert day.returncode == 0, day.stderr
        first = await run("settle", str(toml), *common)
        assert first.returncode == 0, first.stderr
        second = await run("settle", str(toml), *common)
        assert await acquirer.stop() == 0
    assert second.returncode == 0, second.stderr
    assert [json.loads(r.stdout)["batch"] for r in (first, second)] == [1, 2]
    assert json.loads(first.stdout)["settlement"] == "balanced"
    assert query(ledger, "SELECT batch, COUNT(*) FROM settled GROUP BY batch") == [("000001", 1)]
    assert query(journal, "SELECT batch, settled_through FROM batches") == [(3, 0)]
    assert query(journal, "SELECT txn_id, batch FROM batch_sales") == [(1, 1)]  # the sale, settled in batch 1


#: A CUP sale the acquirer approves whose answer never reaches the terminal (no recovery): the
#: acquirer counts it, the terminal's batch does not, so the settlement is out of balance.
CUP_LOST_ANSWER = """
title = "CUP answer lost"
description = "A China UnionPay sale is debited but its answer is lost; nothing recovers it."
policy = "none"
[terminal]
profile = "cup"
[[faults]]
action = "drop"
direction = "to_terminal"
mti = "0210"
[[transactions]]
kind = "purchase"
amount = "88.00"
"""


@pytest.mark.asyncio
async def test_an_out_of_balance_cup_batch_is_settled_by_its_batch_end_not_a_second_0500(tmp_path: Path) -> None:
    """CUP sends no second 0500: the summary says the batch end settled the batch, not that a
    settlement after the upload was out of balance."""
    toml, ledger, journal = tmp_path / "cup.toml", tmp_path / "ledger.db", tmp_path / "journal.db"
    toml.write_text(CUP_LOST_ANSWER, encoding="utf-8")
    url = f"tcp://127.0.0.1:{free_port()}"
    common = ("--transport", "tcp", "--connect", url, "--tid", "POS00089", "--journal", str(journal),
              "--time-scale", "0.05", "--profile", "cup")
    async with running("acquirer", "--transport", "tcp", "--profile", "cup", "--listen", url,
                       "--ledger", str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        day = await run("terminal", str(toml), *common, "--no-log")
        assert day.returncode in (0, 1), day.stderr
        end = await run("settle", str(toml), *common, "--trace", str(tmp_path / "settle.jsonl"), "--no-log")
        assert await acquirer.stop() == 0
    assert end.returncode == 0, end.stderr
    assert json.loads(end.stdout)["settlement"] == "out of balance, settled by the batch end"
    sent = [json.loads(line) for line in (tmp_path / "settle.jsonl").read_text().splitlines()]
    assert [e["mti"] for e in sent if e.get("event") == "msg_sent"].count("0500") == 1
    assert query(ledger, "SELECT COUNT(*) FROM settled") == [(1,)]

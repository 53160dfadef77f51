"""Magic amounts: the cents pick the host's behaviour; one table, printed in English and Chinese.

Against a real ``possim acquirer --magic`` process over TCP, with real terminal processes: a .05
sale is declined 05, a .01 sale's answer is lost while its debit stays in the ledger.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from possim.acquirer_sim.magic import TABLE
from possim.broker import free_port
from tests.processes import run, running
from tests.procs import POSSIM, query

SCENARIO = """
title = "one sale"
description = "One purchase of a magic amount."
policy = "none"
[terminal]
response_timeout = 1.5
[[transactions]]
amount = "{amount}"
"""


def _table(*args: str) -> str:
    out = subprocess.run([*POSSIM, "acquirer", "--magic-table", *args], capture_output=True, text=True, timeout=60,
                         check=True)
    return out.stdout


def test_the_magic_table_is_printed_in_english_and_chinese() -> None:
    en, zh = _table(), _table("--lang", "zh")
    for row in TABLE:
        assert f".{row.cents:02d}" in en and row.name in en and row.name in zh
    assert "declined 05" in en and "拒绝 05" in zh and "拒绝 05" not in en


def test_a_scenario_behaviour_with_an_unknown_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.format(amount="12.00") + '[[host.behaviours]]\namount = "12.00"\n'
                    'behaviour = "answer-eaten"\n', encoding="utf-8")
    out = subprocess.run([*POSSIM, "acquirer", "--magic", "--scenario", str(path), "--transport", "tcp"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "answer-eaten" in out.stderr and "behaviours" in out.stderr


async def _sale(tmp_path: Path, url: str, amount: str, tid: str) -> dict[str, object]:
    path = tmp_path / f"sale-{tid}.toml"
    path.write_text(SCENARIO.format(amount=amount), encoding="utf-8")
    done = await run("terminal", str(path), "--transport", "tcp", "--connect", url, "--tid", tid,
                     "--journal", str(tmp_path / f"{tid}.db"), "--no-log")
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


@pytest.mark.asyncio
async def test_magic_amounts_over_tcp_decline_05_and_lose_the_answer_after_the_debit(tmp_path: Path) -> None:
    ledger, url = tmp_path / "ledger.db", f"tcp://127.0.0.1:{free_port()}"
    async with running("acquirer", "--magic", "--transport", "tcp", "--listen", url, "--ledger",
                       str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        declined = await _sale(tmp_path, url, "12.05", "MAGIC005")
        lost = await _sale(tmp_path, url, "12.01", "MAGIC001")
        assert await acquirer.stop() == 0
    assert declined["declined"] == 1
    assert query(ledger, "SELECT response_code, state FROM originals WHERE tid='MAGIC005'") == [("05", "declined")]
    assert lost["approved"] == 0 and lost["declined"] == 0
    assert query(ledger, "SELECT response_code, state, amount FROM originals WHERE tid='MAGIC001'") == [
        ("00", "debited", 1201)]
    assert query(ledger, "SELECT kind, amount FROM entries WHERE tid='MAGIC001'") == [("debit", 1201)]

"""possim load --connect: many terminals against an ISO 8583 host possim does not run itself.

The host under test here is a real ``possim acquirer`` process listening on loopback TCP with
its own SQLite ledger; load knows nothing of it but its address, so its verdict comes from the
terminals' journals alone, and the host's own ledger must agree with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from possim.processes.broker import free_port
from tests.procs import query, run, running


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["iso", "cup"])
async def test_load_drives_an_external_host_and_judges_from_the_journals(tmp_path: Path, profile: str) -> None:
    """Under cup both sides speak CUP bytes with TPDU framing: a framing mismatch would answer nothing."""
    ledger = tmp_path / "ledger.db"
    port = free_port()
    async with running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}",
                       "--ledger", str(ledger), "--profile", profile) as acquirer:
        await acquirer.ready("acquirer_ready")
        done = await run("load", "--transport", "tcp", "--connect", f"127.0.0.1:{port}", "--terminals", "20",
                         "--rate", "40", "--duration", "1", "--json", "--no-progress", "--profile", profile)
        assert await acquirer.stop() == 0
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict_from"] == "journals" and report["settled"] is True and report["profile"] == profile
    assert report["sales_started"] == report["sales_completed"] == report["approved"] == 40
    assert report["requests_counted"] == "sent" and report["requests_per_host"][0] >= 40  # what the host got
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert query(ledger, "SELECT state, count(*) FROM originals GROUP BY state") == [("debited", 40)]
    assert len(query(ledger, "SELECT DISTINCT tid FROM originals")) == 20


@pytest.mark.asyncio
async def test_load_says_in_one_line_when_nothing_listens_at_connect() -> None:
    done = await run("load", "--transport", "tcp", "--connect", f"127.0.0.1:{free_port()}", "--terminals", "2",
                     "--rate", "2", "--duration", "1", "--no-progress")
    assert done.returncode == 2
    assert "cannot connect" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

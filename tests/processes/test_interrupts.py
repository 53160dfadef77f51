"""Ctrl-C on compare, chaos and demo: each ends with the summary of what already ran, exit 130.

Real subprocesses and a real SIGINT, sent only after the command said it is under way (its
first progress line), never after a guessed delay. Also: their ``--json`` and their Chinese.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from rich.console import Console

from possim.i18n import Tr
from possim.processes.chaos import ChaosReport, print_table
from possim.views.demo import ACTS, _stopped
from tests.conftest import SCENARIOS
from tests.procs import EXIT_TIMEOUT, POSSIM, READY_TIMEOUT
from tests.test_cli import possim


class Piped:
    """A possim process with stdout and stderr read line by line as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = asyncio.Condition()
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [asyncio.create_task(self._read(proc.stdout, self.out)),
                         asyncio.create_task(self._read(proc.stderr, self.err))]

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            async with self._changed:
                into.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_line(self, lines: list[str], predicate: Callable[[str], bool], what: str) -> None:
        try:
            async with asyncio.timeout(READY_TIMEOUT), self._changed:
                while not any(predicate(line) for line in lines):
                    assert not all(r.done() for r in self._readers), f"exited before {what}: {self.err}"
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} in {READY_TIMEOUT:g}s: {self.out[-5:]} {self.err[-5:]}") from None

    async def interrupt(self) -> int:
        """SIGINT, then the exit code (the test fails if it does not exit within EXIT_TIMEOUT)."""
        os.kill(self.proc.pid, signal.SIGINT)
        async with asyncio.timeout(EXIT_TIMEOUT):
            code = await self.proc.wait()
            await asyncio.gather(*self._readers)
        return code

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)


@contextlib.asynccontextmanager
async def piped(*args: str) -> AsyncIterator[Piped]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    proc = await asyncio.create_subprocess_exec(*POSSIM, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True, env=env)
    p = Piped(proc)
    try:
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the process and any child it left (chaos: mosquitto)
        await proc.wait()
        await asyncio.gather(*p._readers)


def _big(tmp_path: Path) -> Path:
    """flaky-network with thousands of sales: each policy takes seconds to simulate."""
    text = (SCENARIOS / "flaky-network.toml").read_text().replace("count = 200", "count = 4000")
    path = tmp_path / "big.toml"
    path.write_text(text)
    return path


@pytest.mark.asyncio
async def test_ctrl_c_ends_compare_with_the_policies_that_ran(tmp_path: Path) -> None:
    async with piped("compare", str(_big(tmp_path)), "--no-timelines") as p:
        await p.wait_line(p.err, lambda line: "policy none done" in line, "first policy done")
        code = await p.interrupt()
    assert code == 130, p.err
    assert "compare interrupted: policies run: none" in p.stdout
    assert "query-then-reversal" in p.stdout.split("not run:")[1]
    assert "orphaned debits" in p.stdout  # the finished policy's column is shown


@pytest.mark.asyncio
async def test_ctrl_c_ends_compare_json_with_one_object(tmp_path: Path) -> None:
    async with piped("compare", str(_big(tmp_path)), "--json") as p:
        await p.wait_line(p.err, lambda line: "policy none done" in line, "first policy done")
        code = await p.interrupt()
    assert code == 130
    report = json.loads(p.stdout)
    assert report["interrupted"] is True and "none" in report["policies"] and report["not_run"]
    assert report["policies"]["none"]["transactions"] == 4000


@pytest.mark.asyncio
async def test_ctrl_c_ends_chaos_with_the_kills_and_the_verdict_so_far() -> None:
    async with piped("chaos", "--terminals", "2", "--acquirer-kills", "40", "--terminal-kills", "40",
                     "--broker-kills", "10", "--sales", "60") as p:
        await p.wait_line(p.err, lambda line: line.startswith("kill 1/90"), "first kill")
        code = await p.interrupt()
    assert code == 130, p.err
    assert "chaos interrupted" in p.stdout
    kills = {line.split(":")[0].strip(): line.split(":")[1].strip() for line in p.out if "kills:" in line}
    assert sum(int(v) for v in kills.values()) >= 1, p.stdout
    assert "orphaned debits" in p.stdout


@pytest.mark.asyncio
async def test_ctrl_c_ends_demo_with_the_acts_played() -> None:
    async with piped("demo", "--pace", "0.5") as p:
        await p.wait_line(p.out, lambda line: ACTS[0].title in line, "act 1")
        code = await p.interrupt()
    assert code == 130, p.err
    assert "demo stopped" in p.stdout and f"Stopped during: {ACTS[0].title}" in p.stdout


def test_compare_json_is_one_object_per_policy() -> None:
    out = possim("compare", str(SCENARIOS / "response-lost.toml"), "--json", "--policies", "none,reversal")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["policies"]) == {"none", "reversal"} and report["interrupted"] is False
    assert report["policies"]["none"]["orphaned_debits"] == 1 and report["policies"]["reversal"]["orphaned_debits"] == 0


def test_the_new_views_have_every_string_in_chinese() -> None:
    from collections import Counter

    from possim.cli.load import _print
    from possim.fleets.load import BROKER_GONE, HOST_GONE, LoadPlan, run_load

    Tr.missing.clear()
    zh = Tr("zh")
    report = asyncio.run(run_load(LoadPlan(terminals=2, rate=4, duration=0.5)))
    report.stopped = "interrupted"
    con = Console(file=io.StringIO(), width=120)
    _print(con, report, zh)
    report.stopped, report.lost = "lost", (BROKER_GONE, "mqtt://127.0.0.1:1883")
    _print(con, report, zh)
    zh(HOST_GONE, url="tcp://127.0.0.1:8583", seconds=5)
    chaos = ChaosReport(Counter(acquirer=1), {"transactions": 2, "orphaned_debits": 0}, 1.0, interrupted=True)
    buf = io.StringIO()
    print_table(chaos, buf, zh)
    _stopped(con, list(ACTS[:1]), zh)
    for message, values in (("possim load: {n} terminals connected, sales started", {"n": 2}),
                            ("possim compare: policy {policy} done ({n} of {total})",
                             {"policy": "none", "n": 1, "total": 4}),
                            ("compare interrupted: policies run: {ran}; not run: {rest}", {"ran": "", "rest": ""}),
                            ("kill {n}/{total}: {kind}", {"n": 1, "total": 2, "kind": zh("broker")}),
                            ("every terminal settled", {}), ("acquirer", {}), ("terminal", {}), ("none", {})):
        zh(message, **values)
    assert sorted(m for _, m in Tr.missing) == []
    shown = con.file.getvalue()  # type: ignore[attr-defined]
    assert "单边账" in buf.getvalue() and "已中断" in shown and "消息代理 mqtt://127.0.0.1:1883 已失联" in shown


def test_chaos_json_is_one_object_with_the_kills_and_the_verdict() -> None:
    out = possim("chaos", "--terminals", "1", "--acquirer-kills", "1", "--terminal-kills", "0", "--broker-kills", "0",
                 "--sales", "2", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["kills"] == {"acquirer": 1, "terminal": 0, "broker": 0}
    assert report["transactions"] == 2 and report["clean"] is True and report["interrupted"] is False

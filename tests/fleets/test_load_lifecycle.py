"""``possim load`` against a broker or host it does not own: nothing left behind, a lost peer said, Ctrl-C summed up.

Every process here is real: Mosquitto on a free port, ``possim acquirer`` over TCP, ``possim
load`` itself; peers die by SIGKILL and load is interrupted by a real SIGINT, each only after
load said its sales started (a line on stderr), never after a guessed delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from possim.processes.broker import Broker, free_port
from tests.fleets.test_load import _load
from tests.procs import EXIT_TIMEOUT, POSSIM, Possim, run, running

STARTED = "sales started"
SMALL = ("--terminals", "6", "--rate", "12", "--duration", "0.5", "--hosts", "2", "--qos", "1")


def _session_present(port: int, ident: str) -> bool:
    """Connect as ``ident`` asking to resume its session: does the broker still hold one? (Ends it either way.)"""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ident, protocol=mqtt.MQTTv5)
    got: list[bool] = []
    client.on_connect = lambda _c, _u, flags, _rc, _p: got.append(bool(flags.session_present))
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    deadline = time.monotonic() + 30
    try:
        while not got:
            assert time.monotonic() < deadline, f"no CONNACK for {ident}"
            client.loop(0.1)
    finally:
        client.disconnect()
        client.loop(0.1)
    return got[0]


def _keep_session(port: int, ident: str) -> None:
    """A client that leaves a persistent session behind (the probe's positive control)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 300
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ident, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.subscribe("possim/v1/term/PROBE/resp", qos=1)
    for _ in range(10):
        client.loop(0.05)
    client.disconnect()
    client.loop(0.1)


def _load_client_ids(broker: Broker) -> set[str]:
    return set(re.findall(r"New client connected from \S+ as (possim-load-\S+) ", broker.log_path.read_text()))


def test_consecutive_loads_leave_no_session_on_a_shared_broker(own_broker: Broker) -> None:
    _keep_session(own_broker.port, "probe-control")
    assert _session_present(own_broker.port, "probe-control")  # the probe sees a session that is there
    seen = []
    for _ in range(3):
        r = _load(*SMALL, "--transport", "mqtt", "--broker", own_broker.url)
        assert r["sales_completed"] == 6
        seen.append(_load_client_ids(own_broker))
    assert seen[0] and seen[0] == seen[2], "every run uses the same client ids"
    assert len(seen[0]) <= 2 * 4 + 2 * 4
    left = [ident for ident in sorted(seen[2]) if _session_present(own_broker.port, ident)]
    assert left == []


class _Load:
    """``possim load`` as a process whose stdout is kept too (its summary)."""

    def __init__(self, process: Possim) -> None:
        self.process = process
        assert process.proc.stdout is not None
        self._out = asyncio.create_task(process.proc.stdout.read())

    async def stdout(self) -> str:
        return (await self._out).decode(errors="replace")


@contextlib.asynccontextmanager
async def _loading(*args: str) -> AsyncIterator[_Load]:
    proc = await asyncio.create_subprocess_exec(*POSSIM, "load", "--no-progress", *args,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, start_new_session=True)
    process = Possim(proc, ("load", *args))
    load = _Load(process)
    try:
        yield load
    finally:
        await process.kill_group()
        await load.stdout()


async def _lost(load: _Load, kill: Callable[[], None]) -> tuple[int, str, str]:
    """Kill the peer once load said its sales started; then load's exit code, stdout and stderr."""
    await load.process.wait_for_line(lambda line: STARTED in line, "sales started")
    kill()
    code = await load.process.wait()  # fails the test after EXIT_TIMEOUT (60 s)
    return code, await load.stdout(), load.process.log


@pytest.mark.asyncio
async def test_a_load_whose_broker_is_killed_says_so_and_sums_up(own_broker: Broker) -> None:
    async with _loading("--transport", "mqtt", "--broker", own_broker.url, "--terminals", "10", "--rate", "20",
                        "--duration", "120") as load:
        code, out, err = await _lost(load, lambda: own_broker.stop(kill=True))
    assert code == 1, err
    assert f"broker at {own_broker.url} is gone" in err
    assert "stopped early" in out and "sales started" in out and "checker verdict" in out


@pytest.mark.asyncio
async def test_a_load_whose_host_is_killed_says_so_and_counts_what_it_sent(tmp_path: Path) -> None:
    port = free_port()
    async with running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}",
                       "--ledger", str(tmp_path / "ledger.db")) as acquirer:
        await acquirer.ready("acquirer_ready")
        async with _loading("--transport", "tcp", "--connect", f"127.0.0.1:{port}", "--terminals", "10",
                            "--rate", "20", "--duration", "120") as load:
            await load.process.wait_for_line(lambda line: STARTED in line, "sales started")
            await acquirer.stop(signal.SIGKILL)
            code = await load.process.wait()
            out, err = await load.stdout(), load.process.log
    assert code == 1, err
    assert f"host at tcp://127.0.0.1:{port} stopped answering" in err
    sent = re.search(r"requests sent per host\D+(\d+)", out)
    assert sent is not None and int(sent.group(1)) > 0, out


@pytest.mark.asyncio
async def test_ctrl_c_ends_a_load_with_the_summary_of_what_ran() -> None:
    async with _loading("--terminals", "10", "--rate", "20", "--duration", "120") as load:
        await load.process.wait_for_line(lambda line: STARTED in line, "sales started")
        os.kill(load.process.proc.pid, signal.SIGINT)
        code = await load.process.wait()
        out = await load.stdout()
    assert code == 130, load.process.log
    assert "stopped early (interrupted)" in out
    started = re.search(r"sales started\D+(\d+)", out)
    assert started is not None and 0 < int(started.group(1)) < 2400, out


@pytest.mark.asyncio
async def test_ctrl_c_ends_a_json_load_with_one_json_object() -> None:
    import json

    async with _loading("--terminals", "4", "--rate", "8", "--duration", "120", "--json") as load:
        await load.process.wait_for_line(lambda line: STARTED in line, "sales started")
        os.kill(load.process.proc.pid, signal.SIGINT)
        code = await load.process.wait()
        report = json.loads(await load.stdout())
    assert code == 130 and report["stopped"] == "interrupted" and report["sales_started"] < 960


def test_load_help_says_what_load_does() -> None:
    import subprocess

    out = subprocess.run([*POSSIM, "load", "--help"], capture_output=True, text=True, timeout=EXIT_TIMEOUT)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0
    assert "virtual time" not in text and "the scenario's" not in text
    assert "real time" in text and "--lang" in text


@pytest.mark.asyncio
async def test_connect_counts_the_requests_sent_to_the_external_host(tmp_path: Path) -> None:
    port = free_port()
    async with running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}",
                       "--ledger", str(tmp_path / "ledger.db")) as acquirer:
        await acquirer.ready("acquirer_ready")
        done = await run("load", "--transport", "tcp", "--connect", f"127.0.0.1:{port}", "--terminals", "5",
                         "--rate", "10", "--duration", "1", "--no-progress")
        assert await acquirer.stop() == 0
    assert done.returncode == 0, done.stderr
    sent = re.search(r"requests sent per host\D+(\d+)", done.stdout)
    assert sent is not None and int(sent.group(1)) >= 10, done.stdout

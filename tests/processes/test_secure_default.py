"""Process commands are secure by default: a key file, broker accounts, client ids bound to accounts.

Every process here is a real ``possim`` command and Mosquitto a real broker on a free port.
tests/conftest.py sets ``POSSIM_INSECURE=1`` for the rest of the suite; these tests remove it
and point ``POSSIM_KEYS`` at their own folder, as a user's shell without either would run.
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest
import tomli_w

from possim.cli.keyfile import DEFAULT_TERMINALS
from possim.processes import keys
from possim.processes.broker import Broker, free_port
from possim.protocol.mqtt import responses_topic
from tests.procs import POSSIM, Proc, fleet, wait_for

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
SALES = 30


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell without ``POSSIM_INSECURE`` whose default key file is ``tmp_path/possim-keys.json`` (not there yet)."""
    monkeypatch.delenv("POSSIM_INSECURE", raising=False)
    path = tmp_path / "possim-keys.json"
    monkeypatch.setenv("POSSIM_KEYS", str(path))
    return path


def _scenario(folder: Path, sales: int = SALES) -> Path:
    """A terminal selling ``sales`` times, a tenth of a second apart, against a quick host."""
    path = folder / "sales.toml"
    path.write_text(tomli_w.dumps({
        "title": "Sales", "description": "Quick sales for the security tests.", "policy": "reversal",
        "terminal": {"response_timeout": 10.0, "reversal_timeout": 5.0},
        "host": {"processing": {"value": 0.001}},
        "transactions": [{"amount": "30.00", "count": sales, "every": 0.1}],
    }), encoding="utf-8")
    return path


def _broker(proc: Callable[[str, list[str], Path], Proc], tmp_path: Path, *extra: str) -> tuple[Proc, str]:
    """``possim broker`` on a free port, waited for by its banner; the process and its URL."""
    port = free_port()
    b = proc("broker", ["broker", "--port", str(port), "--state-dir", str(tmp_path / "mosquitto"), *extra],
             tmp_path / "broker.log").start()
    wait_for(lambda: "mosquitto listening" in b.log.read_text(errors="replace") or b.exit_code() is not None, 30,
             "the broker's banner")
    assert b.exit_code() is None, b.tail()
    return b, f"mqtt://127.0.0.1:{port}"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _anonymous_reads_everything(port: int) -> str:
    """Connect without an account and subscribe to ``#``: what the broker said."""
    try:
        async with aiomqtt.Client("127.0.0.1", port, identifier="snoop", protocol=aiomqtt.ProtocolVersion.V5,
                                  socket_options=NODELAY, timeout=10) as c:
            await c.subscribe("#", qos=1)
    except aiomqtt.MqttError as exc:
        return f"refused: {exc}"
    return "connected and subscribed"


async def _connect_as(port: int, username: str, password: str, identifier: str, times: int) -> int:
    """Log in ``times`` times as ``username`` asking for client id ``identifier``; how many were accepted."""
    accepted = 0
    for _ in range(times):
        async with aiomqtt.Client("127.0.0.1", port, identifier=identifier, username=username, password=password,
                                  protocol=aiomqtt.ProtocolVersion.V5, socket_options=NODELAY, timeout=10) as c:
            await c.subscribe(responses_topic(username), qos=1)
            accepted += 1
    return accepted


@pytest.fixture
def proc() -> Iterator[Callable[[str, list[str], Path], Proc]]:
    with fleet() as make:
        yield make


def test_default_broker_refuses_anonymous_and_creates_a_private_key_file_the_acquirer_reuses(
        key_file: Path, tmp_path: Path, proc: Callable[[str, list[str], Path], Proc]) -> None:
    broker, url = _broker(proc, tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ring = keys.load(key_file)
    assert sorted(ring.terminals) == keys.default_tids(DEFAULT_TERMINALS)
    assert "created key file" in broker.log.read_text()
    assert asyncio.run(_anonymous_reads_everything(_port(url))).startswith("refused")

    written = key_file.read_bytes()
    acquirer = proc("acquirer", ["acquirer", "--broker", url, "--ledger", str(tmp_path / "ledger.db")],
                    tmp_path / "acquirer.log").start()
    acquirer.wait_event("acquirer_ready")  # logged in with the host account of the broker's key file
    assert key_file.read_bytes() == written
    assert not acquirer.logged("insecure_mode")
    assert "created key file" not in acquirer.log.read_text()


def test_a_terminal_account_cannot_take_over_the_acquirers_or_another_terminals_session(
        key_file: Path, tmp_path: Path, proc: Callable[[str, list[str], Path], Proc]) -> None:
    """POS00002's own password, asking for the acquirer's and POS00001's client ids, disturbs neither."""
    _, url = _broker(proc, tmp_path)
    password = keys.load(key_file).accounts()["POS00002"]
    acquirer = proc("acquirer", ["acquirer", "--broker", url, "--ledger", str(tmp_path / "ledger.db")],
                    tmp_path / "acquirer.log").start()
    acquirer.wait_event("acquirer_ready")
    assert asyncio.run(_connect_as(_port(url), "POS00002", password, "possim-acquirer", 10)) == 10

    terminal = proc("terminal", ["terminal", str(_scenario(tmp_path)), "--broker", url, "--tid", "POS00001",
                                 "--journal", str(tmp_path / "journal.db")], tmp_path / "terminal.log").start()
    terminal.wait_event("msg_received", side="terminal")  # connected, and its first sale answered
    for identifier in ("possim-terminal-POS00001", "POS00001", "possim-acquirer"):
        assert asyncio.run(_connect_as(_port(url), "POS00002", password, identifier, 5)) == 5
    assert terminal.exit_code() is None, "the terminal finished before the attack: make its day longer"
    code, out = terminal.finish(120)
    assert code == 0, terminal.tail()
    summary = json.loads(out)
    assert (summary["transactions"], summary["approved"], summary["reversed"]) == (SALES, SALES, 0)
    assert not acquirer.logged("mqtt_disconnected"), acquirer.tail()
    assert not terminal.logged("mqtt_disconnected"), terminal.tail()


def test_an_insecure_acquirer_says_so_at_start_and_for_the_requests_it_accepts(
        key_file: Path, tmp_path: Path, broker: Broker, proc: Callable[[str, list[str], Path], Proc]) -> None:
    acquirer = proc("acquirer", ["acquirer", "--broker", broker.url, "--ledger", str(tmp_path / "ledger.db"),
                                 "--client-id", "acq-insecure", "--insecure"], tmp_path / "acquirer.log").start()
    acquirer.wait_event("insecure_mode", reason="started without keys")
    acquirer.wait_event("acquirer_ready")
    terminal = proc("terminal", [str(x) for x in ("terminal", _scenario(tmp_path, 3), "--broker", broker.url,
                                                  "--tid", "INSEC001", "--insecure")], tmp_path / "t.log").start()
    code, out = terminal.finish(120)
    assert code == 0 and json.loads(out)["approved"] == 3, terminal.tail()
    warned = [e for e in acquirer.events() if e.get("event") == "insecure_mode"
              and e.get("reason") == "unauthenticated_request"]
    assert [e["accepted"] for e in warned] == [1, 2, 3, 4]  # the terminal's sign-on (0800), then its 3 sales
    assert not key_file.exists()


def test_a_terminal_missing_from_the_key_file_is_told_how_to_add_it(key_file: Path, tmp_path: Path) -> None:
    keys.create_key_file(key_file, ["POS00001"])
    args = [*POSSIM, "terminal", str(_scenario(tmp_path, 1)), "--tid", "SHOP0001", "--broker", "mqtt://127.0.0.1:1"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"possim: error: {key_file}: no key for terminal 'SHOP0001'; add one with: possim keys --add "
        f"--terminal SHOP0001 --out {key_file} (then restart the broker and the acquirer)"]

    before = keys.load(key_file).terminals["POS00001"]
    added = subprocess.run([*POSSIM, "keys", "--add", "--terminal", "SHOP0001", "--out", str(key_file)],
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    after = keys.load(key_file)
    assert sorted(after.terminals) == ["POS00001", "SHOP0001"] and after.terminals["POS00001"] == before
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_chaos_runs_secured_by_default_and_loses_no_money(key_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "chaos"
    done = subprocess.run([*POSSIM, "chaos", "--terminals", "2", "--acquirer-kills", "1", "--terminal-kills", "1",
                           "--broker-kills", "1", "--sales", "3", "--folder", str(folder), "--json"],
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["clean"] and report["transactions"] == 6
    assert stat.S_IMODE((folder / "keys.json").stat().st_mode) == 0o600
    assert "allow_anonymous false" in (folder / "broker" / "mosquitto.conf").read_text()
    assert "insecure_mode" not in (folder / "acquirer.log").read_text()
    assert sorted(keys.load(folder / "keys.json").terminals) == ["CHAOS001", "CHAOS002"]
    assert not key_file.exists()


def test_host_shards_have_their_own_accounts_and_do_not_throw_each_other_off(
        key_file: Path, tmp_path: Path, proc: Callable[[str, list[str], Path], Proc]) -> None:
    """Two shards of the host on one secured broker: each logs in with its shard account and keeps its session."""
    from possim.protocol.shards import shard_of

    _, url = _broker(proc, tmp_path)
    tids = {shard_of(tid, 2): tid for tid in keys.default_tids(10)}
    shards = [proc(f"shard{k}", ["acquirer", "--broker", url, "--shard", f"{k}/2",
                                 "--ledger", str(tmp_path / f"shard{k}.db")], tmp_path / f"shard{k}.log").start()
              for k in (0, 1)]
    for k, shard in enumerate(shards):
        assert shard.wait_event("acquirer_ready")["username"] == keys.host_account(keys.HOST_USERNAME, k, 2)
    terminals = [proc(tids[k], ["terminal", str(_scenario(tmp_path, 3)), "--broker", url, "--tid", tids[k],
                                "--shards", "2"], tmp_path / f"t{k}.log").start() for k in (0, 1)]
    for term in terminals:
        code, out = term.finish(120)
        assert code == 0 and json.loads(out)["approved"] == 3, term.tail()
    for k, shard in enumerate(shards):
        answered = [e for e in shard.events() if e.get("event") == "msg_received" and e.get("side") == "host"]
        assert {e["tid"] for e in answered} == {tids[k]}
        assert not shard.logged("mqtt_disconnected"), shard.tail()


def test_keys_and_insecure_typed_together_contradict(key_file: Path, tmp_path: Path) -> None:
    keys.create_key_file(key_file, ["POS00001"])
    done = subprocess.run([*POSSIM, "acquirer", "--keys", str(key_file), "--insecure", "--broker", "mqtt://127.0.0.1:1",
                           "--ledger", str(tmp_path / "ledger.db")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "possim: error: --keys and --insecure contradict each other: give one\n"
    assert not (tmp_path / "ledger.db").exists()

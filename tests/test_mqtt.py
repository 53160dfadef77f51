"""MQTT mode against a real Mosquitto: same verdicts as in memory, broker trouble, known traps."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from possim.broker import Broker, render_config
from possim.realtime import run_mqtt
from possim.replay import replay
from possim.scenario import from_dict, load
from possim.simulation import simulate
from protocol.mqtt import BrokerAddress, MqttEndpoint, TransportError
from tests.conftest import SCENARIOS

COUNTS = ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds")
POSSIM = [sys.executable, "-m", "possim"]


def counts(summary: dict[str, object]) -> tuple[object, ...]:
    return tuple(summary[k] for k in COUNTS)


def mqtt_run(broker: Broker, path: Path, policy: str, scale: float = 0.05, **kw: object) -> object:
    return asyncio.run(run_mqtt(load(path), policy, load(path).model.seed, BrokerAddress.parse(broker.url), 1,
                                scale, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["none", "reversal"])
@pytest.mark.parametrize("name", ["response-lost", "reversal-lost", "duplicate-request"])
def test_same_verdict_as_in_memory(broker: Broker, name: str, policy: str) -> None:
    path = SCENARIOS / f"{name}.toml"
    over_mqtt = mqtt_run(broker, path, policy)
    assert over_mqtt.quiescent  # type: ignore[attr-defined]
    assert counts(over_mqtt.verdict.summary()) == counts(simulate(load(path), policy).verdict.summary())  # type: ignore[attr-defined]


def test_flaky_network_over_mqtt_stays_clean_under_reversal_and_replays(broker: Broker, tmp_path: Path) -> None:
    result = mqtt_run(broker, SCENARIOS / "flaky-network.toml", "reversal", scale=0.003)
    s = result.verdict.summary()  # type: ignore[attr-defined]
    assert result.quiescent and s["transactions"] == 200  # type: ignore[attr-defined]
    assert counts(s)[:4] == (0, 0, 0, 0)
    trace = tmp_path / "flaky.jsonl"
    result.trace.write(trace)  # type: ignore[attr-defined]
    verdict, recorded = replay(trace)
    assert recorded is not None
    assert all(verdict.summary()[k] == recorded[k] for k in (*COUNTS, "approved", "reversed", "transactions"))


def test_broker_killed_and_restarted_mid_run_loses_nothing(own_broker: Broker) -> None:
    scenario = from_dict({"title": "busy", "description": "twenty sales while the broker dies",
                          "transactions": [{"amount": "12.00", "count": 20, "every": 10}]})

    def on_ready(*_: object) -> None:
        async def chaos() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(own_broker.stop, True)  # SIGKILL
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_broker.start)
        asyncio.get_running_loop().create_task(chaos())

    result = asyncio.run(run_mqtt(scenario, "reversal", 1, BrokerAddress.parse(own_broker.url), 1, 0.02,
                                  on_ready=on_ready))
    s = result.verdict.summary()
    assert result.quiescent and s["transactions"] == 20
    assert (s["orphaned_debits"], s["double_debits"], s["pending_reversals"], s["phantom_approvals"]) == (0, 0, 0, 0)
    assert result.trace.count("mqtt_disconnected") >= 2  # both clients saw the broker die and came back


def test_qos1_forced_redelivery_never_double_debits(broker: Broker) -> None:
    path = SCENARIOS / "duplicate-request.toml"
    result = mqtt_run(broker, path, "none", force_redelivery=3)
    s = result.verdict.summary()  # type: ignore[attr-defined]
    assert s["double_debits"] == 0 and s["orphaned_debits"] == 0 and s["approved"] == 1
    assert result.trace.count("duplicate_original") >= 2  # type: ignore[attr-defined]
    assert result.trace.count("mqtt_disconnected") >= 1  # type: ignore[attr-defined]


def test_clients_set_tcp_nodelay_and_broker_config_sets_it_too(broker: Broker) -> None:
    assert "set_tcp_nodelay true" in broker.config.read_text()

    async def probe() -> int:
        ep = MqttEndpoint(BrokerAddress.parse(broker.url), f"probe-{uuid.uuid4().hex[:6]}", [], lambda *_: None)
        await ep.start()
        try:
            return ep.socket_nodelay()
        finally:
            await ep.stop()

    assert asyncio.run(probe()) == 1


def test_no_silent_drops_to_a_subscriber_that_fell_behind(broker: Broker) -> None:
    """Mosquitto's default max_queued_messages (1000) silently drops, even at QoS 1; possim's config does not.

    The terminal is offline while 3000 QoS 1 messages pile up for it (the extreme of a slow
    subscriber); with the default limit it would get back about 1000 of them.
    """
    assert "max_queued_messages 0" in broker.config.read_text()
    n = 3000
    address = BrokerAddress.parse(broker.url)
    ident, topic = f"pos-{uuid.uuid4().hex[:6]}", f"possim/test/{uuid.uuid4().hex[:6]}"

    async def flood() -> int:
        got: list[bytes] = []
        term = MqttEndpoint(address, ident, [topic], lambda _t, d: got.append(d))
        await term.start()
        await term.stop()
        pub = MqttEndpoint(address, f"fast-{uuid.uuid4().hex[:6]}", [], lambda *_: None)
        await pub.start()
        for i in range(n):
            pub.publish(topic, str(i).encode())
        while not pub.idle:
            await asyncio.sleep(0.01)
        await pub.stop()
        back = MqttEndpoint(address, ident, [topic], lambda _t, d: got.append(d))
        await back.start()
        last = -1
        while len(got) != last:
            last = len(got)
            await asyncio.sleep(0.3)
        await back.stop()
        return len(got)

    assert asyncio.run(flood()) == n


def test_persistent_session_gets_what_was_sent_while_offline(broker: Broker) -> None:
    """Clean Start = 0 plus a session expiry interval: QoS 1 messages wait for the terminal."""
    address = BrokerAddress.parse(broker.url)
    ident, topic = f"pos-{uuid.uuid4().hex[:6]}", f"possim/test/{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[bytes]:
        got: list[bytes] = []
        term = MqttEndpoint(address, ident, [topic], lambda _t, d: got.append(d))
        await term.start()
        await term.stop()  # the terminal goes offline; its session stays
        host = MqttEndpoint(address, f"host-{uuid.uuid4().hex[:6]}", [], lambda *_: None)
        await host.start()
        for i in range(3):
            host.publish(topic, f"m{i}".encode())
        while not host.idle:
            await asyncio.sleep(0.01)
        await host.stop()
        back = MqttEndpoint(address, ident, [topic], lambda _t, d: got.append(d))
        await back.start()
        for _ in range(100):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.02)
        await back.stop()
        return got

    assert asyncio.run(scenario()) == [b"m0", b"m1", b"m2"]


def test_mosquitto_as_root_can_read_its_state_folder(tmp_path: Path) -> None:
    """Mosquitto drops to user 'mosquitto' unless told otherwise; the persistence folder must stay usable."""
    state = tmp_path / "private"
    state.mkdir(mode=0o700)
    with Broker(state_dir=state) as b:
        b.restart()  # persistence written by SIGTERM, read back on start
        assert b.proc is not None and b.proc.poll() is None
    assert (state / "mosquitto.db").exists()
    assert "user root" in render_config(1883, state) or not __import__("os").geteuid() == 0


def test_unreachable_broker_and_bad_url_exit_2_with_one_line() -> None:
    for url, needle in (("mqtt://127.0.0.1:1", "cannot reach MQTT broker"), ("http://x", "bad broker URL")):
        out = subprocess.run([*POSSIM, "run", str(SCENARIOS / "response-lost.toml"), "--transport", "mqtt",
                              "--broker", url], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr
    with pytest.raises(TransportError):
        BrokerAddress.parse("mqtt://")


@pytest.mark.parametrize("policy, orphans, tid", [("none", 1, "POS00042"), ("reversal", 0, "POS00043")])
def test_acquirer_and_terminal_as_separate_processes(broker: Broker, tmp_path: Path, policy: str,
                                                     orphans: int, tid: str) -> None:
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    acquirer = subprocess.Popen([*POSSIM, "acquirer", "--broker", broker.url, "--ledger", str(ledger)],
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert acquirer.poll() is None
        term = subprocess.run([*POSSIM, "terminal", str(SCENARIOS / "response-lost.toml"), "--broker", broker.url,
                               "--tid", tid, "--policy", policy, "--journal", str(journal),
                               "--time-scale", "0.05"], capture_output=True, text=True, timeout=120)
        assert term.returncode == 0, term.stderr
    finally:
        acquirer.send_signal(signal.SIGTERM)
        _, log = acquirer.communicate(timeout=30)
    assert acquirer.returncode == 0
    assert '"event": "ledger_debit"' in log and tid in log
    check = subprocess.run([*POSSIM, "check", "--journal", str(journal), "--ledger", str(ledger), "--json"],
                           capture_output=True, text=True, timeout=60)
    summary = json.loads(check.stdout)
    assert summary["orphaned_debits"] == orphans and summary["double_debits"] == 0
    assert check.returncode == (1 if orphans else 0)
    assert sqlite3.connect(ledger).execute("SELECT COUNT(*) FROM entries").fetchone()[0] >= 1


def test_possim_broker_command_serves_a_separate_acquirer_and_terminal(tmp_path: Path) -> None:
    """The README's three-shell recipe: possim broker, possim acquirer, possim terminal, possim check."""
    from possim.broker import free_port

    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    broker_proc = subprocess.Popen([*POSSIM, "broker", "--port", str(port), "--state-dir", str(tmp_path / "b")],
                                   stderr=subprocess.DEVNULL)
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                __import__("socket").create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        acquirer = subprocess.Popen([*POSSIM, "acquirer", "--broker", url, "--ledger", str(ledger), "--scenario",
                                     str(SCENARIOS / "slow-host.toml"), "--time-scale", "0.05"],
                                    stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        term = subprocess.run([*POSSIM, "terminal", str(SCENARIOS / "slow-host.toml"), "--broker", url, "--tid",
                               "POS00007", "--policy", "query", "--journal", str(journal), "--time-scale", "0.05"],
                              capture_output=True, text=True, timeout=120)
        assert term.returncode == 0, term.stderr
        acquirer.send_signal(signal.SIGINT)
        assert acquirer.wait(30) == 0
    finally:
        broker_proc.send_signal(signal.SIGTERM)
        broker_proc.wait(30)
    check = subprocess.run([*POSSIM, "check", "--journal", str(journal), "--ledger", str(ledger), "--json"],
                           capture_output=True, text=True, timeout=60)
    summary = json.loads(check.stdout)
    assert (summary["approved"], summary["orphaned_debits"], summary["double_debits"]) == (1, 0, 0)
    assert check.returncode == 0


def test_check_rejects_files_that_are_not_a_journal_or_ledger(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all")
    out = subprocess.run([*POSSIM, "check", "--journal", str(junk), "--ledger", str(junk)], capture_output=True,
                         text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_replay_rejects_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "memory.jsonl"
    assert subprocess.run([*POSSIM, "run", str(SCENARIOS / "response-lost.toml"), "--trace", str(bad), "--json"],
                          capture_output=True).returncode == 0
    out = subprocess.run([*POSSIM, "replay", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "not a recorded real-time run" in out.stderr


def test_restarted_acquirer_resumes_its_session_and_answers_what_queued_up(broker: Broker, tmp_path: Path) -> None:
    """Requests published while the acquirer process is down wait in its session and are answered on return."""
    ledger = tmp_path / "ledger.db"
    client_id = f"acq-{uuid.uuid4().hex[:6]}"
    cmd = [*POSSIM, "acquirer", "--broker", broker.url, "--ledger", str(ledger), "--client-id", client_id]
    first = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0

    async def publish_while_down() -> None:
        from protocol import codec
        from protocol.messages import Message
        from protocol.mqtt import requests_topic

        ep = MqttEndpoint(BrokerAddress.parse(broker.url), f"pos-{uuid.uuid4().hex[:6]}", [], lambda *_: None)
        await ep.start()
        msg = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00099", pan="4000000000000002",
                      processing_code="000000", amount=777)
        ep.publish(requests_topic("POS00099"), codec.encode(msg))
        while not ep.idle:
            await asyncio.sleep(0.01)
        await ep.stop()

    asyncio.run(publish_while_down())
    second = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        rows: list[tuple[str, int]] = []
        while time.monotonic() < deadline and not rows:
            time.sleep(0.2)
            if ledger.exists():
                rows = sqlite3.connect(ledger).execute("SELECT kind, amount FROM entries").fetchall()
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert rows == [("debit", 777)]


@pytest.mark.parametrize("policy", ["none", "reversal"])
def test_qos0_gives_the_same_verdict(broker: Broker, policy: str) -> None:
    path = SCENARIOS / "response-lost.toml"
    result = asyncio.run(run_mqtt(load(path), policy, 1, BrokerAddress.parse(broker.url), 0, 0.05))
    assert result.quiescent
    assert counts(result.verdict.summary()) == counts(simulate(load(path), policy).verdict.summary())

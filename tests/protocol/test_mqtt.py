"""MQTT mode against a real Mosquitto: same verdicts as in memory, broker trouble, known traps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from possim.processes.broker import Broker, free_port, render_config
from possim.protocol import codec
from possim.protocol.events import Event, MqttDisconnected
from possim.protocol.messages import Message
from possim.protocol.mqtt import BrokerAddress, MqttEndpoint, TransportError, requests_topic
from possim.running.realtime import run_mqtt
from possim.running.replay import replay
from possim.running.rig import Rig, RunResult
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests import procs
from tests.conftest import SCENARIOS, Connect
from tests.waiting import wait_until

COUNTS = ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds")


def counts(summary: dict[str, object]) -> tuple[object, ...]:
    return tuple(summary[k] for k in COUNTS)


async def mqtt_run(broker: Broker, path: Path, policy: str, scale: float = 0.05, qos: int = 1,
                   **kw: object) -> RunResult:
    scenario = load(path)
    return await run_mqtt(scenario, policy, scenario.model.seed, BrokerAddress.parse(broker.url), qos, scale,
                          **kw)  # type: ignore[arg-type]


def ledger_rows(ledger: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(ledger)) as db:
        return db.execute("SELECT kind, amount FROM entries").fetchall()


async def drained(ep: MqttEndpoint) -> None:
    """Every publish of ``ep`` acknowledged by the broker (QoS 1 PUBACK): its outbox is empty."""
    await wait_until(lambda: ep.idle, lambda: f"{len(ep.outbox)} messages still in {ep.identifier}'s outbox")


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["none", "reversal"])
@pytest.mark.parametrize("name", ["response-lost", "reversal-lost", "duplicate-request"])
async def test_same_verdict_as_in_memory(broker: Broker, name: str, policy: str) -> None:
    path = SCENARIOS / f"{name}.toml"
    over_mqtt = await mqtt_run(broker, path, policy)
    assert over_mqtt.quiescent
    assert counts(over_mqtt.verdict.summary()) == counts(simulate(load(path), policy).verdict.summary())


@pytest.mark.asyncio
async def test_flaky_network_over_mqtt_stays_clean_under_reversal_and_replays(broker: Broker,
                                                                              tmp_path: Path) -> None:
    result = await mqtt_run(broker, SCENARIOS / "flaky-network.toml", "reversal", scale=0.003)
    s = result.verdict.summary()
    assert result.quiescent and s["transactions"] == 200
    assert counts(s)[:4] == (0, 0, 0, 0)
    trace = tmp_path / "flaky.jsonl"
    result.trace.write(trace)
    verdict, recorded = replay(trace)
    assert recorded is not None
    assert all(verdict.summary()[k] == recorded[k] for k in (*COUNTS, "approved", "reversed", "transactions"))


@pytest.mark.asyncio
async def test_broker_killed_and_restarted_mid_run_loses_nothing(own_broker: Broker) -> None:
    scenario = from_dict({"title": "busy", "description": "twenty sales while the broker dies",
                          "transactions": [{"amount": "12.00", "count": 20, "every": 10}]})
    chaos: list[asyncio.Task[None]] = []

    async def kill_and_restart(host_ep: MqttEndpoint) -> None:
        await wait_until(lambda: host_ep.received >= 3, lambda: f"host received {host_ep.received} requests")
        await asyncio.to_thread(own_broker.stop, True)  # SIGKILL, mid-run: sales are under way
        await asyncio.sleep(0.5)  # the outage itself, not a wait for anything
        await asyncio.to_thread(own_broker.start)

    def on_ready(_rig: Rig, host_ep: MqttEndpoint, _term_ep: MqttEndpoint) -> None:
        chaos.append(asyncio.get_running_loop().create_task(kill_and_restart(host_ep)))

    try:
        result = await run_mqtt(scenario, "reversal", 1, BrokerAddress.parse(own_broker.url), 1, 0.02,
                                on_ready=on_ready)
        await chaos[0]  # done: the run cannot settle while the broker is down
    finally:
        for task in chaos:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    s = result.verdict.summary()
    assert result.quiescent and s["transactions"] == 20
    assert (s["orphaned_debits"], s["double_debits"], s["pending_reversals"], s["phantom_approvals"]) == (0, 0, 0, 0)
    assert result.trace.count("mqtt_disconnected") >= 2  # both clients saw the broker die and came back


@pytest.mark.asyncio
async def test_qos1_forced_redelivery_never_double_debits(broker: Broker) -> None:
    result = await mqtt_run(broker, SCENARIOS / "duplicate-request.toml", "none", force_redelivery=3)
    s = result.verdict.summary()
    assert s["double_debits"] == 0 and s["orphaned_debits"] == 0 and s["approved"] == 1
    assert result.trace.count("duplicate_original") >= 2
    assert result.trace.count("mqtt_disconnected") >= 1


@pytest.mark.asyncio
async def test_clients_set_tcp_nodelay_and_broker_config_sets_it_too(broker: Broker, connect: Connect) -> None:
    assert "set_tcp_nodelay true" in broker.config.read_text()
    ep = await connect("probe")
    assert ep.socket_nodelay() == 1


@pytest.mark.asyncio
async def test_no_silent_drops_to_a_subscriber_that_fell_behind(broker: Broker, connect: Connect) -> None:
    """Mosquitto's default max_queued_messages (1000) silently drops, even at QoS 1; possim's config does not.

    The terminal is offline while 3000 QoS 1 messages pile up for it (the extreme of a slow
    subscriber); with the default limit it would get back about 1000 of them. Every one must
    come back, each exactly once.
    """
    assert "max_queued_messages 0" in broker.config.read_text()
    n = 3000
    ident, topic = f"pos-{uuid.uuid4().hex[:6]}", f"possim/test/{uuid.uuid4().hex[:6]}"
    got: list[bytes] = []
    term = await connect("pos", [topic], lambda _t, d: got.append(d), identifier=ident)
    await term.stop()  # offline; its session (and subscription) stays on the broker
    pub = await connect("fast")
    for i in range(n):
        pub.publish(topic, str(i).encode())
    await drained(pub)
    await pub.stop()
    await connect("pos", [topic], lambda _t, d: got.append(d), identifier=ident)
    await wait_until(lambda: len(got) >= n, lambda: f"{len(got)} of {n} queued messages delivered")
    assert Counter(got) == Counter(str(i).encode() for i in range(n))


@pytest.mark.asyncio
async def test_persistent_session_gets_what_was_sent_while_offline(broker: Broker, connect: Connect) -> None:
    """Clean Start = 0 plus a session expiry interval: QoS 1 messages wait for the terminal."""
    ident, topic = f"pos-{uuid.uuid4().hex[:6]}", f"possim/test/{uuid.uuid4().hex[:6]}"
    got: list[bytes] = []
    term = await connect("pos", [topic], lambda _t, d: got.append(d), identifier=ident)
    await term.stop()  # the terminal goes offline; its session stays
    host = await connect("host")
    for i in range(3):
        host.publish(topic, f"m{i}".encode())
    await drained(host)
    await host.stop()
    await connect("pos", [topic], lambda _t, d: got.append(d), identifier=ident)
    await wait_until(lambda: len(got) >= 3, lambda: f"got {got}")
    assert got == [b"m0", b"m1", b"m2"]


@pytest.mark.asyncio
async def test_publishes_cut_off_before_their_puback_arrive_after_the_reconnect(broker: Broker,
                                                                               connect: Connect) -> None:
    """A publish goes straight onto the socket while connected; the link dropped right after (no
    PUBACK yet) must not lose it: it stays unacknowledged (the endpoint is not idle) until paho
    sends it again on the next connection. Publishes made while down wait in the outbox."""
    topic = f"possim/test/{uuid.uuid4().hex[:6]}"
    got: list[bytes] = []
    await connect("sub", [topic], lambda _t, d: got.append(d))
    pub = await connect("pub")
    queued: list[int] = []

    def while_down() -> None:  # runs while the endpoint waits to reconnect
        for i in range(5):
            pub.publish(topic, f"b{i}".encode())
        queued.append(len(pub.outbox))

    def on_event(event: Event) -> None:
        if isinstance(event, MqttDisconnected):  # the loop sleeps its backoff next: call_soon runs before it ends
            asyncio.get_running_loop().call_soon(while_down)

    pub.emit = on_event
    for i in range(20):
        pub.publish(topic, f"a{i}".encode())
    assert not pub.idle  # handed to paho, waiting for their PUBACKs
    pub.force_reconnect()
    await wait_until(lambda: bool(queued), lambda: "the cut was not noticed")
    assert queued == [5]
    await drained(pub)
    want = [f"a{i}".encode() for i in range(20)] + [f"b{i}".encode() for i in range(5)]
    await wait_until(lambda: set(got) >= set(want), lambda: f"{len(set(got))} of {len(want)} distinct messages")
    assert pub.published == len(want) and set(got) == set(want)  # duplicates (DUP resends) allowed, losses not


def test_mosquitto_as_root_can_read_its_state_folder(tmp_path: Path) -> None:
    """Mosquitto drops to user 'mosquitto' unless told otherwise; the persistence folder must stay usable."""
    state = tmp_path / "private"
    state.mkdir(mode=0o700)
    with Broker(state_dir=state) as b:
        b.restart()  # persistence written by SIGTERM, read back on start
        assert b.proc is not None and b.proc.poll() is None
    assert (state / "mosquitto.db").exists()
    assert "user root" in render_config(1883, state) or os.geteuid() != 0


def test_unreachable_broker_and_bad_url_exit_2_with_one_line() -> None:
    for url, needle in (("mqtt://127.0.0.1:1", "cannot reach MQTT broker"), ("http://x", "bad broker URL")):
        out = subprocess.run([*procs.POSSIM, "run", str(SCENARIOS / "response-lost.toml"), "--transport",
                              "mqtt", "--broker", url], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr
    with pytest.raises(TransportError):
        BrokerAddress.parse("mqtt://")


async def check(journal: Path, ledger: Path) -> tuple[int, dict[str, int]]:
    out = await procs.run("check", "--journal", str(journal), "--ledger", str(ledger), "--json")
    return out.returncode, json.loads(out.stdout)


@pytest.mark.asyncio
@pytest.mark.parametrize(("policy", "orphans", "tid"), [("none", 1, "POS00042"), ("reversal", 0, "POS00043")])
async def test_acquirer_and_terminal_as_separate_processes(broker: Broker, tmp_path: Path, policy: str,
                                                           orphans: int, tid: str) -> None:
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    async with procs.running("acquirer", "--broker", broker.url, "--ledger", str(ledger),
                                 "--client-id", f"acq-{uuid.uuid4().hex[:6]}") as acquirer:
        await acquirer.ready()  # subscribed to every terminal's requests, signal handlers installed
        term = await procs.run("terminal", str(SCENARIOS / "response-lost.toml"), "--broker", broker.url,
                                   "--tid", tid, "--policy", policy, "--journal", str(journal),
                                   "--time-scale", "0.05")
        assert term.returncode == 0, term.stderr
        assert await acquirer.stop(signal.SIGTERM) == 0, acquirer.log
    assert '"event": "ledger_debit"' in acquirer.log and tid in acquirer.log
    code, summary = await check(journal, ledger)
    assert summary["orphaned_debits"] == orphans and summary["double_debits"] == 0
    assert code == (1 if orphans else 0)
    assert len(ledger_rows(ledger)) >= 1


@pytest.mark.asyncio
async def test_possim_broker_command_serves_a_separate_acquirer_and_terminal(tmp_path: Path) -> None:
    """The README's three-shell recipe: possim broker, possim acquirer, possim terminal, possim check."""
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    ledger, journal = tmp_path / "ledger.db", tmp_path / "journal.db"
    async with procs.running("broker", "--port", str(port), "--state-dir", str(tmp_path / "b")) as broker_cmd:
        await broker_cmd.wait_for_line(lambda line: line.startswith("mosquitto listening on"), "the broker's banner")
        async with procs.running("acquirer", "--broker", url, "--ledger", str(ledger), "--scenario",
                                     str(SCENARIOS / "slow-host.toml"), "--time-scale", "0.05") as acquirer:
            await acquirer.ready()
            term = await procs.run("terminal", str(SCENARIOS / "slow-host.toml"), "--broker", url, "--tid",
                                       "POS00007", "--policy", "query", "--journal", str(journal),
                                       "--time-scale", "0.05")
            assert term.returncode == 0, term.stderr
            assert await acquirer.stop(signal.SIGINT) == 0, acquirer.log
        await broker_cmd.stop(signal.SIGTERM)
    code, summary = await check(journal, ledger)
    assert (summary["approved"], summary["orphaned_debits"], summary["double_debits"]) == (1, 0, 0)
    assert code == 0


def test_check_rejects_files_that_are_not_a_journal_or_ledger(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all")
    out = subprocess.run([*procs.POSSIM, "check", "--journal", str(junk), "--ledger", str(junk)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_replay_rejects_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "memory.jsonl"
    assert subprocess.run([*procs.POSSIM, "run", str(SCENARIOS / "response-lost.toml"), "--trace", str(bad),
                           "--json"], capture_output=True, timeout=120, check=False).returncode == 0
    out = subprocess.run([*procs.POSSIM, "replay", str(bad)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 2 and "not a recorded real-time run" in out.stderr


@pytest.mark.asyncio
async def test_restarted_acquirer_resumes_its_session_and_answers_what_queued_up(broker: Broker, tmp_path: Path,
                                                                                 connect: Connect) -> None:
    """Requests published while the acquirer process is down wait in its session and are answered on return."""
    ledger = tmp_path / "ledger.db"
    args = ("acquirer", "--broker", broker.url, "--ledger", str(ledger), "--client-id", f"acq-{uuid.uuid4().hex[:6]}")
    async with procs.running(*args) as first:
        await first.ready()  # its session (with the subscription) now exists on the broker
        assert await first.stop(signal.SIGTERM) == 0, first.log

    pos = await connect("pos")
    msg = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00099", pan="4000000000000002",
                  processing_code="000000", amount=777, currency="978")
    pos.publish(requests_topic("POS00099"), codec.encode(msg))
    await drained(pos)  # the broker holds the request in the stopped acquirer's session

    async with procs.running(*args) as second:
        await second.wait_for_line(procs.is_event("ledger_debit"), "the queued request's debit")
        assert await second.stop(signal.SIGTERM) == 0, second.log
    assert ledger_rows(ledger) == [("debit", 777)]


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["none", "reversal"])
async def test_qos0_gives_the_same_verdict(broker: Broker, policy: str) -> None:
    path = SCENARIOS / "response-lost.toml"
    result = await run_mqtt(load(path), policy, 1, BrokerAddress.parse(broker.url), 0, 0.05)
    assert result.quiescent
    assert counts(result.verdict.summary()) == counts(simulate(load(path), policy).verdict.summary())

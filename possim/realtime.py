"""Real-time runs over MQTT: the same rig and fault layer as in memory, on the asyncio loop.

``run_mqtt`` runs terminal and host in one process (convenience); ``serve_acquirer`` and
``drive_terminal`` run them as separate processes against the same broker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from acquirer_sim.driver import HostDriver
from acquirer_sim.host import AcquirerHost
from possim.rig import Rig, RunResult
from possim.scenario import Scenario, from_dict
from possim.trace import named
from protocol.mqtt import ALL_REQUESTS, BrokerAddress, MqttEndpoint, TopicTransport, requests_topic, responses_topic


class LoopScheduler:
    """The asyncio loop as a possim scheduler: seconds since the run started."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.t0 = loop.time()

    def now(self) -> float:
        return self.loop.time() - self.t0

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, delay), callback)


class ResponseRouter:
    """The host's outgoing link: each reply goes to its terminal's response topic."""

    def __init__(self, endpoint: MqttEndpoint) -> None:
        self.endpoint = endpoint

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.endpoint.publish(responses_topic(str((meta or {})["tid"])), data)


async def wait_quiet(is_quiet: Callable[[], bool], activity: Callable[[], int], deadline: float,
                     grace: float = 0.3, locally_quiet: Callable[[], bool] | None = None,
                     lost_grace: float = 3.0) -> bool:
    """Wait until ``is_quiet`` holds and nothing happened for ``grace`` seconds; False at the deadline.

    ``is_quiet`` may include "everything published was received". A broker killed with
    messages in flight loses them for good, so after ``lost_grace`` seconds without any
    activity, ``locally_quiet`` (the same without the transit counts) is enough.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last_activity, since = activity(), loop.time()
    while loop.time() < end:
        await asyncio.sleep(0.02)
        now_activity = activity()
        if now_activity != last_activity:
            last_activity, since = now_activity, loop.time()
            continue
        idle_for = loop.time() - since
        if is_quiet() and idle_for >= grace:
            return True
        if locally_quiet is not None and locally_quiet() and idle_for >= lost_grace:
            return True
    return False


async def _settle(rig: Rig, deadline: float, ready: Callable[[], bool], delivered: Callable[[], bool]) -> bool:
    """A one-process real-time run is over when both sides are idle, the transport is connected with
    nothing queued (``ready``), and every message sent has arrived (``delivered``; waived after a
    quiet spell, since a crashed broker loses messages for good)."""

    def local() -> bool:
        return rig.locally_quiet() and ready()

    return await wait_quiet(lambda: local() and delivered(), lambda: len(rig.trace.records), deadline,
                            locally_quiet=local)


def _deadline(scenario: Scenario) -> float:
    last = max(t.at + (t.count - 1) * t.every for t in scenario.model.transactions)
    term = scenario.model.terminal
    return last + 40 * term.response_timeout + 20 * term.backoff_max + 10.0


async def run_mqtt(scenario: Scenario, policy: str, seed: int, address: BrokerAddress, qos: int = 1,
                   time_scale: float = 1.0, ledger_path: str | Path | None = None,
                   journal_path: str | Path | None = None,
                   on_ready: Callable[[Rig, MqttEndpoint, MqttEndpoint], Any] | None = None,
                   force_redelivery: int = 0) -> RunResult:
    """Terminal and host in this process, talking through a real broker."""
    scaled = scenario.scaled(time_scale)
    rig = Rig(scaled, policy, seed, LoopScheduler(asyncio.get_running_loop()), None, ledger_path, journal_path)
    tid = rig.terminal_config.tid
    run_id = uuid.uuid4().hex[:8]
    host_ep = MqttEndpoint(address, f"possim-acquirer-{run_id}", [ALL_REQUESTS],
                           lambda _t, d: rig.host_driver.receive(d), qos, rig.trace.emit)  # type: ignore[union-attr]
    term_ep = MqttEndpoint(address, f"possim-terminal-{tid.strip()}-{run_id}", [responses_topic(tid)],
                           lambda _t, d: rig.to_terminal.send(d), qos, rig.trace.emit)
    host_ep.hold_acks = force_redelivery
    rig.connect(TopicTransport(term_ep, requests_topic(tid)), ResponseRouter(host_ep))
    rig.trace.emit("mqtt_run", broker=f"{address.host}:{address.port}", qos=qos, time_scale=time_scale,
                   scenario_data=scenario.raw())
    try:
        await host_ep.start()
        await term_ep.start()
        if on_ready:
            on_ready(rig, host_ep, term_ep)
        rig.schedule_payments()
        quiescent = await _settle(
            rig, _deadline(scaled),
            ready=lambda: all(ep.idle and ep.connected.is_set() for ep in (host_ep, term_ep)),
            delivered=lambda: host_ep.received >= term_ep.published and term_ep.received >= host_ep.published)
    finally:
        await term_ep.stop()
        await host_ep.stop()
    return rig.finish(quiescent, "mqtt", {"published": term_ep.published + host_ep.published})


async def run_tcp(scenario: Scenario, policy: str, seed: int, time_scale: float = 1.0,
                  ledger_path: str | Path | None = None, journal_path: str | Path | None = None) -> RunResult:
    """Terminal and host in this process over a real loopback TCP socket, ISO 8583 length-framed."""
    from protocol.tcp import TcpHost, TcpTerminalLink

    scaled = scenario.scaled(time_scale)
    rig = Rig(scaled, policy, seed, LoopScheduler(asyncio.get_running_loop()), None, ledger_path, journal_path)
    server = TcpHost(lambda d: rig.host_driver.receive(d), rig.trace.emit)  # type: ignore[union-attr]
    port = await server.start()
    client = TcpTerminalLink("127.0.0.1", port, rig.to_terminal.send, rig.trace.emit)
    rig.connect(client, server)
    rig.trace.emit("tcp_run", port=port, time_scale=time_scale, scenario_data=scenario.raw())
    try:
        await client.start()
        rig.schedule_payments()
        quiescent = await _settle(
            rig, _deadline(scaled), ready=lambda: client.idle and client.connected.is_set(),
            delivered=lambda: server.received >= client.sent and client.received >= server.sent)
    finally:
        await client.stop()
        await server.stop()
    return rig.finish(quiescent, "tcp")


async def drive_terminal(scenario: Scenario, policy: str, seed: int, address: BrokerAddress, tid: str,
                         qos: int = 1, time_scale: float = 1.0, journal_path: str | Path | None = None,
                         settle: float = 1.0, live: Callable[..., None] | None = None) -> RunResult:
    """Only the terminal (with the scenario's faults, both directions); the host is another process.

    The run ends when the terminal has nothing left to do and no answer came for ``settle``
    seconds. Its verdict here counts only the terminal's side; judge the whole with
    ``possim check`` against the host's ledger file.
    """
    data = scenario.scaled(time_scale).model.model_dump()
    data["terminal"] = {**data["terminal"], "tid": tid}
    scaled = from_dict(data, scenario.path)
    rig = Rig(scaled, policy, seed, LoopScheduler(asyncio.get_running_loop()), None, None, journal_path)
    rig.trace.sink = live
    # A fixed client id per terminal: a restarted terminal process resumes its MQTT session
    # and receives the answers queued for it while it was down.
    ep = MqttEndpoint(address, f"possim-terminal-{tid.strip()}", [responses_topic(tid)],
                      lambda _t, d: rig.to_terminal.send(d), qos, rig.trace.emit)
    rig.connect(TopicTransport(ep, requests_topic(tid)), None)
    try:
        await ep.start()
        rig.schedule_payments()
        quiescent = await wait_quiet(lambda: rig.locally_quiet() and ep.idle, lambda: len(rig.trace.records),
                                     _deadline(scaled), grace=settle)
    finally:
        await ep.stop()
    return rig.finish(quiescent, "mqtt")


async def serve_acquirer(address: BrokerAddress, host: AcquirerHost, emit: Callable[..., None], qos: int,
                         stop: asyncio.Event, client_id: str = "possim-acquirer") -> MqttEndpoint:
    """The host alone: answers every terminal until ``stop`` is set.

    Its client id is fixed, so a restarted acquirer resumes its session and gets the
    requests that arrived while it was down.
    """
    sched = LoopScheduler(asyncio.get_running_loop())
    driver: HostDriver
    ep = MqttEndpoint(address, client_id, [ALL_REQUESTS],
                      lambda _t, d: driver.receive(d), qos, emit)
    driver = HostDriver(host, ResponseRouter(ep), sched, named(emit))
    await ep.start()
    try:
        await stop.wait()
        await wait_quiet(lambda: driver.pending == 0 and ep.idle, lambda: ep.received, 5.0, grace=0.1)
    finally:
        await ep.stop()
    return ep



"""Real-time runs: the same rig and fault layer as in memory, on the asyncio loop, over any transport.

``run_live`` runs terminal and host in one process over any registered transport
(``run_mqtt`` and ``run_tcp`` name the two real ones); ``serve_acquirer`` and
``drive_terminal`` run them as separate processes over MQTT or TCP.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from possim.acquirer_sim.driver import HostDriver
from possim.acquirer_sim.host import AcquirerHost
from possim.acquirer_sim.wallet import WalletGateway
from possim.acquirer_sim.wallet_driver import WalletGatewayDriver
from possim.protocol import codec, transports
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.lines import Lines
from possim.protocol.mac import MacKey
from possim.protocol.mqtt import BrokerAddress
from possim.protocol.ports import TraceSink
from possim.protocol.profiles import get_profile
from possim.protocol.transports import Endpoint, HostEnd, Origin, TerminalEnd, TransportError, Wire
from possim.running.rig import Rig, RunResult, TerminalRun
from possim.running.trace import named
from possim.running.wallet_rig import acquirer_gateway
from possim.scenario import Scenario, from_dict


class LoopScheduler:
    """The asyncio loop as a possim scheduler: seconds since the run started."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.t0 = loop.time()

    def now(self) -> float:
        return self.loop.time() - self.t0

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.loop.call_later(max(0.0, delay), callback)


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

    def quiet() -> bool:  # a terminal stopped by its journal ends the run at once
        return rig.failure is not None or (local() and delivered())

    return await wait_quiet(quiet, lambda: len(rig.trace.records), deadline, locally_quiet=local)


def _deadline(scenario: Scenario) -> float:
    last = max(t.at + (t.count - 1) * t.every for t in scenario.model.transactions)
    term = scenario.model.terminal
    return last + 40 * term.response_timeout + 20 * term.backoff_max + 10.0


async def run_live(scenario: Scenario, policy: str, seed: int, wire: Wire, time_scale: float = 1.0,
                   ledger_path: str | Path | None = None, journal_path: str | Path | None = None,
                   on_ready: Callable[[Rig, HostEnd, TerminalEnd], Any] | None = None) -> RunResult:
    """Terminal and host in this process, in real time, over any transport: the one real-time run loop.

    The fault layer sits on the terminal's side of the wire in both directions, as in memory,
    so a scenario's faults mean the same on every transport.
    """
    scaled = scenario.scaled(time_scale)
    rig = Rig(scaled, policy, seed, LoopScheduler(asyncio.get_running_loop()), None, ledger_path, journal_path)
    host_end = await wire.open_host(rig.host_receive, rig.trace.emit)  # wallet frames to the wallet gateway
    term_end: TerminalEnd | None = None
    try:
        term_end = await wire.open_terminal(rig.terminal_config.tid, rig.to_terminal.send, rig.trace.emit)
        hosts = rig.terminal_config.hosts  # one host in this process: every line is this one connection
        rig.connect(rig.lines(dict.fromkeys(hosts, term_end)) if len(hosts) > 1 else term_end, host_end)
        rig.trace.emit(ev.LiveRun(wire.name, time_scale, wire.describe(), scenario.raw()))
        if on_ready:
            on_ready(rig, host_end, term_end)
        rig.schedule_payments()
        ends = (host_end, term_end)
        quiescent = await _settle(rig, _deadline(scaled), ready=lambda: all(e.idle for e in ends),
                                  delivered=lambda: host_end.received >= ends[1].sent
                                  and ends[1].received >= host_end.sent)
    finally:
        if term_end is not None:
            await term_end.close()
        await host_end.close()
    return rig.finish(quiescent, wire.name, {"published": term_end.sent + host_end.sent})


async def run_over(transport: transports.Transport, scenario: Scenario, policy: str, seed: int,
                   url: str | None = None, qos: int = 1, time_scale: float = 1.0,
                   ledger_path: str | Path | None = None, journal_path: str | Path | None = None,
                   on_ready: Callable[[Rig, HostEnd, TerminalEnd], Any] | None = None,
                   force_redelivery: int = 0) -> RunResult:
    """Terminal and host in this process over a wire of ``transport`` (at ``url``: a broker, or where
    the host listens; ``None``: the wire's own choice, a free loopback port), framed as the profile's
    dialect is where the wire frames (TCP: ``cup`` adds TPDU and header)."""
    endpoint = Endpoint(url, qos, force_redelivery=force_redelivery,
                        dialect=get_profile(scenario.profile).dialect)
    return await run_live(scenario, policy, seed, transport.open(endpoint), time_scale, ledger_path,
                          journal_path, on_ready)


async def run_mqtt(scenario: Scenario, policy: str, seed: int, address: BrokerAddress, qos: int = 1,
                   time_scale: float = 1.0, ledger_path: str | Path | None = None,
                   journal_path: str | Path | None = None,
                   on_ready: Callable[[Rig, HostEnd, TerminalEnd], Any] | None = None,
                   force_redelivery: int = 0) -> RunResult:
    """Terminal and host in this process, talking through a real broker."""
    url = f"mqtt://{address.host}:{address.port}"
    return await run_over(transports.for_url(url), scenario, policy, seed, url, qos, time_scale, ledger_path,
                          journal_path, on_ready, force_redelivery)


async def run_tcp(scenario: Scenario, policy: str, seed: int, time_scale: float = 1.0,
                  ledger_path: str | Path | None = None, journal_path: str | Path | None = None) -> RunResult:
    """Terminal and host in this process over a real loopback TCP socket, framed as the profile's
    dialect is (``cup``: length, TPDU and header; ``iso``: length only)."""
    url = "tcp://127.0.0.1:0"
    return await run_over(transports.for_url(url), scenario, policy, seed, url, time_scale=time_scale,
                          ledger_path=ledger_path, journal_path=journal_path)


async def drive_terminal(scenario: Scenario, policy: str, seed: int, wire: Wire, tid: str,
                         time_scale: float = 1.0, journal_path: str | Path | None = None,
                         settle: float = 1.0, live: Callable[..., None] | None = None,
                         mac_key: MacKey | None = None, end_of_day: bool = False,
                         replacement: bool = False, backups: Sequence[Wire] = (),
                         addresses: Sequence[str] = ()) -> TerminalRun:
    """Only the terminal (with the scenario's faults, both directions); the host is another process.

    ``end_of_day``: no sales; the terminal, restored from its journal, settles its batch
    (``possim settle``) and the run ends when the settlement is done.

    On an existing journal the terminal resumes: it is restored from the journal first (a
    sale in flight when the process died gets its recovery), its STAN carries on, and sales
    already journaled are not paid again. Field 7 and the RRN follow the wall clock, so a
    terminal id used again never repeats an idempotency key.

    The run ends when the terminal has nothing left to do and no answer came for ``settle``
    seconds. It reports (and logs in ``run_finished``) only the terminal's own outcomes, from
    its journal: it has no ledger to judge money by; judge the whole with ``possim check``
    against the host's ledger file.

    ``mac_key``: the terminal's key from a key file (the acquirer holds the same); without
    one the terminal sends no MACs, as an acquirer without keys expects.

    The terminal signs on first with its life number (kept in the journal; a new one on a new
    journal). On a new journal, for an id the host knows from an earlier life, it refuses to sell
    unless ``replacement``: the run then ends at once with ``RunResult.refused`` saying why.

    ``backups``: the wires of backup host lines (``addresses``: every line's address, primary
    first): the terminal sends over the next line after ``failover_after`` timeouts in a row or
    when the one it uses has lost its connection (``protocol.lines``).
    """
    data = scenario.scaled(time_scale).model.model_dump()
    data["terminal"] = {**data["terminal"], "tid": tid}
    scaled = from_dict(data, scenario.path)
    rig = Rig(scaled, policy, seed, LoopScheduler(asyncio.get_running_loop()), None, None, journal_path,
              epoch=datetime.now().replace(microsecond=0), keys={tid: mac_key} if mac_key is not None else None,
              order_nonces=secrets.SystemRandom(),  # a stranger must not guess the next order number
              sign_on=True, replacement=replacement)
    rig.trace.sink = live
    end: Any = await _open_lines(rig, tid, [wire, *backups], addresses) if backups else (
        await wire.open_terminal(tid, rig.to_terminal.send, rig.trace.emit))
    rig.connect(end, None)
    try:
        rig.resume()
        rig.terminal_driver.start()
        if end_of_day:
            rig.terminal_driver.settle()
        else:
            rig.schedule_payments()
        quiescent = await wait_quiet(lambda: rig.failure is not None or rig.terminal.halted is not None
                                     or (rig.locally_quiet() and end.idle),
                                     lambda: len(rig.trace.records), _deadline(scaled), grace=settle)
    finally:
        await end.close()
    return rig.finish_terminal(quiescent, wire.name)


async def _open_lines(rig: Rig, tid: str, wires: Sequence[Wire], addresses: Sequence[str]) -> Lines:
    """One terminal end per host line; a line that cannot be reached at the start is a line that is
    down (the terminal leaves it at its first send), unless no line can be reached at all."""
    ends: dict[str, Any] = {}
    for k, wire in enumerate(wires):
        name = addresses[k] if k < len(addresses) else f"line {k + 1}"
        try:
            ends[name] = await wire.open_terminal(tid, rig.to_terminal.send, rig.trace.emit)
        except TransportError:
            ends[name] = _Unreachable()
    if all(isinstance(end, _Unreachable) for end in ends.values()):
        raise TransportError(f"cannot reach any host line: {', '.join(ends)}")
    return rig.lines(ends)


class _Never:
    """The ``connected`` flag of a line that never connects."""

    def is_set(self) -> bool:
        return False


_NEVER = _Never()


class _Unreachable:
    """A host line that could not be reached at the start: never connected, sends nothing."""

    connected = _NEVER
    idle = True
    outbox: tuple[bytes, ...] = ()

    def send(self, data: bytes, meta: object = None) -> None:
        """Never called while another line is up (``protocol.lines.Lines`` leaves a line that is down)."""

    async def close(self) -> None:
        """Nothing to close."""


@dataclass
class HostStats:
    """What a long-running acquirer has done: logged periodically, so silence is never mistaken for health."""

    handled: int = 0
    failed: int = 0


class _Guarded:
    """The acquirer's request handler: one bad message never stops the host.

    Wallet frames (JSON) go to the wallet gateway, card frames (ISO 8583) to the card host.
    An error while handling one request is logged with the request's ``tid``, ``stan`` and
    ``mti``; the sender of a card request gets response code 96 (system malfunction) when the
    request can be read (and, with keys, carries its terminal's MAC), and the host goes on
    serving. The ledger rolled the failed transaction back.
    """

    def __init__(self, driver: HostDriver, wallet: WalletGatewayDriver, end: HostEnd, emit: TraceSink,
                 stats: HostStats) -> None:
        self.driver, self.wallet, self.end, self.emit, self.stats = driver, wallet, end, emit, stats

    def __call__(self, data: bytes, origin: Origin | None = None) -> None:
        is_wallet = W.is_wallet(data)
        try:
            if is_wallet:
                self.wallet.receive(data, origin)
            else:
                self.driver.receive(data, origin)
        except Exception as exc:  # the point: no request may stop the host
            self.stats.failed += 1
            fields = W.wire_fields(data) if is_wallet else codec.wire_fields(data)
            self.emit(ev.RequestFailed.from_fields({**fields, "error": f"{type(exc).__name__}: {exc}"}))
            if not is_wallet:
                self._answer_96(data, origin)
        else:
            self.stats.handled += 1

    def _answer_96(self, data: bytes, origin: Origin | None) -> None:
        host = self.driver.host
        try:
            msg = codec.decode(data, host.checking_keys(data))
        except ProtocolError:
            return
        if msg.mti in M.REQUESTS and (origin is None or origin.tid in (None, msg.tid)):
            answer = msg.response("96")
            self.end.send(codec.encode(answer, host.answer_key(answer), codec.dialect_of(data)),
                          {"tid": msg.tid, "stan": msg.stan, "mti": msg.mti, "origin": origin})


async def serve_acquirer(wire: Wire, host: AcquirerHost, log: Callable[..., None], stop: asyncio.Event,
                         stats_every: float = 10.0, gateway: WalletGateway | None = None) -> HostEnd:
    """The host alone: answers every terminal until ``stop`` is set.

    Over MQTT its client id is fixed, so a restarted acquirer resumes its session and gets
    the requests that arrived while it was down; over TCP it listens on the wire's address.
    Every ``stats_every`` seconds it logs how many requests it handled and how many failed.

    Wallet frames go to ``gateway`` (``possim.running.wallet_rig.acquirer_gateway``, which verifies them
    with the same keys as the host), over the same ledger database as the card host; without one,
    a gateway whose customers pay at once, with the host's keys.

    ``log`` hears every event by name with its fields (a structlog line per event).
    """
    emit = named(log)
    sched = LoopScheduler(asyncio.get_running_loop())
    stats = HostStats()
    guarded: _Guarded
    end = await wire.open_host(lambda d, o: guarded(d, o), emit)
    driver = HostDriver(host, end, sched, emit)
    if gateway is None:
        gateway = acquirer_gateway(None, host.ledger.conn, host.config.default_balance, host.config.epoch,
                                   random.Random(), host.keys)
    wallet = WalletGatewayDriver(gateway, end, sched, emit)
    guarded = _Guarded(driver, wallet, end, emit, stats)
    emit(ev.AcquirerReady(wire.name, wire.describe()))
    reporter = asyncio.create_task(_report(stats, emit, stats_every))
    try:
        await stop.wait()
        await wait_quiet(lambda: driver.pending == 0 and wallet.pending == 0 and end.idle, lambda: end.received,
                         5.0, grace=0.1)
    finally:
        reporter.cancel()
        await end.close()
        emit(ev.AcquirerStats(stats.handled, stats.failed))
    return end


async def _report(stats: HostStats, emit: TraceSink, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        emit(ev.AcquirerStats(stats.handled, stats.failed))

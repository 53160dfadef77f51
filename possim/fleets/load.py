"""``possim load``: many terminals in one process against one or K hosts, in real time, with percentiles.

The terminals are a :class:`possim.fleets.fleet.Fleet` on the asyncio loop: the real terminal
drivers, state machines, journals and fault layer, exactly as in a scenario run. Sales
arrive at ``rate`` per second spread over ``terminals`` (terminal ``i`` pays every
``terminals / rate`` seconds, starting at ``i / rate``) for ``duration`` seconds; then the
run waits for the fleet to settle (reversals, queries) and stops by itself.

Latency is measured per sale, from the customer's request to the terminal's outcome, into an
HdrHistogram (microseconds, 3 significant digits). Over MQTT terminals share a few clients per
host shard (one client publishes to many terminals' topics, as a terminal concentrator does),
so a thousand terminals do not need a thousand MQTT sessions; over TCP each terminal has its
own connection, because a connection belongs to the terminal of its first request.

A load run leaves nothing behind on a broker it shares: its MQTT clients have fixed ids
(``possim-load-...``, from the shard and the terminal ids they serve), every session is
cleared before the run (a killed earlier run's) and ended after it, so the broker holds no
session and no queued message of possim's however many runs it serves.

A run that loses its peer says so and stops: a broker or an external host that stays
unreachable for ``LOST_AFTER`` seconds ends the run with what it measured so far, as does
``stop`` (Ctrl-C in the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from possim.acquirer_sim.driver import HostDriver
from possim.fleets.alerts import Alert, Thresholds, alerts
from possim.fleets.alerts import terminals as alert_terminals
from possim.fleets.fleet import Fleet, Member
from possim.i18n import Tr
from possim.judging.checker import Verdict
from possim.money.money import format_amount
from possim.pos_sim.actions import Outcome
from possim.protocol import codec, transports
from possim.protocol.errors import ProtocolError
from possim.protocol.events import Event, ResponseTimeout
from possim.protocol.memory import NAME as MEMORY
from possim.protocol.memory import MemoryTransport
from possim.protocol.shards import request_filter, request_topic
from possim.protocol.transports import Origin
from possim.running.realtime import LoopScheduler, wait_quiet
from possim.scenario import Scenario, from_dict

#: Connections per host shard that the load generator's terminals share.
CONNECTIONS = 4
#: Bounds: a load run is finite in size and time.
MAX_TERMINALS = 100_000
MAX_DURATION = 3600.0
#: Seconds a broker or an external host may stay unreachable before the run is stopped as lost.
LOST_AFTER = 5.0
#: What a lost peer is called: English templates (the CLI translates them) filled with its URL and LOST_AFTER.
BROKER_GONE = "broker at {url} is gone (no connection for {seconds} s)"
HOST_GONE = "host at {url} stopped answering (no connection for {seconds} s)"
def transport_words(tr: Tr, name: str) -> str:
    """A transport as a load view names it: the option's name in English, else its registry
    entry's ``load_words`` translated (a load runs in real time over every transport: its memory is
    not the scenario runner's virtual time), else the name as a protocol is written (``MQTT``)."""
    if tr.lang == "en" or name not in transports.REGISTRY:
        return name
    words = transports.REGISTRY.get(name).load_words
    return tr(words) if words else name.upper()


def said(tr: Tr, words: Mapping[str, str], name: str) -> str:
    """A transport or profile ``name`` as the reader calls it: the option's name in English, else
    its entry of ``words`` translated, else the name as a protocol is written (``MQTT``)."""
    if tr.lang == "en":
        return name
    return tr(words[name]) if name in words else name.upper()

class LoadError(Exception):
    """A load run that cannot start (bad address, unreachable host); ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class LoadPlan:
    terminals: int
    rate: float
    duration: float
    transport: str = MEMORY
    hosts: int = 1
    policy: str = "reversal"
    seed: int = 1
    connect: tuple[str, int] | None = None
    broker_url: str | None = None
    qos: int = 1
    loss: float = 0.0
    #: The terminals' response timeout; reversal, query and advice timers follow it.
    timeout: float = 30.0
    #: iso or cup: the terminals' and hosts' rules and wire (CUP bytes, TPDU framing over TCP).
    profile: str = "iso"
    #: Monitoring: a terminal whose timeouts or orphaned debits reach these is named in ``alerts``.
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def currency(self) -> str:
        """The terminals' currency (ISO 4217 numeric): the profile's, as the scenario gives it."""
        from possim.protocol.profiles import get_profile

        return get_profile(self.profile).currency

    @property
    def sales(self) -> int:
        return max(1, round(self.rate * self.duration))

    def scenario(self) -> Scenario:
        """The load as a fleet scenario: one group, an ideal link unless ``loss`` is given, an instant host."""
        per_terminal = max(1, -(-self.sales // self.terminals))
        every = self.terminals / self.rate
        width = max(4, len(str(self.terminals)))
        link = {"loss": self.loss, "latency": {"dist": "constant", "value": 0.0}}
        instant = {"dist": "constant", "value": 0.0}
        return from_dict({
            "title": f"load: {self.terminals} terminals at {self.rate:g}/s for {self.duration:g}s",
            "description": "possim load", "seed": self.seed, "policy": self.policy, "hosts": self.hosts,
            "network": {"to_host": link, "to_terminal": link},
            "host": {"processing": instant, "quick": instant}, "terminal": {**self._timers(), "profile": self.profile},
            "transactions": [{"amount": "10.00", "count": per_terminal, "every": every}],
            "terminals": [{"name": "load", "count": self.terminals, "tid": _pattern(width), "spread": every}],
        })


    def _timers(self) -> dict[str, float]:
        t = self.timeout
        return {"response_timeout": t, "reversal_timeout": t, "advice_timeout": t, "query_timeout": t / 3,
                "query_interval": t / 6, "backoff_initial": t / 6, "backoff_max": 2 * t}

    @property
    def deadline(self) -> float:
        """The whole run's bound: the sales, then time for every recovery to finish."""
        return self.duration + 40 * self.timeout + 40 * self.timeout + 10.0


def _pattern(width: int) -> str:
    """A terminal id pattern of 8 characters for up to ``10 ** width`` terminals."""
    return "LOAD"[: 8 - width] + "{n:0" + str(width) + "d}"


@dataclass
class LoadReport:
    """What a load run measured."""

    plan: LoadPlan
    started: int
    completed: int
    wall_seconds: float
    sale_seconds: float
    histogram: HdrHistogram
    outcomes: Counter[str]
    timeouts: int
    verdict: Verdict
    #: The fleet went quiet (every recovery ended) before the deadline; whether the money is settled
    #: is ``ok``, from the verdict too (``--json``: ``finished`` and ``settled``).
    settled: bool
    journals_only: bool
    per_host: list[int] = field(default_factory=list)
    #: Why the run ended before settling: its broker or host was lost, or it was interrupted.
    stopped: str | None = None
    #: A lost peer as (template, url), for a caller that words ``stopped`` in another language.
    lost: tuple[str, str] | None = None
    #: Latency over run time: (second, sales completed in it, mean ms, max ms), one per busy second.
    over_time: list[tuple[int, int, float, float]] = field(default_factory=list)

    def latency_bins(self, bins: int = 12) -> tuple[list[float], list[int]]:
        """The latency histogram in ``bins`` equal bins of milliseconds up to p99; the last bin
        also holds the slower tail, its upper edge the maximum (a timeout would squash the rest)."""
        from possim.views.charts import buckets

        h = self.histogram
        if h.get_total_count() == 0:
            return [0.0, 1.0], [0]
        pairs = [(it.value_iterated_to, it.count_added_in_this_iter_step) for it in h.get_recorded_iterator()]
        edges, counts = buckets(pairs, bins, cap=h.get_value_at_percentile(99))
        edges[-1] = max(edges[-1], h.get_max_value())
        return [e / 1000 for e in edges], counts

    #: Response timeouts per terminal, counted from the recorded events.
    timeouts_per_terminal: dict[str, int] = field(default_factory=dict)

    def alerts(self) -> list[Alert]:
        """Terminals over the plan's thresholds: timeouts from the events, orphaned debits from the
        checker (against an external host there is no ledger, so only timeouts)."""
        return alerts(self.timeouts_per_terminal, self.verdict.per_terminal, self.plan.thresholds)

    @property
    def money_at_risk(self) -> int:
        """Minor units charged without a sale, charged twice, given on a phantom approval or held:
        the fleet's money at risk, as ``possim run`` sums it (0 without a ledger to read)."""
        return sum(self.verdict.at_risk.values())

    def percentiles(self) -> dict[str, float]:
        """Latency in milliseconds: p50, p95, p99, max."""
        h = self.histogram
        if h.get_total_count() == 0:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
        return {"p50": h.get_value_at_percentile(50) / 1000, "p95": h.get_value_at_percentile(95) / 1000,
                "p99": h.get_value_at_percentile(99) / 1000, "max": h.get_max_value() / 1000}

    def as_dict(self) -> dict[str, Any]:
        counts = self.verdict.summary()
        keys = (("transactions", "approved", "declined", "failed", "unknown", "reversed", "pending_reversals")
                if self.journals_only else tuple(counts))
        return {"terminals": self.plan.terminals, "rate": self.plan.rate, "duration": self.plan.duration,
                "transport": self.plan.transport, "hosts": self.plan.hosts, "policy": self.plan.policy,
                "profile": self.plan.profile, "sales_started": self.started, "sales_completed": self.completed,
                "throughput": round(self.completed / self.sale_seconds, 1) if self.sale_seconds else 0.0,
                "wall_seconds": round(self.wall_seconds, 2), "latency_ms": self.percentiles(),
                "timeouts": self.timeouts, "outcomes": dict(self.outcomes),
                # settled as the console says it (and ``possim check``): nothing orphaned, doubled or owed
                # once every recovery finished; ``finished``: the recoveries ended before the deadline
                "settled": self.ok, "finished": self.settled,
                "verdict_from": "journals" if self.journals_only else "journals+ledgers",
                # against an external host: the requests sent to it (its own count is not ours to read)
                "requests_per_host": self.per_host,
                "requests_counted": "sent" if self.journals_only else "handled",
                "stopped": self.stopped, **{k: counts[k] for k in keys}, **self._at_risk(), **self._monitoring()}

    def _at_risk(self) -> dict[str, str]:
        """Money at risk, where there is a ledger to know it from."""
        return {} if self.journals_only else {"money_at_risk": format_amount(self.money_at_risk)}

    def _monitoring(self) -> dict[str, Any]:
        found = self.alerts()
        return {"alerts": [a.as_dict() for a in found], "alert_terminals": alert_terminals(found),
                "alert_thresholds": {"timeouts": self.plan.thresholds.timeouts,
                                     "orphaned_debits": self.plan.thresholds.orphaned_debits}}

    @property
    def ok(self) -> bool:
        if self.stopped is not None:
            return False
        v = self.verdict.counts
        if self.journals_only:
            return self.settled and v["pending_reversals"] == 0
        return self.settled and self.verdict.settled


class _Meter:
    """Counts what the load run shows live and reports at the end."""

    def __init__(self) -> None:
        self.histogram = HdrHistogram(1, 3_600_000_000, 3)
        self.outcomes: Counter[str] = Counter()
        self.started = self.completed = self.timeouts = 0
        self.last = 0.0  # run time of the last outcome: throughput is over the time sales took
        #: second of run time -> [sales completed, total latency (s), max latency (s)]
        self.seconds: dict[int, list[float]] = {}

    def outcome(self, _member: Member, outcome: Outcome, started: float | None, now: float) -> None:
        self.outcomes[outcome.status] += 1
        self.last = now
        if started is not None:
            self.completed += 1
            latency = now - started
            self.histogram.record_value(max(1, int(latency * 1_000_000)))
            second = self.seconds.setdefault(int(now), [0, 0.0, 0.0])
            second[0] += 1
            second[1] += latency
            second[2] = max(second[2], latency)

    def over_time(self) -> list[tuple[int, int, float, float]]:
        return [(t, int(n), round(total / n * 1000, 3), round(top * 1000, 3))
                for t, (n, total, top) in sorted(self.seconds.items())]

    def event(self, event: Event) -> None:
        if type(event) is ResponseTimeout:
            self.timeouts += 1


class _Guard:
    """A host shard's request handler: one failing request is answered 96 and never stops the host."""

    def __init__(self) -> None:
        self.driver: HostDriver | None = None
        self.handled = self.failed = 0
        self.reply: Callable[[bytes, Mapping[str, object]], None] | None = None

    def __call__(self, data: bytes, origin: Origin | None = None) -> None:
        assert self.driver is not None
        try:
            self.driver.receive(data, origin)
            self.handled += 1
        except Exception:  # the point: no request may stop the host
            self.failed += 1
            with contextlib.suppress(ProtocolError):
                msg = codec.decode(data)
                self.driver.link.send(codec.encode(msg.response("96")), {"tid": msg.tid, "origin": origin})


def check_target(host: str, allow_remote: bool) -> None:
    """Loopback only unless the user says otherwise: a load run must not hit someone's host by accident."""
    if allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise LoadError(f"{host} is not a loopback address; pass --allow-remote to load a remote host")


@dataclass
class _Peer:
    """A broker or host the run depends on: lost when ``up`` stays false for ``LOST_AFTER`` seconds."""

    template: str  # BROKER_GONE or HOST_GONE
    url: str
    up: Callable[[], bool]


@dataclass
class _Wiring:
    """What ``_wire`` set up: "every end is idle", the peers to watch, what to run after the last close."""

    ready: Callable[[], bool]
    peers: list[_Peer] = field(default_factory=list)
    sent: Callable[[], list[int]] | None = None
    after: list[Callable[[], Any]] = field(default_factory=list)


async def run_load(plan: LoadPlan, progress: Callable[[_Meter, LoadPlan, float], None] | None = None,
                   stop: asyncio.Event | None = None) -> LoadReport:
    """Run the load and judge the fleet; every connection is closed before returning.

    The run ends early, with what it measured so far, when ``stop`` is set (``stopped`` =
    "interrupted") or a peer is lost (``stopped`` says which).
    """
    meter = _Meter()
    loop = asyncio.get_running_loop()
    sched = LoopScheduler(loop)
    fleet = Fleet(plan.scenario(), plan.policy, plan.seed, sched,
                  on_outcome=lambda m, o, s: meter.outcome(m, o, s, sched.now()), emit=meter.event)
    closers: list[Callable[[], Any]] = []
    guards = [_Guard() for _ in range(plan.hosts)]
    began = time.perf_counter()
    wiring = _Wiring(lambda: True)
    stopped: str | None = None
    lost: tuple[str, str] | None = None
    try:
        wiring = await _wire(plan, fleet, guards, closers)
        sched.t0 = loop.time()
        fleet.schedule_payments()
        meter.started = plan.sales
        reporter = asyncio.create_task(_report(meter, plan, sched, progress))
        try:
            settled, stopped, lost = await _until_done(plan, fleet, meter, wiring, stop)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        sale_seconds = meter.last
    finally:
        for close in reversed(closers):
            await close()
        for after in wiring.after:
            await after()
    journals_only = plan.connect is not None
    fleet.journals.commit()
    verdict = fleet.judge() if not journals_only else _journals_only(fleet)
    fleet.close()
    started = sum(fleet_sales(fleet)) if stopped is None else verdict.counts["transactions"]
    per_host = wiring.sent() if wiring.sent is not None else [g.handled for g in guards]
    return LoadReport(plan, started, meter.completed, time.perf_counter() - began,
                      max(sale_seconds, 1e-9), meter.histogram, meter.outcomes, meter.timeouts, verdict, settled,
                      journals_only, per_host, stopped, lost, meter.over_time(), dict(fleet.tally.counts))


async def _until_done(plan: LoadPlan, fleet: Fleet, meter: _Meter, wiring: _Wiring,
                      stop: asyncio.Event | None) -> tuple[bool, str | None, tuple[str, str] | None]:
    """Settled (or the deadline), a lost peer, or ``stop``: whichever comes first.

    Returns (settled, why it stopped early, the lost peer's (template, url)).
    """
    quiet = asyncio.create_task(wait_quiet(lambda: fleet.quiet() and wiring.ready(),
                                           lambda: meter.completed + meter.timeouts, plan.deadline, grace=0.5))
    watch = asyncio.create_task(_watch(wiring.peers))
    asked = asyncio.create_task((stop or asyncio.Event()).wait())
    tasks = {quiet, watch, asked}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if quiet.done() and not quiet.cancelled():
        return quiet.result(), None, None
    if watch.done() and not watch.cancelled():
        template, url = watch.result()
        return False, template.format(url=url, seconds=f"{LOST_AFTER:g}"), (template, url)
    return False, "interrupted", None


async def _watch(peers: list[_Peer]) -> tuple[str, str]:
    """Returns the peer lost, (template, url), once it has been unreachable for ``LOST_AFTER`` seconds."""
    loop = asyncio.get_running_loop()
    down_since: dict[int, float] = {}
    while True:
        await asyncio.sleep(0.1)
        now = loop.time()
        for i, peer in enumerate(peers):
            if peer.up():
                down_since.pop(i, None)
            elif now - down_since.setdefault(i, now) >= LOST_AFTER:
                return peer.template, peer.url


def fleet_sales(fleet: Fleet) -> list[int]:
    return [sum(t.count for t in m.seat.schedule) for m in fleet.members.values()]


def _journals_only(fleet: Fleet) -> Verdict:
    """Against an external host there is no ledger to read: judge the journals against an empty one."""
    from possim.acquirer_sim.ledger import Ledger
    from possim.judging.checker import check

    empty = Ledger(":memory:")
    try:
        return check(fleet.journals, empty.conn)
    finally:
        empty.close()


async def _report(meter: _Meter, plan: LoadPlan, sched: LoopScheduler,
                  progress: Callable[[_Meter, LoadPlan, float], None] | None) -> None:
    while progress is not None:
        progress(meter, plan, sched.now())
        await asyncio.sleep(0.25)


async def _wire(plan: LoadPlan, fleet: Fleet, guards: list[_Guard], closers: list[Callable[[], Any]]
                ) -> _Wiring:
    """Connect hosts and terminals over the plan's transport, as its registry entry says it works:
    in this process (no sockets), through a broker (clients shared by many terminals), to hosts at
    their addresses (a connection per terminal, or a third-party host), or any other wire by its ends."""
    transport = transports.get(plan.transport)
    if transport.virtual_time:
        fleet.memory()
        for guard, shard in zip(guards, fleet.hosts, strict=True):
            guard.driver = shard.driver
        for m in fleet.members.values():
            m.outbound.target = MemoryTransport(guards[m.shard])
        return _Wiring(lambda: True)
    if transport.broker:
        return await _wire_mqtt(plan, fleet, guards, closers)
    if transport.dials:
        return await _wire_tcp(plan, fleet, guards, closers)
    return await _wire_ends(transport, plan, fleet, guards, closers)


async def _wire_ends(transport: transports.Transport, plan: LoadPlan, fleet: Fleet, guards: list[_Guard],
                     closers: list[Callable[[], Any]]) -> _Wiring:
    """Any other wire through its two ends: one wire per host shard, one terminal end per terminal."""
    ends: list[Any] = []
    for k, guard in enumerate(guards):
        wire = transport.open(transports.Endpoint(qos=plan.qos, shard=k, shards=plan.hosts))
        host_end = await wire.open_host(guard, _unheard)
        closers.append(host_end.close)
        ends.append(host_end)
        guard.driver = fleet.attach(k, host_end)
        for m in (m for m in fleet.members.values() if m.shard == k):
            end = await wire.open_terminal(m.tid, m.to_terminal.send, _unheard)
            closers.append(end.close)
            ends.append(end)
            m.outbound.target = end
    return _Wiring(lambda: all(e.idle for e in ends))


def _unheard(event: Event) -> None:
    """A load keeps no trace of its wires (its figures come from the drivers' events)."""


def _groups(fleet: Fleet, shard: int, n: int) -> list[list[Member]]:
    members = [m for m in fleet.members.values() if m.shard == shard or fleet.shards == 1]
    return [members[i::n] for i in range(n) if members[i::n]]


async def _wire_tcp(plan: LoadPlan, fleet: Fleet, guards: list[_Guard], closers: list[Callable[[], Any]]
                    ) -> _Wiring:
    from possim.protocol.profiles import get_profile
    from possim.protocol.tcp import TcpHost, TcpTerminalLink

    wire = get_profile(plan.profile).wire
    ends: list[Any] = []
    targets: list[tuple[str, int]] = []
    if plan.connect is not None:
        targets = [plan.connect] if plan.hosts == 1 else [(plan.connect[0], plan.connect[1] + k)
                                                          for k in range(plan.hosts)]
    else:
        for k, guard in enumerate(guards):
            server = TcpHost(guard, framing=wire.host_framing)
            port = await server.start("127.0.0.1", 0)
            closers.append(server.stop)
            guard.driver = fleet.attach(k, server)
            targets.append(("127.0.0.1", port))
    by_target: list[list[Any]] = [[] for _ in targets]
    for k, (host, port) in enumerate(targets):
        # one connection per terminal: a TCP connection belongs to the terminal of its first request
        for m in (m for m in fleet.members.values() if m.shard == k):
            link = TcpTerminalLink(host, port, m.to_terminal.send, framing=wire.framing)
            try:
                await link.start()
            except Exception as exc:
                raise LoadError(f"cannot connect to tcp://{host}:{port}: {exc}") from None
            closers.append(link.close)
            ends.append(link)
            by_target[k].append(link)
            m.outbound.target = link
    peers = [_Peer(HOST_GONE, f"tcp://{host}:{port}", _all_connected(links))
             for (host, port), links in zip(targets, by_target, strict=True)]
    sent = (lambda: [sum(link.sent for link in links) for links in by_target]) if plan.connect is not None else None
    return _Wiring(lambda: all(e.idle for e in ends), peers, sent)


def _all_connected(ends: list[Any]) -> Callable[[], bool]:
    return lambda: all(e.connected.is_set() for e in ends)


async def _wire_mqtt(plan: LoadPlan, fleet: Fleet, guards: list[_Guard], closers: list[Callable[[], Any]]
                     ) -> _Wiring:
    from possim.protocol.mqtt import BrokerAddress, MqttEndpoint, responses_topic
    from possim.protocol.transports import TransportError

    address = BrokerAddress.parse(plan.broker_url or "mqtt://127.0.0.1:1883")
    endpoints: list[MqttEndpoint] = []
    await end_sessions(address, client_ids(plan, fleet))  # a killed earlier run's, which would resume

    async def start(ep: MqttEndpoint) -> None:
        try:
            await ep.start()
        except TransportError as exc:
            raise LoadError(str(exc)) from None
        closers.append(ep.stop)
        endpoints.append(ep)

    for k, guard in enumerate(guards):
        ep = MqttEndpoint(address, _host_id(k, 0), [request_filter(k, plan.hosts)], _to_guard(guard), plan.qos)
        await start(ep)
        publishers = [ep]
        for i in range(1, CONNECTIONS):  # QoS 1 publishes wait for their PUBACK one by one: spread them
            extra = MqttEndpoint(address, _host_id(k, i), [], _ignore, plan.qos)
            await start(extra)
            publishers.append(extra)
        guard.driver = fleet.attach(k, _MqttReplies(publishers, responses_topic))
    for k in range(plan.hosts):
        for members in _groups(fleet, k, CONNECTIONS):
            routes = {m.tid: m.to_terminal for m in members}
            ep = MqttEndpoint(address, _terminal_id(members), [responses_topic(m.tid) for m in members],
                              _topic_route(routes), plan.qos)
            await start(ep)
            for m in members:
                m.outbound.target = _MqttRequests(ep, request_topic(m.tid, plan.hosts))
    ids = [ep.identifier for ep in endpoints]
    broker = _Peer(BROKER_GONE, f"mqtt://{address.host}:{address.port}", _all_connected(endpoints))
    return _Wiring(lambda: all(ep.idle and ep.connected.is_set() for ep in endpoints), [broker],
                   after=[lambda: end_sessions(address, ids)])


def _host_id(shard: int, i: int) -> str:
    return f"possim-load-host-{shard}-{i}"


def _terminal_id(members: list[Member]) -> str:
    """A shared terminal client is named after the first terminal it serves: the same every run."""
    return f"possim-load-term-{members[0].tid}"


def client_ids(plan: LoadPlan, fleet: Fleet) -> list[str]:
    """The MQTT client ids a run of ``plan`` uses: fixed by the plan, so runs reuse them."""
    hosts = [_host_id(k, i) for k in range(plan.hosts) for i in range(CONNECTIONS)]
    return hosts + [_terminal_id(g) for k in range(plan.hosts) for g in _groups(fleet, k, CONNECTIONS)]


async def end_sessions(address: Any, ids: list[str], connect_within: float = 5.0) -> None:
    """End the broker's sessions of ``ids``, with their queued messages: each id connects with
    Clean Start and a session expiry of 0, then disconnects. A broker that cannot be reached
    keeps them until the next run with these ids clears them."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    async def end(ident: str) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho has no annotations
        props.SessionExpiryInterval = 0
        client = aiomqtt.Client(address.host, address.port, identifier=ident, protocol=aiomqtt.ProtocolVersion.V5,
                                clean_start=True, properties=props, timeout=connect_within)
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            async with client:
                pass

    await asyncio.gather(*(end(ident) for ident in ids))


def _to_guard(guard: _Guard) -> Callable[[str, bytes], None]:
    """Requests of a shard's topic filter, with the terminal id their topic vouches for."""
    from possim.protocol.mqtt import topic_tid

    def deliver(topic: str, data: bytes) -> None:
        guard(data, Origin(topic_tid(topic)))
    return deliver


def _topic_route(routes: Mapping[str, Any]) -> Callable[[str, bytes], None]:
    """One client, many terminals: each answer goes to the terminal named in its topic."""
    def deliver(topic: str, data: bytes) -> None:
        target = routes.get(topic.split("/")[3])
        if target is not None:
            target.send(data)
    return deliver


def _ignore(_topic: str, _data: bytes) -> None:
    """A publish-only client subscribes to nothing."""


class _MqttReplies:
    """A host shard's replies, published to the terminal's response topic through one of several clients.

    A terminal's replies always take the same client (chosen by its id), so they keep their order.
    """

    def __init__(self, eps: list[Any], topic: Callable[[str], str]) -> None:
        self.eps, self.topic = eps, topic

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        tid = str((meta or {})["tid"])
        self.eps[zlib.crc32(tid.encode()) % len(self.eps)].publish(self.topic(tid), data)


class _MqttRequests:
    """One terminal's requests through a shared client, to its shard's request topic."""

    __slots__ = ("ep", "topic")

    def __init__(self, ep: Any, topic: str) -> None:
        self.ep, self.topic = ep, topic

    def send(self, data: bytes) -> None:
        self.ep.publish(self.topic, data)

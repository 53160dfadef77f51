"""Fleets: many terminals and one or K host shards, composed like the one-terminal rig.

A scenario with ``[[terminals]]`` groups becomes a :class:`Fleet`: every terminal has its
own state machine, driver, STAN, journal, schedule and fault layer (its own nth-message
counts, the run's one RNG), and every host shard its own ledger. The same composition runs
on the virtual clock (:func:`simulate_fleet`) and on the asyncio loop over any transport
(``possim load``, :mod:`possim.fleets.load`), because only the scheduler and the two transports
under the fault layers differ.

Scale is the point, so a fleet keeps what a run needs and nothing per event: the journals of
all terminals live in one in-memory database (:func:`pos_sim.journal.fleet_database`),
payments are scheduled one at a time per terminal, and trace events are discarded unless
a trace is asked for (then it is complete, as for one terminal).
"""

from __future__ import annotations

import gc
import math
import random
import sqlite3
from array import array
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from possim.acquirer_sim.driver import HostDriver
from possim.acquirer_sim.host import AcquirerHost
from possim.acquirer_sim.ledger import Ledger
from possim.fleets.alerts import Alert, Thresholds, TimeoutTally, alerts
from possim.judging.checker import MEASURES, Verdict, check
from possim.money.money import format_amount, parse_amount
from possim.pos_sim.actions import Outcome
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.journal import Journal, Row, fleet_database, write_rows
from possim.pos_sim.terminal import PaymentRequest
from possim.protocol.events import Event, HostCrashed, PaymentRequested, ResponseTimeout, Stamped
from possim.protocol.faults import FaultPlan
from possim.protocol.memory import NAME as MEMORY
from possim.protocol.memory import MemoryTransport
from possim.protocol.ports import Link, Scheduler
from possim.protocol.shards import shard_of
from possim.running.compose import FaultLayer, build_host, build_terminal
from possim.running.trace import Trace
from possim.running.virtual_clock import VirtualClock, run_uncollected
from possim.scenario import Scenario, TransactionModel

#: How long after its last scheduled event a fleet run that has not gone quiet is cut off.
HORIZON = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Seat:
    """One terminal of the fleet as the scenario describes it, before anything runs."""

    tid: str
    group: int
    config: TerminalConfig
    plan: FaultPlan
    schedule: tuple[TransactionModel, ...]
    offset: float


def seats(scenario: Scenario, policy: str | None = None) -> list[Seat]:
    """Every terminal of the scenario's groups; ``policy`` (when given) replaces every group's policy."""
    m = scenario.model
    base = scenario.terminal_config(m.policy)
    out: list[Seat] = []
    for index, group in enumerate(m.terminals):
        plan = scenario.fault_plan(group.network)
        schedule = group.transactions or m.transactions
        config = replace(base, policy=policy or group.policy or m.policy, mid=group.mid or base.mid)
        out.extend(Seat(tid, index, replace(config, tid=tid), plan, schedule, i * group.spread / group.count)
                   for i, tid in enumerate(group.tids()))
    return out


def group_name(scenario: Scenario, index: int) -> str:
    group = scenario.model.terminals[index]
    return group.name or f"group {index + 1} ({group.tid})"


def fleet_horizon(scenario: Scenario) -> float:
    """The last scheduled event of any terminal plus ``HORIZON``: a long schedule is never cut off."""
    m = scenario.model
    ends = [p.end for p in m.partitions] + [w.end for w in m.host.issuer_unavailable]
    for group in m.terminals:
        schedule = group.transactions or m.transactions
        ends += [group.spread + t.at + (t.count - 1) * t.every for t in schedule]
    return max(ends, default=0.0) + HORIZON


def _discard(_event: Event) -> None:
    """The emit of a fleet run without a trace: events are not kept."""


def _recorder(trace: Trace | None, emit: Callable[[Event], None] | None) -> Callable[[Event], None]:
    """The fleet's one emit: a kept trace; a streamed trace and ``emit`` both (the trace file keeps
    nothing to read back); ``emit`` alone; or nowhere."""
    if trace is None:
        return emit or _discard
    if not trace.streamed or emit is None:
        return trace.emit
    stream = trace.emit

    def both(event: Event) -> None:
        stream(event)
        emit(event)

    return both


class Member:
    """One terminal of a running fleet: state machine, driver, journal, fault layer, schedule."""

    __slots__ = ("busy_since", "decider", "driver", "fleet", "journal", "outbound", "pending",
                 "requests", "retries", "seat", "shard", "to_host", "to_terminal")

    def __init__(self, fleet: Fleet, seat: Seat) -> None:
        self.fleet, self.seat = fleet, seat
        self.shard = shard_of(seat.tid, fleet.shards)
        faults = FaultLayer(seat.plan, fleet.rng, fleet.scheduler, fleet.emit)
        self.decider, self.outbound, self.to_host = faults.decider, faults.outbound, faults.to_host
        self.journal = Journal.shared(fleet.journal_db, seat.tid, fleet.unwritten)
        self.driver = build_terminal(seat.config, None, self.to_host, fleet.scheduler, self.journal,
                                     fleet.driver_emit, self._outcome)
        self.driver.emit = fleet.tally  # its timeouts are counted, traced or not (then it describes nothing)
        self.to_terminal = faults.deliver_to(self.driver.receive)
        self.pending: Iterator[tuple[float, PaymentRequest, TransactionModel]] = iter(())
        self.retries: dict[int, float] = {}
        self.requests: dict[int, PaymentRequest] = {}
        #: txn id -> when the customer asked to pay (for latency), only while in flight
        self.busy_since: dict[int, float] = {}

    @property
    def tid(self) -> str:
        return self.seat.tid

    def quiet(self) -> bool:
        return (self.driver.terminal.idle and self.to_host.in_flight == 0 and self.to_terminal.in_flight == 0
                and self.driver.timers_armed == 0)

    def pay(self, request: PaymentRequest, retries: bool, retry_after: float) -> None:
        if retries:
            self.retries[request.txn_id] = retry_after
            self.requests[request.txn_id] = request
        now = self.busy_since[request.txn_id] = self.fleet.scheduler.now()
        marks = self.fleet.marks
        if marks is not None and self.driver.failure is None:  # when the driver would emit PaymentRequested
            marks.started[request.txn_id] = now
        self.driver.request_payment(request)

    def _outcome(self, outcome: Outcome) -> None:
        started = self.busy_since.pop(outcome.txn_id, None)
        self.fleet.outcome(self, outcome, started)
        if outcome.txn_id in self.retries and outcome.status in ("unknown", "failed"):
            original = self.requests.pop(outcome.txn_id)
            retry = replace(original, txn_id=self.fleet.next_txn())
            self.fleet.later(self.retries.pop(outcome.txn_id), lambda: self.pay(retry, False, 0.0))
        else:
            self.retries.pop(outcome.txn_id, None)
            self.requests.pop(outcome.txn_id, None)


class _Router:
    """The hosts' outbound link in one process: a reply goes to its terminal's fault layer by terminal id."""

    __slots__ = ("members",)

    def __init__(self, members: Mapping[str, Member]) -> None:
        self.members = members

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        member = self.members.get(str((meta or {}).get("tid")))
        if member is not None:
            member.to_terminal.send(data, meta)


@dataclass
class Shard:
    """One host of the fleet with its own ledger."""

    ledger: Ledger
    host: AcquirerHost
    driver: HostDriver | None = None


OutcomeHook = Callable[[Member, Outcome, float | None], None]


class Fleet:
    """A fleet's terminals, host shards, fault layers, journals and optional trace, built through ``compose``."""

    def __init__(self, scenario: Scenario, policy: str | None, seed: int, scheduler: Scheduler,
                 trace: bool = False, on_outcome: OutcomeHook | None = None,
                 emit: Callable[[Event], None] | None = None, trace_to: str | Path | None = None,
                 marks: Marks | None = None) -> None:
        """``trace``: keep every event; ``trace_to``: stream every event to this file instead (kept
        nowhere, and ``emit`` still hears them); ``emit``: where events go when no trace is kept.

        ``marks``: when nothing else records, the charts' few facts are picked without any driver
        describing its messages (most of a purchase's events): sale starts from :meth:`Member.pay`,
        timeouts and crashes from the events the drivers and hosts emit anyway."""
        self.scenario, self.policy, self.seed, self.scheduler = scenario, policy, seed, scheduler
        self.rng = random.Random(seed)
        self.trace = Trace(scheduler.now, trace_to) if trace or trace_to is not None else None
        #: Where events go: the trace when kept, else ``emit`` (a counter of a load run), else nowhere.
        recorded: Callable[[Event], None] = _recorder(self.trace, emit)
        #: The drivers' emit: None when nothing is recorded, so they do not describe every message.
        self.driver_emit = None if recorded is _discard else recorded
        #: Marks picked beside drivers that describe nothing (None when every event is recorded anyway).
        self.marks = marks if recorded is _discard else None
        #: What hears the events emitted even when nothing is described: the marks, or nobody.
        self.sparse = self.marks.record if self.marks is not None else None
        #: Every event passes the monitoring's tally of response timeouts per terminal first.
        self.tally = TimeoutTally(self.sparse if recorded is _discard else recorded)
        self.emit: Callable[[Event], None] = self.tally
        self.shards = scenario.model.hosts
        #: The terminals' journals (rows held back in ``unwritten`` until read: ``journals``).
        self.journal_db = fleet_database()
        self.unwritten: dict[int, Row] = {}
        config = scenario.host_config()
        self.hosts = [Shard(*build_host(config, self.rng)) for _ in range(self.shards)]
        self.ledger_before = self.hosts[0].ledger.balances()
        self.members: dict[str, Member] = {}
        for seat in seats(scenario, policy):
            self.members[seat.tid] = Member(self, seat)
        self.on_outcome = on_outcome
        self.scheduled = 0  # payments due (and customer retries) that have not started yet
        self._txn = 0

    @property
    def journals(self) -> sqlite3.Connection:
        """The database of every terminal's journal, each record written so far in it."""
        write_rows(self.journal_db, self.unwritten)
        return self.journal_db

    def memory(self) -> None:
        """Hosts and terminals in this process, joined by the in-memory transport."""
        router = _Router(self.members)
        for shard in self.hosts:
            shard.driver = self._host_driver(shard.host, router)
        for member in self.members.values():
            member.outbound.target = MemoryTransport(self.hosts[member.shard].driver.receive)  # type: ignore[union-attr]

    def attach(self, shard: int, host_out: Link) -> HostDriver:
        """A host shard whose replies leave through ``host_out`` (a real transport's host end)."""
        driver = self._host_driver(self.hosts[shard].host, host_out)
        self.hosts[shard].driver = driver
        return driver

    def _host_driver(self, host: AcquirerHost, link: Link) -> HostDriver:
        """A host's driver: it describes its messages only when every event is recorded; the
        events its host emits anyway (a crash) still reach the marks."""
        driver = HostDriver(host, link, self.scheduler, self.driver_emit)
        if self.driver_emit is None and self.sparse is not None:
            driver.emit = self.sparse
        return driver

    def next_txn(self) -> int:
        """Transaction ids are unique across the fleet: they key the shared journal."""
        self._txn += 1
        return self._txn

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self.scheduled += 1

        def run() -> None:
            self.scheduled -= 1
            callback()

        self.scheduler.call_later(delay, run)

    def schedule_payments(self) -> None:
        """Each terminal's schedule, one payment at a time (the next is scheduled when one starts)."""
        for member in self.members.values():
            member.pending = self._plan(member)
            self._next(member)

    def _plan(self, member: Member) -> Iterator[tuple[float, PaymentRequest, TransactionModel]]:
        basket = 0
        for spec in member.seat.schedule:
            amount = parse_amount(spec.amount)
            completion = parse_amount(spec.completion_amount) if spec.completion_amount else None
            for i in range(spec.count):
                basket += 1
                request = PaymentRequest(self.next_txn(), f"basket-{basket}", spec.kind, amount, spec.pan,
                                         completion, spec.card_type)
                yield member.seat.offset + spec.at + i * spec.every, request, spec

    def _next(self, member: Member) -> None:
        entry = next(member.pending, None)
        if entry is None:
            return
        at, request, spec = entry

        def due() -> None:
            member.pay(request, spec.customer_retries, spec.retry_after)
            self._next(member)

        self.later(at - self.scheduler.now(), due)

    def outcome(self, member: Member, outcome: Outcome, started: float | None) -> None:
        if self.on_outcome is not None:
            self.on_outcome(member, outcome, started)

    def quiet(self) -> bool:
        """Nothing due, every terminal idle with nothing in its fault layer, every host done."""
        return (self.scheduled == 0 and all(s.driver is None or s.driver.pending == 0 for s in self.hosts)
                and all(m.quiet() for m in self.members.values()))

    def judge(self) -> Verdict:
        self.journals.commit()
        return check(self.journals, [s.ledger.conn for s in self.hosts])

    def finish(self, quiescent: bool, transport: str) -> FleetResult:
        """Judge the run and close its databases; the terminals are let go first (see :meth:`_let_go`)."""
        if self.trace is not None:
            self.trace.close()
        seated = self._let_go()
        verdict = self.judge()
        result = FleetResult(self.scenario, self.policy, self.seed, verdict, quiescent, self.scheduler.now(),
                             transport, self.trace, _lines(seated, verdict), self.shards,
                             {s.tid: shard_of(s.tid, self.shards) for s in seated},
                             timeouts=dict(self.tally.counts))
        self.close()
        return result

    def _let_go(self) -> list[Seat]:
        """The seats of the terminals, whose state machines, drivers and fault layers are freed now.

        A terminal keeps every record it made until it is gone, and a long fleet run holds more in
        them than in anything else; the checker's reading of the journals and ledgers is the run's
        peak, so it reuses that memory rather than adding to it. Members, drivers and the hosts'
        router refer to each other, hence the one collection (the run paused the collector).
        """
        seated = [m.seat for m in self.members.values()]
        self.members.clear()  # the hosts' router reads this same dict
        gc.collect()
        return seated

    def close(self) -> None:
        self.journals.close()
        for shard in self.hosts:
            shard.ledger.close()


def _lines(seated: list[Seat], verdict: Verdict) -> list[TerminalLine]:
    return [TerminalLine(s.tid, s.group, s.config.policy, verdict.per_terminal.get(s.tid, {}),
                         verdict.at_risk.get(s.tid, 0)) for s in seated]


#: One NaN as the bytes of an ``array("d")`` item.
_NAN = array("d", [math.nan]).tobytes()


class Starts(MutableMapping[int, float]):
    """When each sale started, by transaction id, in 8 bytes a sale.

    A fleet's ids count up from 1 across its terminals (:meth:`Fleet.next_txn`), so an array
    indexed by id holds them; a dict would spend about a hundred bytes a sale, a hundred
    megabytes over a million. An id never started holds NaN (no run time is NaN).
    """

    __slots__ = ("_at", "_count")

    def __init__(self) -> None:
        self._at = array("d")
        self._count = 0

    def __setitem__(self, txn: int, t: float) -> None:
        if txn < 0:
            raise KeyError(txn)
        at = self._at
        if txn >= len(at):  # grow by doubling (with NaN: not started), so a run's appends stay cheap
            at.frombytes(_NAN * max(txn + 1 - len(at), len(at), 64))
        if math.isnan(at[txn]):
            self._count += 1
        at[txn] = t

    def __getitem__(self, txn: int) -> float:
        at = self._at
        if type(txn) is int and 0 <= txn < len(at):
            t = at[txn]
            if not math.isnan(t):
                return t
        raise KeyError(txn)

    def __delitem__(self, txn: int) -> None:
        self[txn]  # a KeyError for an id never started
        self._at[txn] = math.nan
        self._count -= 1

    def __iter__(self) -> Iterator[int]:
        return (txn for txn, t in enumerate(self._at) if not math.isnan(t))

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"Starts({dict(self.items())!r})"


@dataclass
class Marks:
    """When things happened in a fleet run, for its charts: each sale's start, each response
    timeout, each host crash (from, until) and the scenario's partitions.

    A fleet keeps no per-event trace unless asked (scale), so these few facts are picked from
    the events as they pass; with a trace they are read from it (:meth:`of_trace`).
    """

    now: Callable[[], float] = lambda: 0.0
    started: Starts = field(default_factory=Starts)
    timeouts: list[float] = field(default_factory=list)
    crashes: list[tuple[float, float]] = field(default_factory=list)
    partitions: list[tuple[float, float]] = field(default_factory=list)

    def record(self, event: Event) -> None:
        """The fleet's emit: keep the three kinds of event the charts need, drop the rest."""
        self._take(event, self.now())

    def _take(self, event: Event, t: float) -> None:
        kind = type(event)
        if kind is PaymentRequested:
            self.started[event.txn] = t  # type: ignore[attr-defined]
        elif kind is ResponseTimeout:
            self.timeouts.append(t)
        elif kind is HostCrashed:
            self.crashes.append((t, event.until))  # type: ignore[attr-defined]

    @classmethod
    def of_trace(cls, records: list[Stamped]) -> Marks:
        marks = cls()
        for s in records:
            marks._take(s.event, s.t)
        return marks


@dataclass(frozen=True, slots=True)
class TerminalLine:
    """One terminal's outcome: its counts from the checker and its money at risk (minor units)."""

    tid: str
    group: int
    policy: str
    counts: Mapping[str, int]
    at_risk: int

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "policy": self.policy, **{k: self.counts.get(k, 0) for k in COUNTS},
                "money_at_risk": format_amount(self.at_risk)}


#: The per-terminal and per-group counts (the summary's measures without the money totals).
COUNTS = tuple(m for m in MEASURES if not m.endswith("_loss"))


@dataclass
class FleetResult:
    """A fleet run judged: the whole fleet's verdict, one line per terminal, groups and policies."""

    scenario: Scenario
    requested_policy: str | None
    seed: int
    verdict: Verdict
    quiescent: bool
    end_time: float
    transport: str
    trace: Trace | None
    terminals: list[TerminalLine]
    hosts: int
    shard_of: dict[str, int] = field(default_factory=dict)
    #: Sale starts, timeouts, crashes and partitions over run time (:func:`simulate_fleet` fills it).
    marks: Marks = field(default_factory=Marks)

    #: Response timeouts per terminal, counted from the recorded events (``possim.fleets.alerts``).
    timeouts: dict[str, int] = field(default_factory=dict)

    def alerts(self, thresholds: Thresholds | None = None) -> list[Alert]:
        """The terminals over the monitoring thresholds (the scenario's ``[monitoring]`` by default)."""
        return alerts(self.timeouts, self.verdict.per_terminal, thresholds or self.scenario.thresholds())

    @property
    def policy(self) -> str:
        """The policy every terminal ran, or ``mixed`` when groups differ."""
        policies = {line.policy for line in self.terminals}
        return policies.pop() if len(policies) == 1 else "mixed"

    @property
    def money_at_risk(self) -> int:
        return sum(line.at_risk for line in self.terminals)

    def summary(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, "policy": self.policy, "seed": self.seed,
                "transport": self.transport, **self.verdict.summary(), "quiescent": self.quiescent,
                "virtual_seconds": round(self.end_time, 3), "terminals": len(self.terminals),
                "hosts": self.hosts, "money_at_risk": format_amount(self.money_at_risk)}

    def worst(self, n: int = 10) -> list[TerminalLine]:
        """The ``n`` terminals with the most money at risk (then the most damage), worst first."""
        def damage(line: TerminalLine) -> int:
            return sum(line.counts.get(k, 0) for k in ("orphaned_debits", "double_debits", "phantom_approvals",
                                                        "pending_reversals", "open_holds"))

        ranked = sorted(self.terminals, key=lambda line: (-line.at_risk, -damage(line), line.tid))
        return [line for line in ranked[:n] if line.at_risk or damage(line)]

    def groups(self) -> list[dict[str, Any]]:
        """Per group: its name, policy, terminals, summed counts and money at risk."""
        out: list[dict[str, Any]] = []
        for index in range(len(self.scenario.model.terminals)):
            lines = [line for line in self.terminals if line.group == index]
            policies = sorted({line.policy for line in lines})
            out.append({"group": group_name(self.scenario, index), "policy": ",".join(policies),
                        "terminals": len(lines), **_sum(lines)})
        return out

    def by_policy(self) -> dict[str, dict[str, Any]]:
        """Per policy (when groups differ): terminals, summed counts, money at risk."""
        out: dict[str, dict[str, Any]] = {}
        for policy in sorted({line.policy for line in self.terminals}):
            lines = [line for line in self.terminals if line.policy == policy]
            out[policy] = {"terminals": len(lines), **_sum(lines)}
        return out

    def fleet_json(self) -> dict[str, Any]:
        """What ``--json`` adds under ``fleet``: groups, policies and every terminal's counts."""
        return {"groups": self.groups(), "policies": self.by_policy(),
                "alerts": [a.as_dict() for a in self.alerts()],
                "worst": [line.tid for line in self.worst()],
                "terminals": {line.tid: {**line.as_dict(), "host": self.shard_of.get(line.tid, 0)}
                              for line in self.terminals}}


def _sum(lines: list[TerminalLine]) -> dict[str, Any]:
    totals = dict.fromkeys(COUNTS, 0)
    for line in lines:
        for key in COUNTS:
            totals[key] += line.counts.get(key, 0)
    return {**totals, "money_at_risk": format_amount(sum(line.at_risk for line in lines))}


def _counting(progress: Callable[[int], None]) -> OutcomeHook:
    """An outcome hook that tells ``progress`` every 50th outcome (a bar needs no more)."""
    done = [0]

    def hook(_member: Member, _outcome: Outcome, started: float | None) -> None:
        if started is not None:
            done[0] += 1
            if done[0] % 50 == 0:
                progress(done[0])

    return hook


def sales_of(scenario: Scenario) -> int:
    """How many sales the fleet's schedules start (customer retries not counted): a progress bar's total."""
    return sum(group.count * sum(t.count for t in (group.transactions or scenario.model.transactions))
               for group in scenario.model.terminals)


def simulate_fleet(scenario: Scenario, policy: str | None = None, seed: int | None = None,
                   trace: bool = False, before_close: Callable[[Fleet], None] | None = None,
                   progress: Callable[[int], None] | None = None, trace_to: str | Path | None = None) -> FleetResult:
    """Run a fleet scenario to quiescence in virtual time and judge every terminal and the whole.

    ``policy`` replaces every group's policy (``possim compare`` and ``run --policy``);
    ``None`` keeps each group's own. ``trace`` keeps every event (for a timeline or report).
    ``before_close`` reads the journals and ledgers once the run is over (a reconciliation).
    ``progress(done)`` hears how many sales have an outcome, every 50 and at the end.
    ``trace_to``: stream every event to this file as the run goes (the result keeps none of them).
    """
    seed = scenario.model.seed if seed is None else seed
    clock = VirtualClock()
    marks = Marks(clock.now, partitions=[(p.start, p.end) for p in scenario.model.partitions])
    traced = trace or trace_to is not None
    with run_uncollected():
        fleet = Fleet(scenario, policy, seed, clock, trace, emit=marks.record if traced else None,
                      on_outcome=_counting(progress) if progress else None, trace_to=trace_to,
                      marks=None if traced else marks)
        try:
            fleet.memory()
            fleet.schedule_payments()
            steps = 1_000_000 + 1_000 * sum(t.count for m in fleet.members.values() for t in m.seat.schedule)
            quiescent = clock.run(horizon=fleet_horizon(scenario), max_steps=steps)
            if before_close is not None:
                before_close(fleet)
            result = fleet.finish(quiescent, MEMORY)
        finally:
            if fleet.trace is not None:
                fleet.trace.close()
    if progress is not None:
        progress(result.verdict.counts["transactions"])
    if result.trace is not None and not result.trace.streamed:
        marks = replace(Marks.of_trace(result.trace.records), partitions=marks.partitions)
    result.marks = marks
    return result

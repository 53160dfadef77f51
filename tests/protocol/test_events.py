"""Trace events are a typed contract: one registry, stable records, old traces still read."""

from __future__ import annotations

import ast
import asyncio
import json
import random
from pathlib import Path

import pytest

from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.driver import TerminalDriver
from possim.pos_sim.journal import Journal
from possim.pos_sim.terminal import PaymentRequest, Terminal
from possim.protocol import events as ev
from possim.protocol.faults import FaultDecider, FaultPlan, FaultyLink
from possim.protocol.memory import MemoryTransport
from possim.running.realtime import run_tcp
from possim.running.replay import Rerun, load_trace, replay
from possim.running.trace import Trace
from possim.running.virtual_clock import VirtualClock
from possim.scenario import load
from possim.simulation import simulate
from possim.views.timeline import rows
from tests.conftest import ROOT, SCENARIOS


def test_every_event_class_is_registered_under_a_unique_name() -> None:
    classes = {c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.Event) and c.NAME}
    assert classes == set(ev.EVENT_TYPES)
    assert len(ev.REGISTRY) == len(ev.EVENT_TYPES)
    assert all(ev.REGISTRY.get(c.NAME) is c for c in classes)


def test_events_module_is_pure() -> None:
    tree = ast.parse((ROOT / "protocol" / "events.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"asyncio", "socket", "time", "structlog", "aiomqtt", "random"}


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.toml") if not load(p).is_fleet))
@pytest.mark.parametrize("policy", ["none", "reversal", "query-then-reversal"])
def test_every_record_reads_back_to_the_same_event(name: str, policy: str) -> None:
    result = simulate(load(SCENARIOS / f"{name}.toml"), policy)
    for stamped, line in zip(result.trace.records, result.trace.lines(), strict=True):
        record = json.loads(line)
        assert record == ev.to_record(stamped)
        assert ev.from_record(record) == stamped


def test_records_keep_the_names_and_keys_traces_always_had() -> None:
    old = [  # lines of a TCP trace written before the events were typed
        '{"at": 1.502916, "event": "timer_started", "t": 0.003566, "tid": "POS00001", "timer": "response"}',
        '{"event": "timer_fired", "t": 3.254933, "tid": "POS00001", "timer": "retry"}',
        '{"dir": "to_terminal", "event": "net_dropped", "mti": "0210", "nth": 1, "reason": "rule_drop", '
        '"rrn": "329100000001", "stan": "000001", "t": 0.019, "tid": "POS00001"}',
        '{"event": "ledger_reversal_before_original", "mti": "0400", "orig_stan": "000001", "rrn": null, '
        '"side": "host", "stan": "000002", "t": 2.0, "tid": "POS00001"}',
        '{"amount": 8000, "card": "4000000000000002", "completion_amount": null, "event": "payment_requested", '
        '"instrument": "credit", "intent": "basket-1", "kind": "purchase", "pan": "400000******0002", '
        '"t": 0.0, "tid": "POS00001", "txn": 1}',
    ]
    events = [ev.from_record(json.loads(line)).event for line in old]
    assert isinstance(events[0], ev.TimerStarted) and events[0].at == 1.502916
    assert events[1] == ev.RetryTimerFired("POS00001", "retry")  # a wake-up, not a timeout
    assert isinstance(events[2], ev.NetDropped) and events[2].rrn == "329100000001"
    assert isinstance(events[3], ev.LedgerReversalBeforeOriginal) and events[3].rrn is None
    assert isinstance(events[4], ev.PaymentRequested) and events[4].card == "4000000000000002"
    record = ev.to_record(ev.Stamped(0.019, events[2]))
    assert record == {**json.loads(old[2]), "t": 0.019}


def test_contract_breaches_fail_loudly() -> None:
    with pytest.raises(ev.EventError, match="unknown trace event"):
        ev.from_fields("no_such_event", {})
    with pytest.raises(ev.EventError, match="no_such_field"):
        ev.from_fields("txn_outcome", {"tid": "T", "txn": 1, "status": "approved", "display": "OK",
                                       "no_such_field": 1})
    with pytest.raises(ev.EventError, match="belongs to the host"):
        ev.from_fields("ledger_debit", {"side": "terminal"})


class _Scripted(Terminal):
    """A terminal that answers a payment with one fixed event."""

    def __init__(self, notice: ev.Event) -> None:
        super().__init__(TerminalConfig())
        self.notice = notice

    def request_payment(self, now: float, request: PaymentRequest) -> list:  # type: ignore[type-arg]
        return [self.notice]


def _driver(terminal: Terminal) -> tuple[TerminalDriver, Trace]:
    clock = VirtualClock()
    trace = Trace(clock.now)
    link = FaultyLink("to_host", MemoryTransport(lambda _d: None), FaultDecider(FaultPlan(), random.Random(0)),
                      clock, trace.emit)
    return TerminalDriver(terminal, link, clock, Journal(tid="POS00001"), trace.emit), trace


def test_the_terminals_events_are_recorded_as_they_are() -> None:
    request = PaymentRequest(1, "b1", "purchase", 100, "4000000000000002")
    driver, trace = _driver(_Scripted(ev.ReversalParked(txn=1, attempts=6)))
    driver.request_payment(request)
    assert trace.records[-1].event == ev.ReversalParked(txn=1, attempts=6)
    assert ev.to_record(trace.records[-1])["side"] == "terminal"


def test_an_unknown_event_name_fails_loudly() -> None:
    with pytest.raises(ev.EventError):
        ev.from_fields("reversal_mislaid", {"txn": 1})


def test_a_retry_wake_up_is_not_shown_as_a_timeout() -> None:
    trace = Trace(lambda: 3.25)
    trace.emit(ev.RetryTimerFired("POS00001"))
    trace.emit(ev.TimerFired("POS00001"))
    assert [r[1] for r in rows(trace.records)] == ["TIMEOUT: no answer in time"]


def _timeouts(records: list[ev.Stamped]) -> int:
    return sum(term.startswith("TIMEOUT:") for _, term, _, _ in rows(records))


@pytest.fixture(scope="module")
def tcp_reversal_lost(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = asyncio.run(run_tcp(load(SCENARIOS / "reversal-lost.toml"), "reversal", 1, 0.05))
    assert result.quiescent
    path = tmp_path_factory.mktemp("tcp") / "reversal-lost.jsonl"
    result.trace.write(path)
    return path


def test_tcp_timeline_shows_the_same_timeouts_as_in_memory(tcp_reversal_lost: Path) -> None:
    """reversal-lost: the 0210 and two reversals go unanswered, so three timeouts on any transport."""
    records = load_trace(tcp_reversal_lost)
    memory = simulate(load(SCENARIOS / "reversal-lost.toml"), "reversal")
    assert _timeouts(records) == _timeouts(memory.trace.records) == 3
    assert any(isinstance(s.event, ev.RetryTimerFired) for s in records)


def test_replay_drives_the_real_drivers_to_the_recorded_sends(tcp_reversal_lost: Path) -> None:
    records = load_trace(tcp_reversal_lost)
    started = next(s.event for s in records if isinstance(s.event, ev.RunStarted))
    header = next(s.event for s in records if isinstance(s.event, ev.LiveRun))
    scenario = load(SCENARIOS / "reversal-lost.toml").scaled(header.time_scale)
    rerun = Rerun(Terminal(scenario.terminal_config(started.policy)), scenario.host_config())
    rerun.feed(records)

    def terminal_sends(trace: list[ev.Stamped]) -> list[tuple[str, str]]:
        return [(e.mti, e.stan) for e in (s.event for s in trace) if isinstance(e, ev.MsgSent) and e.side == "terminal"]

    def host_events(trace: list[ev.Stamped]) -> list[ev.Event]:
        return [s.event for s in trace if isinstance(s.event, ev.HostEvent)]

    assert terminal_sends(rerun.trace.records) == terminal_sends(records) != []
    assert host_events(rerun.trace.records) == host_events(records) != []
    verdict, recorded = replay(tcp_reversal_lost)
    assert recorded is not None and verdict.summary()["reversed"] == recorded["reversed"] == 1


def test_replayed_drivers_never_fire_their_own_timers() -> None:
    """Fed only a payment request, the terminal sends once and waits: nothing recorded, nothing fires."""
    scenario = load(SCENARIOS / "response-lost.toml")
    rerun = Rerun(Terminal(scenario.terminal_config("reversal")), scenario.host_config())
    request = ev.PaymentRequested("POS00001", 1, "b1", "purchase", 2500, "400000******0002", "4000000000000002")
    rerun.feed([ev.Stamped(0.0, request)])
    kinds = [type(s.event) for s in rerun.trace.records]
    assert kinds == [ev.PaymentRequested, ev.MsgSent, ev.TimerStarted]

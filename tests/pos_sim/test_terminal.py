"""The sans-IO terminal: events in, actions out, no clock, no network."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from possim.pos_sim.actions import Action, CancelTimer, Outcome, Send, StartTimer, WriteJournal
from possim.pos_sim.exchanges import REVERSAL_ANSWERS
from possim.pos_sim.terminal import Terminal
from possim.protocol import codec
from possim.protocol import events as ev
from tests.helpers import new_host, new_terminal, purchase, replies, sends

ROOT = Path(__file__).resolve().parent.parent.parent


def test_reversal_record_is_journaled_before_the_original_leaves() -> None:
    actions = new_terminal("reversal").request_payment(0.0, purchase())
    kinds = [type(a) for a in actions]
    assert kinds[:3] == [WriteJournal, Send, StartTimer]
    assert actions[0].record.reversal == "armed"  # type: ignore[union-attr]
    assert actions[2].at == 30.0  # type: ignore[union-attr]


def test_timeout_under_none_is_unknown_not_failed() -> None:
    term = new_terminal("none")
    term.request_payment(0.0, purchase())
    actions = term.timer_fired(30.0, "response")
    outcome = next(a for a in actions if isinstance(a, Outcome))
    assert outcome.status == "unknown"
    assert "FAILED" in outcome.display
    assert not sends(actions)


def test_timeout_under_reversal_sends_0400_then_0401_with_backoff() -> None:
    term = new_terminal("reversal", backoff_initial=5.0)
    term.request_payment(0.0, purchase())
    first = sends(term.timer_fired(30.0, "response"))
    assert [s.mti for s in first] == ["0400"]
    reversal = codec.decode(first[0].data)
    assert reversal.original is not None and reversal.original.stan == "000001"
    retry = term.timer_fired(60.0, "response")
    assert any(isinstance(a, StartTimer) and a.name == "retry" and a.at == 65.0 for a in retry)
    again = sends(term.timer_fired(65.0, "retry"))
    assert [s.mti for s in again] == ["0401"]
    assert codec.decode(again[0].data).stan == reversal.stan  # a repeat keeps its STAN


def test_late_response_is_logged_and_never_applied() -> None:
    term, host = new_terminal("reversal"), new_host()
    original = sends(term.request_payment(0.0, purchase()))[0]
    response = replies(host.receive(0.1, original.data))[0]
    term.timer_fired(30.0, "response")
    actions = term.receive(45.0, response.data)
    assert [a.event for a in actions if isinstance(a, ev.Event)] == ["late_response"]
    assert not any(isinstance(a, Outcome) for a in actions)
    assert term.records[1].status == "unknown" and term.records[1].late_responses == 1


def test_query_finds_the_approval_and_finishes_the_sale() -> None:
    term, host = new_terminal("query"), new_host()
    original = sends(term.request_payment(0.0, purchase()))[0]
    host.receive(0.1, original.data)  # approved and debited; the answer is lost
    query = sends(term.timer_fired(30.0, "response"))[0]
    assert query.mti == "0600"
    answer = replies(host.receive(30.1, query.data))[0]
    assert codec.decode(answer.data).status == "APPROVED"
    actions = term.receive(30.2, answer.data)
    outcome = next(a for a in actions if isinstance(a, Outcome))
    assert outcome.status == "approved" and "status check" in outcome.display
    assert any(isinstance(a, CancelTimer) for a in actions)


def test_pending_reversal_goes_out_before_the_next_transaction() -> None:
    term = new_terminal("reversal", reversal_attempts=1)
    term.request_payment(0.0, purchase(1))
    term.timer_fired(30.0, "response")  # reversal sent
    term.timer_fired(60.0, "response")  # reversal timed out: parked
    assert term.records[1].reversal == "pending"
    first = sends(term.request_payment(100.0, purchase(2)))
    assert [s.mti for s in first] == ["0401"]
    second = sends(term.timer_fired(130.0, "response"))
    assert [s.mti for s in second] == ["0200"]


def _run_timers(term: Terminal, actions: list[Action], until: float, timers: dict[str, float]) -> list[Send]:
    """Fire the terminal's timers (``timers``: armed ones, by name) in order, as a driver would, until
    ``until``; every request it sent."""
    sent: list[Send] = []
    while True:
        for a in actions:
            if isinstance(a, StartTimer):
                timers[a.name] = a.at
            elif isinstance(a, CancelTimer):
                timers.pop(a.name, None)
        sent += sends(actions)
        if not timers or min(timers.values()) > until:
            return sent
        name = min(timers, key=timers.__getitem__)
        actions = list(term.timer_fired(timers.pop(name), name))


def test_a_sale_of_unknown_fate_is_settled_before_the_next_customer() -> None:
    """query-then-reversal: while the first sale's status queries are still to run, the next customer
    waits; the queries unanswered, the reversal they fall back to goes out before the next 0200."""
    term, host = new_terminal("query-then-reversal"), new_host()
    original = sends(term.request_payment(0.0, purchase(1)))[0]
    host.receive(0.1, original.data)  # debited; the answer is lost, and so are the queries' answers
    timers: dict[str, float] = {}
    first = _run_timers(term, [StartTimer("response", 30.0)], 35.0, timers)
    assert [s.mti for s in first] == ["0600"]
    later = _run_timers(term, term.request_payment(35.0, purchase(2)), 1000.0, timers)
    mtis = [s.mti for s in later]
    assert "0200" in mtis and "0400" in mtis and mtis.index("0400") < mtis.index("0200"), mtis
    assert set(mtis[:mtis.index("0400")]) == {"0600"}  # only the first sale's queries went before


def test_reversal_acknowledged_clears_pending() -> None:
    term, host = new_terminal("reversal"), new_host()
    original = sends(term.request_payment(0.0, purchase()))[0]
    host.receive(0.1, original.data)
    reversal = sends(term.timer_fired(30.0, "response"))[0]
    ack = replies(host.receive(30.1, reversal.data))[0]
    term.receive(30.2, ack.data)
    assert term.records[1].reversal == "acked" and term.records[1].status == "reversed"
    assert term.idle


def _reversal_answered(code: str) -> tuple[Terminal, list[Action]]:
    """A sale whose answer was lost, reversed, and the reversal answered with ``code``."""
    term = new_terminal("reversal", backoff_initial=5.0)
    term.request_payment(0.0, purchase())
    reversal = sends(term.timer_fired(30.0, "response"))[0]
    answer = codec.decode(reversal.data).response(code)
    return term, term.receive(30.2, codec.encode(answer))


@pytest.mark.parametrize("code", ["05", "30", "12", "51", "94", "91", "96"])
def test_a_refused_reversal_is_retried_never_counted_as_reversed(code: str) -> None:
    """05, 30 and every code not in REVERSAL_ANSWERS as closing: nothing was credited."""
    term, actions = _reversal_answered(code)
    assert term.records[1].reversal == "pending" and term.records[1].status == "unknown"
    retry = [a for a in actions if isinstance(a, ev.ReversalRetryScheduled)]
    assert [r.reason for r in retry] == [f"answered {code}"]
    assert not any(isinstance(a, ev.Event) and a.event == "reversal_acknowledged" for a in actions)
    assert [s.mti for s in sends(term.timer_fired(35.2, "retry"))] == ["0401"]


@pytest.mark.parametrize("code", ["00", "25"])
def test_reversed_or_nothing_to_reverse_closes_the_reversal(code: str) -> None:
    term, actions = _reversal_answered(code)
    assert term.records[1].reversal == "acked" and term.records[1].status == "reversed"
    assert [a.event for a in actions if isinstance(a, ev.Event)] == ["reversal_acknowledged"]
    assert term.idle


def test_only_00_and_25_close_a_reversal() -> None:
    assert {code for code, answer in REVERSAL_ANSWERS.items() if answer.closes} == {"00", "25"}
    assert all(answer.reason for answer in REVERSAL_ANSWERS.values())


def test_a_reversal_refused_until_attempts_run_out_stays_pending() -> None:
    term = new_terminal("reversal", reversal_attempts=2, backoff_initial=5.0)
    term.request_payment(0.0, purchase())
    first = codec.decode(sends(term.timer_fired(30.0, "response"))[0].data)
    term.receive(30.2, codec.encode(first.response("05")))
    again = codec.decode(sends(term.timer_fired(35.2, "retry"))[0].data)
    actions = term.receive(35.4, codec.encode(again.response("05")))
    assert [a.event for a in actions if isinstance(a, ev.Event)] == ["reversal_parked"]
    assert term.records[1].reversal == "pending" and term.idle


def test_power_loss_after_sending_reverses_from_the_journal_on_boot() -> None:
    """Only the journal survives: the armed reversal record is enough to reverse after boot."""
    from possim.pos_sim.journal import Journal

    journal = Journal(tid="POS00001")
    term, host = new_terminal("reversal"), new_host()
    for action in term.request_payment(0.0, purchase()):
        if isinstance(action, WriteJournal):
            journal.write(action.record)
        elif isinstance(action, Send):
            host.receive(0.1, action.data)  # debited; the terminal dies before the answer
    booted = new_terminal("reversal")
    actions = booted.restore(20.0, journal.load())
    assert [s.mti for s in sends(actions)] == ["0400"]
    assert booted.records[1].status == "unknown" and booted.records[1].reversal == "pending"
    stans = [int(codec.decode(s.data).stan) for s in sends(actions)]
    assert stans == [2]  # STANs continue after the journal's highest


def test_power_loss_without_recovery_leaves_the_fate_unknown() -> None:
    from possim.pos_sim.journal import Journal

    journal = Journal(tid="POS00001")
    for action in new_terminal("none").request_payment(0.0, purchase()):
        if isinstance(action, WriteJournal):
            journal.write(action.record)
    actions = new_terminal("none").restore(20.0, journal.load())
    assert not sends(actions)
    assert [a.status for a in actions if isinstance(a, Outcome)] == ["unknown"]


def test_malformed_frame_becomes_a_notice_not_an_exception() -> None:
    term = new_terminal()
    assert [a.event for a in term.receive(1.0, b"garbage") if isinstance(a, ev.Event)] == ["malformed_frame"]


@pytest.mark.parametrize("module", ["pos_sim/terminal.py", "pos_sim/policies.py", "pos_sim/exchanges.py",
                                    "pos_sim/records.py", "pos_sim/actions.py", "pos_sim/config.py",
                                    "acquirer_sim/host.py", "protocol/codec.py", "protocol/faults.py",
                                    "protocol/messages.py"])
def test_core_modules_do_no_io_and_read_no_clock(module: str) -> None:
    """The sans-IO core imports no asyncio, sockets, clocks, threads, loggers or MQTT."""
    tree = ast.parse((ROOT / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"asyncio", "socket", "time", "threading", "structlog", "aiomqtt", "selectors"}

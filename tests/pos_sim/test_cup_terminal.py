"""The CUP terminal profile: same-STAN reversals with a reason, tries then escalation, reversal
before every online message, pre-authorization 030000 and its online completion."""

from __future__ import annotations

from possim.pos_sim.actions import Outcome, WriteJournal
from possim.pos_sim.exchanges import ESCALATED_DISPLAY
from possim.pos_sim.records import ReversalState
from possim.pos_sim.terminal import Terminal
from possim.protocol import codec
from possim.protocol import events as ev
from tests.helpers import new_host, purchase, replies, sends
from tests.helpers import new_terminal as _new_terminal


def new_terminal(policy: str = "reversal", **config: object) -> Terminal:
    return _new_terminal(policy, profile="cup", currency="156", reversal_attempts=3, **config)


def test_reversal_copies_the_original_with_the_same_stan_and_reason_98() -> None:
    term = new_terminal()
    original = codec.decode(sends(term.request_payment(0.0, purchase()))[0].data)
    reversal = codec.decode(sends(term.timer_fired(30.0, "response"))[0].data)
    assert reversal.mti == "0400"
    assert (reversal.stan, reversal.transmission) == (original.stan, original.transmission)
    assert (reversal.pan, reversal.amount, reversal.processing_code) == (original.pan, original.amount, "000000")
    assert (reversal.local_time, reversal.local_date) == (original.local_time, original.local_date)
    assert reversal.response_code == "98"
    assert reversal.original is None
    assert reversal.currency == "156"


def test_every_try_keeps_mti_0400_and_the_stan() -> None:
    term = new_terminal(backoff_initial=5.0)
    term.request_payment(0.0, purchase())
    first = codec.decode(sends(term.timer_fired(30.0, "response"))[0].data)
    term.timer_fired(60.0, "response")
    again = codec.decode(sends(term.timer_fired(65.0, "retry"))[0].data)
    assert (again.mti, again.stan, again.response_code) == ("0400", first.stan, "98")


def _exhaust(term: Terminal) -> list[object]:
    """Time out the original and every reversal try; the actions of the last timeout."""
    term.request_payment(0.0, purchase())
    now, actions = 30.0, term.timer_fired(30.0, "response")
    while sends(actions) or any(isinstance(a, ev.ReversalRetryScheduled) for a in actions):
        if not sends(actions):
            now = next(a.at for a in actions if isinstance(a, ev.ReversalRetryScheduled))
            actions = term.timer_fired(now, "retry")
            continue
        now += 30.0
        actions = term.timer_fired(now, "response")
    return list(actions)


def test_three_tries_then_escalation_shown_and_journaled() -> None:
    term = new_terminal()
    actions = _exhaust(term)
    txn = term.records[1]
    assert txn.reversal_attempts == 3
    assert txn.reversal is ReversalState.ESCALATED
    assert txn.display == ESCALATED_DISPLAY
    assert [type(a) for a in actions][1:4] == [WriteJournal, ev.ReversalEscalated, Outcome]
    escalated = next(a for a in actions if isinstance(a, ev.ReversalEscalated))
    assert (escalated.stan, escalated.attempts) == ("000001", 3)
    outcome = next(a for a in actions if isinstance(a, Outcome))
    assert outcome.display == ESCALATED_DISPLAY
    assert term.idle and not term.tasks


def test_escalated_reversal_is_not_resumed_after_a_power_loss() -> None:
    term = new_terminal()
    _exhaust(term)
    fresh = new_terminal()
    assert not sends(fresh.restore(500.0, [term.records[1].snapshot()]))
    assert fresh.idle


def test_iso_profile_keeps_parking_the_reversal() -> None:
    term = _new_terminal("reversal", reversal_attempts=3)
    actions = _exhaust(term)
    assert any(isinstance(a, ev.ReversalParked) for a in actions)
    assert term.records[1].reversal is ReversalState.PENDING


def test_reversal_goes_before_every_new_sale_until_escalated() -> None:
    term = new_terminal(backoff_initial=1000.0)
    term.request_payment(0.0, purchase(1))
    term.timer_fired(30.0, "response")  # reversal try 1 out
    term.timer_fired(60.0, "response")  # no answer: retry in 1000 s
    first = sends(term.request_payment(100.0, purchase(2)))
    assert [codec.decode(s.data).mti for s in first] == ["0400"]
    assert term.records[1].reversal_attempts == 2


def test_duplicate_transmission_answer_is_not_the_sales_answer() -> None:
    term = new_terminal()
    request = codec.decode(sends(term.request_payment(0.0, purchase()))[0].data)
    actions = term.receive(0.5, codec.encode(request.response("94")))
    assert [type(a) for a in actions] == [ev.DuplicateTransmission]
    assert term.inflight is not None
    approved = term.receive(1.0, codec.encode(request.response("00", rrn="000000000001", auth_code="A00001")))
    assert any(isinstance(a, Outcome) and a.status == "approved" for a in approved)


def test_preauth_uses_030000_and_its_completion_is_an_online_0200() -> None:
    term, host = new_terminal(), new_host()
    request = sends(term.request_payment(0.0, purchase(kind="auth")))[0]
    assert codec.decode(request.data).processing_code == "030000"
    answer = replies(host.receive(0.1, request.data))[0]
    completion = sends(term.receive(0.3, answer.data))
    msg = codec.decode(completion[0].data)
    assert (msg.mti, msg.processing_code) == ("0200", "000000")
    assert msg.original is not None and msg.original.stan == "000001"
    done = replies(host.receive(0.4, completion[0].data))[0]
    assert codec.decode(done.data).mti == "0210"
    term.receive(0.5, done.data)
    assert term.records[1].completion == "acked"


def test_completion_without_answer_is_reversed_as_a_copy() -> None:
    term, host = new_terminal(), new_host()
    request = sends(term.request_payment(0.0, purchase(kind="auth")))[0]
    completion = codec.decode(sends(term.receive(0.3, replies(host.receive(0.1, request.data))[0].data))[0].data)
    reversal = codec.decode(sends(term.timer_fired(31.0, "response"))[0].data)
    assert (reversal.mti, reversal.stan, reversal.transmission) == ("0400", completion.stan, completion.transmission)
    assert reversal.original == completion.original and reversal.response_code == "98"
    assert term.records[1].status == "failed"


def test_host_reverses_a_cup_reversal_by_its_own_key() -> None:
    term, host = new_terminal(), new_host()
    original = sends(term.request_payment(0.0, purchase()))[0]
    host.receive(0.1, original.data)  # debited; the answer is lost
    reversal = sends(term.timer_fired(30.0, "response"))[0]
    answer = replies(host.receive(30.1, reversal.data))[0]
    assert codec.decode(answer.data).response_code == "00"
    term.receive(30.2, answer.data)
    assert term.records[1].reversal is ReversalState.ACKED
    assert host.ledger.balances()["4000000000000002"][0] == host.config.default_balance

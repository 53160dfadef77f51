"""Settlement: 0500 batch totals, 0510 balanced or out of balance, 0320 batch upload, final 0500."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from possim.pos_sim.actions import Action, Send
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.pos_sim.records import CompletionState
from possim.pos_sim.terminal import Terminal
from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol.cup import BatchTotals
from possim.protocol.messages import Message
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests.conftest import SCENARIOS
from tests.helpers import new_host, new_terminal, purchase, replies, sends


def _answer(terminal: Terminal, host: Any, now: float, actions: list[Action]) -> list[Action]:
    """Deliver the terminal's sends to the host and the host's replies back; the terminal's new actions."""
    out: list[Action] = []
    for send in sends(actions):
        for reply in replies(host.receive(now, send.data)):
            out += terminal.receive(now, reply.data)
    return out


def _run(terminal: Terminal, host: Any, actions: list[Action], lose: frozenset[str] = frozenset()) -> list[Action]:
    """Play the exchange to the end (messages of MTIs in ``lose`` never reach the host); every action seen."""
    seen, now = list(actions), 0.0
    while actions:
        now += 1
        delivered = [a for a in actions if not (isinstance(a, Send) and a.mti in lose)]
        actions = _answer(terminal, host, now, delivered)
        if not sends(actions) and terminal.inflight is not None:
            actions += terminal.timer_fired(now + 100, "response")
        seen += actions
    return seen


def test_balanced_day_sends_one_0500_and_no_upload() -> None:
    terminal, host = new_terminal(), new_host()
    _run(terminal, host, terminal.request_payment(0, purchase(amount=2500)))
    seen = _run(terminal, host, terminal.settle(10))
    sent = [codec.decode(s.data) for s in sends(seen)]
    assert [m.mti for m in sent] == [M.SETTLEMENT]
    assert BatchTotals.from_field48(sent[0].batch_totals or "") == BatchTotals(2500, 1)
    answered = [a for a in seen if isinstance(a, ev.SettlementAnswered)]
    assert answered == [ev.SettlementAnswered("POS00001", sent[0].stan, True, False)]
    assert terminal.settlement is None and terminal.idle


def test_out_of_balance_uploads_each_approved_sale_then_settles_again() -> None:
    terminal, host = new_terminal(policy="none"), new_host()
    _run(terminal, host, terminal.request_payment(0, purchase(1, amount=2500)))
    _run(terminal, host, terminal.request_payment(1, purchase(2, amount=900, kind="auth")), lose=frozenset({M.ADVICE}))
    record = terminal.records[2]
    assert record.completion is CompletionState.LOST
    assert host.ledger.batch_totals("POS00001") == (2500, 1)
    seen = _run(terminal, host, terminal.settle(10))
    assert [s.mti for s in sends(seen)] == [M.SETTLEMENT, M.BATCH_UPLOAD, M.BATCH_UPLOAD, M.SETTLEMENT]
    answers = [a for a in seen if isinstance(a, ev.SettlementAnswered)]
    assert [(a.balanced, a.final, a.uploads) for a in answers] == [(False, False, 2), (True, True, 0)]
    assert host.ledger.batch_totals("POS00001") == (3400, 2)
    assert terminal.records[2].completion is CompletionState.ACKED
    outcomes = host.ledger.conn.execute("SELECT stan, outcome FROM batch_uploads ORDER BY stan").fetchall()
    assert outcomes == [(terminal.records[1].stan, "matched"), (record.stan, "captured")]


def test_host_answers_out_of_balance_in_field_48() -> None:
    host = new_host()
    totals = BatchTotals(2500, 1).to_field48()
    request = Message(mti=M.SETTLEMENT, stan="000009", transmission="1125100000", tid="POS00001",
                      mid="MERCHANT0000001", currency="978", batch_totals=totals)
    reply = codec.decode(replies(host.receive(0, codec.encode(request)))[0].data)
    assert reply.mti == M.SETTLEMENT_RESPONSE and reply.response_code == "00"
    assert BatchTotals.from_field48(reply.batch_totals or "").answer == "2"


def test_settlement_travels_in_the_cup_format_with_field_48() -> None:
    msg = Message(mti=M.SETTLEMENT, stan="000009", transmission="1125100000", tid="POS00001",
                  mid="MERCHANT0000001", currency="156", batch_totals=BatchTotals(42000, 1).to_field48())
    raw = cup.encode(msg)
    assert raw[:2] == bytes.fromhex("0500")
    assert cup.decode_fields(raw)["48"] == msg.batch_totals
    assert cup.decode(raw) == replace(msg, local_time="100000", local_date="1125")  # CUP: 13 + 12, no field 7


def test_scenario_recovers_the_lost_advice_under_every_policy() -> None:
    scenario = load(SCENARIOS / "settlement-recovers-advice.toml")
    for policy in POLICY_REGISTRY.names():
        summary = simulate(scenario, policy).summary()
        assert summary["recovered_by_settlement"] == 1, policy
        assert summary["open_holds"] == 0 and summary["phantom_approvals"] == 0


def test_without_settlement_the_hold_stays_open_and_nothing_is_recovered() -> None:
    raw = load(SCENARIOS / "settlement-recovers-advice.toml").raw()
    raw.pop("settlement")
    raw["expect"] = {}
    summary = simulate(from_dict(raw), "reversal").summary()
    assert summary["open_holds"] == 1
    assert "recovered_by_settlement" not in summary

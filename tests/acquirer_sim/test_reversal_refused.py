"""A refused reversal is not a reversal: the host option, and the shipped scenario under every policy."""

from __future__ import annotations

import pytest

from possim.judging.expect import failed_expectations
from possim.pos_sim import terminal
from possim.pos_sim.policies import POLICY_NAMES
from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol.messages import Message, OriginalData
from possim.scenario import load
from possim.simulation import simulate
from tests.conftest import SCENARIOS
from tests.helpers import new_host, replies

SCENARIO = SCENARIOS / "reversal-refused.toml"
ORIG = OriginalData("0200", "000001", "1125100000")


def _reversal(mti: str) -> bytes:
    return codec.encode(Message(mti=mti, stan="000002", transmission="1125100030", tid="POS00001",
                                pan="4000000000000002", amount=2500, original=ORIG, processing_code="000000",
                                currency="978"))


def test_the_host_refuses_its_first_reversals_with_the_given_codes_and_credits_nothing() -> None:
    host = new_host(reversal_answers=("05", "30"))
    host.receive(0.0, codec.encode(Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001",
                                           mid="MERCHANT0000001", pan="4000000000000002",
                                           processing_code="000000", amount=2500, currency="978")))
    codes = [codec.decode(replies(host.receive(t, _reversal(mti)))[0].data).response_code
             for t, mti in ((30.0, "0400"), (35.0, "0401"), (45.0, "0401"), (50.0, "0401"))]
    assert codes == ["05", "30", "00", "00"]
    kinds = host.ledger.conn.execute("SELECT kind, amount FROM entries ORDER BY id").fetchall()
    assert kinds == [("debit", 2500), ("credit", 2500)]


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_the_scenario_holds_its_expectations(policy: str) -> None:
    scenario = load(SCENARIO)
    result = simulate(scenario, policy)
    assert result.quiescent
    assert failed_expectations(scenario.model.expect, policy, result.verdict.summary()) == []


def test_the_terminal_repeats_until_the_host_answers_00() -> None:
    result = simulate(load(SCENARIO), "reversal")
    sent = [s.event.mti for s in result.trace.records if isinstance(s.event, ev.MsgSent) and s.event.side != "host"]
    assert sent == ["0200", "0400", "0401", "0401"]
    s = result.verdict.summary()
    assert (s["reversed"], s["orphaned_debits"], s["customer_loss"]) == (1, 0, "0.00")


def test_under_the_old_rule_the_sale_shows_reversed_while_the_money_stays_debited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the scenario guards against: any answer but 91/96 taken as 'reversed'."""
    monkeypatch.setattr(terminal, "reversal_closes", lambda code: code not in {"91", "96"})
    s = simulate(load(SCENARIO), "reversal").verdict.summary()
    assert (s["reversed"], s["orphaned_debits"], s["customer_loss"]) == (1, 1, "40.00")

"""Messages nobody can forge: MACs, identity binding, field checks and forgeries, in memory.

The host and terminal state machines directly, and whole scenario runs with forgeries on the
virtual clock, each with MACs on and off: off shows the attack succeeding, on shows it failing
with nothing changed.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost, Reply
from possim.acquirer_sim.ledger import Ledger
from possim.fuzzing.forgery import attacker_key
from possim.pos_sim.terminal import RESPONSE_TIMER, PaymentRequest
from possim.processes import keys
from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol.messages import Message, OriginalData
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests.helpers import new_terminal

VICTIM, ATTACKER = "POS00002", "POS00001"
RING = keys.derive(7, [ATTACKER, VICTIM])
ORIG = OriginalData("0200", "000001", "1125100000")


def _host() -> AcquirerHost:
    cfg = HostConfig()
    return AcquirerHost(cfg, Ledger(default_balance=cfg.default_balance), random.Random(0), RING.mac_keys())


def _purchase(tid: str = VICTIM, stan: str = "000001", **fields: Any) -> Message:
    base: dict[str, Any] = {"mti": "0200", "stan": stan, "transmission": "1125100000", "tid": tid,
                            "mid": "MERCHANT0000001", "pan": "4000000000000002", "processing_code": "000000",
                            "amount": 2500, "currency": "978"}
    return Message(**{**base, **fields})


def _reversal(amount: int = 2500, tid: str = VICTIM) -> Message:
    return Message(mti="0400", stan="000002", transmission="1125100030", tid=tid, pan="4000000000000002",
                   processing_code="000000", amount=amount, currency="978", original=ORIG)


def _signed(msg: Message, tid: str | None = None) -> bytes:
    return codec.encode(msg, RING.mac_key(tid or msg.tid))


def _replies(actions: list[Any]) -> list[Message]:
    return [codec.decode(a.data, RING.mac_keys()) for a in actions if isinstance(a, Reply)]


def _unsigned_replies(actions: list[Any]) -> list[Message]:
    """The answers to frames that proved nothing: they carry no MAC (a MAC over fields the sender chose
    would be the host signing them for anyone), so a terminal takes them as no answer."""
    replies = [a.data for a in actions if isinstance(a, Reply)]
    for data in replies:
        with pytest.raises(codec.MacMissingError):
            codec.decode(data, RING.mac_keys())
    return [codec.decode(data) for data in replies]


def _ledger(host: AcquirerHost) -> list[tuple[Any, ...]]:
    conn = host.ledger.conn
    return [conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("entries", "originals")]  # type: ignore[misc]


def _counts(host: AcquirerHost) -> tuple[int, ...]:
    conn = host.ledger.conn
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in sorted(tables))


@pytest.mark.parametrize("data", [
    codec.encode(_reversal()),  # no MAC at all
    codec.encode(_reversal(), attacker_key(7)),  # a MAC under the wrong key
    codec.encode(_reversal(), RING.mac_key(ATTACKER)),  # another terminal's real key
], ids=["missing", "wrong-key", "other-terminal-key"])
def test_a_reversal_without_the_victims_mac_is_answered_63_and_changes_nothing(data: bytes) -> None:
    host = _host()
    host.receive(0.0, _signed(_purchase()))
    before = _counts(host)
    actions = host.receive(1.0, data)
    assert [r.response_code for r in _unsigned_replies(actions)] == ["63"]
    assert any(isinstance(a, ev.SecurityViolation) for a in actions)
    assert _counts(host) == before
    assert host.ledger.balances()["4000000000000002"] == (100_000_000 - 2500, 0)


def test_unsigned_queries_for_keys_never_used_leave_later_purchases_approved() -> None:
    """The issue's attack: 120 forged 0600 for the victim's next keys; none may close a key."""
    host = _host()
    before = _counts(host)
    for n in range(1, 121):
        query = Message(mti="0600", stan=f"{900000 + n:06d}", transmission="1125095959", tid=VICTIM,
                        processing_code="970000", original=OriginalData("0200", f"{n:06d}", "1125100000"))
        answers = _unsigned_replies(host.receive(0.0, codec.encode(query, attacker_key(1))))
        assert [r.response_code for r in answers] == ["63"]
    assert _counts(host) == before
    for n in range(1, 4):
        assert _replies(host.receive(1.0, _signed(_purchase(stan=f"{n:06d}"))))[0].response_code == "00"


def test_field_41_must_be_the_terminal_the_transport_vouches_for() -> None:
    host = _host()
    actions = host.receive(0.0, _signed(_purchase()), sender=ATTACKER)
    assert not _replies(actions) and isinstance(actions[0], ev.IdentityMismatch)
    assert _counts(host) == _counts(_host())


def test_a_request_failing_the_field_checks_is_answered_30_and_changes_nothing() -> None:
    host = _host()
    before = _counts(host)
    for bad in (_purchase(pan=None), _purchase(amount=0), _purchase(amount=None), _purchase(transmission="9999999999"),
                _purchase(pan="4000000000000003"), _purchase(currency="999")):
        assert [r.response_code for r in _replies(host.receive(0.0, _signed(bad)))] == ["30"]
    assert _counts(host) == before


def test_a_reversal_of_another_amount_is_answered_13_and_credits_nothing() -> None:
    host = _host()
    host.receive(0.0, _signed(_purchase()))
    before = _counts(host)
    assert [r.response_code for r in _replies(host.receive(1.0, _signed(_reversal(amount=1))))] == ["13"]
    assert _counts(host) == before
    assert [r.response_code for r in _replies(host.receive(2.0, _signed(_reversal())))] == ["00"]
    assert host.ledger.balances()["4000000000000002"] == (100_000_000, 0)


def test_a_response_with_a_wrong_mac_is_no_response_and_the_reversal_policy_reverses() -> None:
    term = new_terminal("reversal", tid=VICTIM)
    term.mac_key = RING.mac_key(VICTIM)
    term.request_payment(0.0, PaymentRequest(1, "basket-1", "purchase", 2500, "4000000000000002"))
    sent = term.inflight
    assert sent is not None
    forged = codec.encode(sent.request.response("00", rrn="666666666666", auth_code="F0RGED"), attacker_key(1))
    actions = term.receive(0.5, forged)
    assert [type(a) for a in actions] == [ev.ResponseRejected]
    assert term.records[1].status == "pending"
    term.timer_fired(31.0, RESPONSE_TIMER)
    assert term.records[1].reversal.value == "pending"


def _with(name: str, **changes: Any) -> Any:
    raw = load(f"scenarios/{name}.toml").raw()
    return from_dict({**raw, **changes})


@pytest.mark.parametrize("policy", ["none", "reversal", "query"])
def test_forged_reversal_moves_money_only_without_macs(policy: str) -> None:
    off = simulate(_with("forged-reversal", mac=False), policy).verdict.summary()
    on = simulate(_with("forged-reversal"), policy)
    assert off["phantom_approvals"] == 1 and off["merchant_loss"] == "25.00"
    assert on.verdict.summary()["phantom_approvals"] == 0 and on.verdict.summary()["merchant_loss"] == "0.00"
    assert on.trace.count(ev.SecurityViolation) == 1 and on.trace.count(ev.ForgeryInjected) == 1


@pytest.mark.parametrize("policy", ["none", "reversal", "query"])
def test_forged_approval_is_a_phantom_only_without_macs(policy: str) -> None:
    off = simulate(_with("forged-approval", mac=False), policy).verdict.summary()
    on = simulate(_with("forged-approval"), policy)
    assert off["phantom_approvals"] == 1
    assert on.verdict.summary()["phantom_approvals"] == 0 and on.verdict.summary()["declined"] == 1
    assert on.trace.count(ev.ResponseRejected) == 1


def _query_attack(mac: bool) -> dict[str, object]:
    scenario = {"title": "forged queries", "description": "120 forged 0600 for the next keys.", "mac": mac,
                "transactions": [{"at": 0, "amount": "10.00"}, {"at": 60, "amount": "10.00", "count": 3}],
                "forgeries": [{"at": 30, "kind": "query", "target": 2, "count": 120}]}
    return simulate(from_dict(scenario), "none").verdict.summary()


def test_forged_queries_for_predicted_keys_refuse_later_purchases_only_without_macs() -> None:
    # the attack works without MACs: a predicted key closed by a forged NOT_FOUND refuses a later sale
    assert int(str(_query_attack(mac=False)["approved"])) < 4
    on = _query_attack(mac=True)
    assert on["approved"] == 4 and on["declined"] == 0


def test_scenario_runs_with_macs_repeat_byte_for_byte() -> None:
    sc = load("scenarios/forged-reversal.toml")
    assert simulate(sc, "reversal").trace.lines() == simulate(sc, "reversal").trace.lines()

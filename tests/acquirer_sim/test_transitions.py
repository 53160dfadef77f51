"""Transition tables: every legal move passes, every other one raises, and real runs never ask for one.

The tables (``pos_sim.records``, ``acquirer_sim.ledger_states``, ``acquirer_sim.wallet_ledger``) are
the only way the terminals and the ledgers change a state. The property at the end drives whole
simulated runs (every policy, both profiles, card and wallet payments, with faults, power losses and
forgeries) and fails on the first move a table does not have.
"""

from __future__ import annotations

import ast
import sqlite3
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from possim.acquirer_sim.ledger import Ledger
from possim.acquirer_sim.ledger_states import ORIGINAL_MOVES, OriginalState
from possim.acquirer_sim.wallet_ledger import TRADE_MOVES, WalletLedger, WalletTradeState
from possim.pos_sim.policies import REGISTRY
from possim.pos_sim.records import (
    CANCEL_MOVES,
    COMPLETION_MOVES,
    REVERSAL_MOVES,
    SALE_MOVES,
    WALLET_SALE_MOVES,
    CompletionState,
    ReversalState,
    SaleStatus,
    TxnRecord,
)
from possim.pos_sim.testing import schedules
from possim.protocol import wallet as W
from possim.protocol.transitions import IllegalTransitionError, Transitions
from possim.scenario import from_dict
from possim.simulation import simulate
from tests.test_architecture import ROOT, _reach

TABLES: dict[str, tuple[Transitions[Any], type[StrEnum]]] = {
    "sale": (SALE_MOVES, SaleStatus),
    "reversal": (REVERSAL_MOVES, ReversalState),
    "completion": (COMPLETION_MOVES, CompletionState),
    "wallet-sale": (WALLET_SALE_MOVES, SaleStatus),
    "wallet-cancel": (CANCEL_MOVES, ReversalState),
    "ledger-original": (ORIGINAL_MOVES, OriginalState),
    "wallet-trade": (TRADE_MOVES, WalletTradeState),
}
KEY = ("POS00001", "000001", "1125100000")
PAN = "4000000000000002"


def _illegal(table: Transitions[Any], states: type[StrEnum]) -> list[tuple[Any, Any]]:
    return [(old, new) for old in states for new in states if not table.allows(old, new)]


# -- the tables -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", TABLES)
def test_every_legal_move_of_a_table_passes(name: str) -> None:
    table, states = TABLES[name]
    pairs = table.pairs()
    assert pairs, f"{name}: a table without moves"
    for old, new in pairs:
        assert isinstance(old, states) and isinstance(new, states)
        assert table.move(old, new) is new


@pytest.mark.parametrize("name", TABLES)
def test_every_other_move_of_a_table_raises_naming_both_states(name: str) -> None:
    table, states = TABLES[name]
    illegal = _illegal(table, states)
    assert illegal, f"{name}: every move is legal, the table checks nothing"
    for old, new in illegal:
        with pytest.raises(IllegalTransitionError, match=f"illegal {table.what} move: {old} -> {new} "):
            table.move(old, new)


@pytest.mark.parametrize("name", TABLES)
def test_a_new_one_begins_only_in_a_start_state(name: str) -> None:
    table, states = TABLES[name]
    for state in states:
        if state in table.starts:
            assert table.begin(state) is state
        else:
            with pytest.raises(IllegalTransitionError, match=r"\(new\) -> "):
                table.begin(state)


def test_final_states_have_no_way_out() -> None:
    assert {s for s in SaleStatus if SALE_MOVES.final(s)} == {SaleStatus.DECLINED, SaleStatus.FAILED,
                                                             SaleStatus.REVERSED}
    assert {s for s in ReversalState if REVERSAL_MOVES.final(s)} == {ReversalState.ACKED, ReversalState.ESCALATED}
    assert {s for s in OriginalState if ORIGINAL_MOVES.final(s)} == {
        OriginalState.DECLINED, OriginalState.REFUSED, OriginalState.REVERSED, OriginalState.RELEASED,
        OriginalState.ISSUER_REVERSED}
    assert {s for s in WalletTradeState if TRADE_MOVES.final(s)} == {
        WalletTradeState.CLOSED, WalletTradeState.PAYERROR, WalletTradeState.REVOKED}


def test_the_wallet_trade_states_are_the_protocols_words() -> None:
    assert {str(s) for s in WalletTradeState} == set(W.TRADE_STATES)


# -- the terminal's record ------------------------------------------------------------------

def _record(**fields: Any) -> TxnRecord:
    values: dict[str, Any] = {"txn_id": 1, "intent": "basket-1", "kind": "purchase", "mti": "0200", "stan": "000001",
                              "transmission": "1125100000", "pan": PAN, "amount": 2500, "completion_amount": 2500,
                              "started_at": 0.0}
    return TxnRecord(**(values | fields))


def test_a_reversed_sale_cannot_become_approved() -> None:
    txn = _record()
    txn.move_status(SaleStatus.UNKNOWN)
    txn.move_status(SaleStatus.REVERSED)
    with pytest.raises(IllegalTransitionError, match="illegal sale status move: reversed -> approved"):
        txn.move_status(SaleStatus.APPROVED)
    assert txn.status is SaleStatus.REVERSED


def test_an_acknowledged_reversal_is_never_owed_again() -> None:
    txn = _record()
    txn.move_reversal(ReversalState.ARMED)
    txn.move_reversal(ReversalState.PENDING)
    txn.move_reversal(ReversalState.ACKED)
    with pytest.raises(IllegalTransitionError, match="reversal move: acked -> pending"):
        txn.move_reversal(ReversalState.PENDING)


def test_an_acknowledged_completion_is_not_lost_afterwards() -> None:
    txn = _record(kind="auth")
    txn.move_completion(CompletionState.PENDING)
    txn.move_completion(CompletionState.ACKED)
    with pytest.raises(IllegalTransitionError, match="completion advice move: acked -> lost"):
        txn.move_completion(CompletionState.LOST)


def test_restoring_from_the_journal_is_no_move() -> None:
    """A record read back is set to the state the journal holds, whatever it is."""
    txn = _record(status="reversed", reversal="escalated", completion="lost")
    assert (txn.status, txn.reversal, txn.completion) == (SaleStatus.REVERSED, ReversalState.ESCALATED,
                                                          CompletionState.LOST)


# -- the card ledger ------------------------------------------------------------------------

def _states(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM originals")]


def _entries(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT kind, amount FROM entries ORDER BY id")]


def test_a_reversed_original_cannot_be_debited_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, default_balance=10_000)
    try:
        ledger.record(0.0, KEY, "0200", PAN, 2500, "RRN1", "A00001", "00", OriginalState.DEBITED, "debit")
        orig = ledger.find(KEY)
        assert orig is not None and orig.state is OriginalState.DEBITED
        ledger.transition(1.0, orig, OriginalState.REVERSED, [("credit", 2500)])
        with pytest.raises(IllegalTransitionError, match="illegal ledger original move: reversed -> debited"):
            ledger.transition(2.0, orig, OriginalState.DEBITED, [("debit", 2500)])
        assert ledger.balances() == {PAN: (10_000, 0)}
    finally:
        ledger.close()
    assert _states(path) == ["reversed"]  # the column keeps its words
    assert _entries(path) == [("debit", 2500), ("credit", 2500)]


def test_a_move_is_checked_against_the_row_not_the_callers_copy(tmp_path: Path) -> None:
    """Two reversals of one original read it debited; the second finds it reversed and changes nothing."""
    ledger = Ledger(tmp_path / "ledger.db", default_balance=10_000)
    try:
        ledger.record(0.0, KEY, "0200", PAN, 2500, "RRN1", "A00001", "00", OriginalState.DEBITED, "debit")
        stale = ledger.find(KEY)
        assert stale is not None
        ledger.transition(1.0, stale, OriginalState.REVERSED, [("credit", 2500)])
        with pytest.raises(IllegalTransitionError, match="reversed -> reversed"):
            ledger.transition(2.0, stale, OriginalState.REVERSED, [("credit", 2500)])
        assert ledger.balances() == {PAN: (10_000, 0)}
    finally:
        ledger.close()


def test_an_original_is_not_booked_in_a_state_it_can_only_reach(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        with pytest.raises(IllegalTransitionError, match=r"\(new\) -> captured"):
            ledger.record(0.0, KEY, "0100", PAN, 2500, None, None, "00", OriginalState.CAPTURED, None)
        assert ledger.find(KEY) is None
    finally:
        ledger.close()


def test_an_issuer_answer_settles_an_original_in_progress_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db", default_balance=10_000)
    try:
        ledger.record(0.0, KEY, "0200", PAN, 2500, None, None, "09", OriginalState.IN_PROGRESS, None)
        ledger.settle_in_progress(1.0, KEY, "00", OriginalState.DEBITED, "debit", "RRN1", "A00001", b"answer")
        with pytest.raises(IllegalTransitionError, match="debited -> debited"):
            ledger.settle_in_progress(2.0, KEY, "00", OriginalState.DEBITED, "debit", "RRN1", "A00001", b"answer")
        assert ledger.balances() == {PAN: (7_500, 0)}
    finally:
        ledger.close()


def test_the_ledger_answers_what_the_host_asked_in_sql(tmp_path: Path) -> None:
    """The host's RRN sequence and a captured original's reversal read the ledger through methods."""
    ledger = Ledger(tmp_path / "ledger.db", default_balance=10_000)
    try:
        assert ledger.original_count() == 0
        ledger.record(0.0, KEY, "0100", PAN, 2500, "RRN1", "A00001", "00", OriginalState.HELD, "hold")
        held = ledger.find(KEY)
        assert held is not None
        ledger.transition(1.0, held, OriginalState.CAPTURED, [("release", 2500), ("capture", 2000)])
        assert (ledger.original_count(), ledger.captured(KEY), ledger.captured((*KEY[:2], "1125100001"))) == (
            1, 2000, 0)
    finally:
        ledger.close()
    source = (ROOT / "acquirer_sim" / "host.py").read_text(encoding="utf-8")
    assert "ledger.conn" not in source


# -- the wallet ledger ----------------------------------------------------------------------

def test_a_revoked_wallet_order_is_never_charged_again(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        ledger = WalletLedger(conn, default_balance=10_000)
        order = ("POS00001", "ORDER1")
        ledger.create(0.0, order, "alipay", "28123", "w1", 2500, WalletTradeState.USERPAYING, "T1")
        trade = ledger.find(order)
        assert trade is not None and trade.state is WalletTradeState.USERPAYING
        ledger.transition(1.0, trade, WalletTradeState.SUCCESS, "charge")
        ledger.transition(2.0, trade, WalletTradeState.REVOKED, "refund")
        with pytest.raises(IllegalTransitionError, match="illegal wallet trade move: REVOKED -> SUCCESS"):
            ledger.transition(3.0, trade, WalletTradeState.SUCCESS, "charge")
        assert ledger.balances() == {"w1": 10_000}
        assert ledger.money() == {order: 0}
        assert conn.execute("SELECT state FROM wallet_trades").fetchall() == [("REVOKED",)]
    finally:
        conn.close()


# -- the checker shares nothing with them ---------------------------------------------------

def test_the_checker_reaches_no_transition_table() -> None:
    """It judges the recovery from recorded facts; the rules that recovery followed are not its evidence."""
    reached = _reach("possim.judging.checker")
    for module in ("possim.protocol.transitions", "possim.pos_sim.records", "possim.acquirer_sim.ledger_states",
                   "possim.acquirer_sim.ledger", "possim.acquirer_sim.wallet_ledger"):
        assert module not in reached, f"the checker reaches {module}"
    tree = ast.parse((ROOT / "possim" / "judging" / "checker.py").read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"SALE_MOVES", "ORIGINAL_MOVES", "TRADE_MOVES", "Transitions"}


# -- whole runs never ask for an illegal move -------------------------------------------------

POLICIES = list(REGISTRY)


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=25, deadline=None)
@given(schedule=schedules(max_transactions=4, forgeries=True))
def test_card_runs_never_make_an_illegal_move(policy: str, schedule: dict[str, Any]) -> None:
    result = simulate(from_dict(schedule), policy)
    assert result.verdict.counts is not None


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=15, deadline=None)
@given(schedule=schedules(max_transactions=3))
def test_cup_runs_never_make_an_illegal_move(policy: str, schedule: dict[str, Any]) -> None:
    result = simulate(from_dict(schedule).with_profile("cup"), policy)
    assert result.verdict.counts is not None


@settings(max_examples=40, deadline=None)
@given(schedule=schedules(wallet=True, forgeries=True))
def test_wallet_runs_never_make_an_illegal_move(schedule: dict[str, Any]) -> None:
    for policy in POLICIES:
        simulate(from_dict(schedule), policy)


def test_a_run_that_makes_an_illegal_move_stops_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """The property can fail: without the move a policy gives up with (unknown, told unknown again),
    a timed-out sale under ``none`` raises."""
    moves = dict(SALE_MOVES.moves)
    moves[SaleStatus.UNKNOWN] = moves[SaleStatus.UNKNOWN] - {SaleStatus.UNKNOWN}
    monkeypatch.setattr(SALE_MOVES, "moves", moves)
    scenario = from_dict({"title": "t", "description": "one sale, its answer lost",
                          "transactions": [{"amount": "25.00"}],
                          "faults": [{"action": "drop", "direction": "to_terminal", "mti": "0210", "nth": 1}]})
    with pytest.raises(IllegalTransitionError, match="unknown -> unknown"):
        simulate(scenario, "none")

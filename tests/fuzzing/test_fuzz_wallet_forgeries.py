"""Wallet forgeries among the faults ``possim fuzz --wallet`` draws: an attacker's cancel, refund and
query of a victim's order, a pay for an unknown terminal, a replayed genuine request and a pay with
another amount under its original sign. They travel the link and fault layer honest wallet requests
take, the real gateway refuses them (or answers a replay as a repeat), and a gateway that skips its
authentication is caught: fuzz reports the violation, shrunk, so "no violation" means something."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from possim.acquirer_sim.wallet import GatewayAction, WalletGateway
from possim.fuzzing.fuzz import strategy, violations
from possim.judging.coverage import FORGERIES_INJECTED, WALLET_FORGERIES_INJECTED
from possim.protocol import events as ev
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.faults import WALLET_FORGERY_KINDS
from possim.scenario import from_dict, load
from possim.simulation import RunResult, simulate

#: Two wallet sales of customers who pay at once; the attacker strikes between them.
SALES = [{"at": 0.0, "amount": "25.00", "card_type": "qr_wallet", "provider": "alipay"},
         {"at": 100.0, "amount": "12.00", "card_type": "qr_wallet", "provider": "wechat"}]
#: Every wallet forgery aimed at the first order once it is paid, and a cancel of a guessed order number.
EVERY_KIND = [{"at": 50.0, "kind": kind, "target": 1, "mac": mac} for kind, mac in
              (("wallet_cancel", "wrong"), ("wallet_refund", "none"), ("wallet_query", "wrong"),
               ("wallet_pay", "none"), ("wallet_replay", "wrong"), ("wallet_amount", "wrong"))] + [
    {"at": 50.0, "kind": "wallet_cancel", "target": 3, "mac": "none"}]


def _run(forgeries: list[dict[str, Any]], **extra: Any) -> RunResult:
    return simulate(from_dict({"title": "t", "description": "d", "transactions": SALES, "forgeries": forgeries,
                               **extra}), "reversal")


def _events(result: RunResult, cls: type[ev.Event]) -> list[Any]:
    return [r.event for r in result.trace.records if isinstance(r.event, cls)]


def test_every_wallet_forgery_is_refused_and_moves_no_money() -> None:
    result = _run(EVERY_KIND)
    injected = _events(result, ev.ForgeryInjected)
    assert Counter(f.kind for f in injected) == Counter(f["kind"] for f in EVERY_KIND)
    refused = {(v.mti, v.stan) for v in _events(result, ev.SecurityViolation)}
    assert refused == {(f.mti, f.stan) for f in injected if f.kind != "wallet_replay"}  # each one, 40002
    order = next(f.stan for f in injected if f.kind == "wallet_cancel" and f.target == 1)
    assert any(f.stan == "20261125POS00001000003GUESSED000" for f in injected)  # a guessed order number
    assert [(d.tid, d.order) for d in _events(result, ev.WalletDuplicatePay)] == [("POS00001", order)]  # the replay
    assert not _events(result, ev.WalletRefunded)
    assert violations(result) == [] and result.verdict.counts["approved"] == 2
    charged = [(c.order, c.amount) for c in _events(result, ev.WalletCharged)]
    assert len(charged) == 2 and (order, 2500) in charged  # the victim's order charged once, its amount


def test_without_keys_the_same_forged_cancel_refunds_the_victim_and_the_checker_says_so() -> None:
    """The attack is real: with no ``sign`` to check (``mac = false``) the forged cancel refunds a paid
    order the terminal approved, and the checker, from the ledger and journal alone, calls it a phantom."""
    result = _run(EVERY_KIND[:1], mac=False)
    assert [r.reason for r in _events(result, ev.WalletRefunded)] == ["cancel"]
    assert violations(result) == ["phantom_approvals"]
    assert [f.finding for f in result.verdict.findings] == ["phantom_wallet_approval"]


def test_a_forgery_goes_through_the_fault_layer() -> None:
    """A rule that drops the 1st QR_CANCEL towards the host drops the forged one: it never reaches the gateway."""
    rule = {"action": "drop", "direction": "to_host", "mti": "QR_CANCEL", "nth": 1}
    result = _run(EVERY_KIND[:1], faults=[rule])
    [forged] = _events(result, ev.ForgeryInjected)
    assert [(d.mti, d.stan) for d in _events(result, ev.NetDropped)] == [("QR_CANCEL", forged.stan)]
    assert not _events(result, ev.SecurityViolation)
    assert not any(isinstance(r.event, ev.MsgReceived) and r.event.mti == "QR_CANCEL" for r in result.trace.records)


def test_a_forgery_with_nothing_to_aim_at_is_recorded_as_missed() -> None:
    result = _run([{"at": 0.0, "kind": "wallet_replay", "target": 3}])
    assert [(m.kind, m.target) for m in _events(result, ev.ForgeryMissed)] == [("wallet_replay", 3)]
    assert not _events(result, ev.ForgeryInjected) and violations(result) == []


def test_wallet_fuzz_draws_every_kind_of_wallet_forgery() -> None:
    drawn: list[dict[str, Any]] = []

    # derandomized: the same 300 draws every run, so whether every kind shows up is no matter of luck
    @settings(max_examples=300, database=None, deadline=None, derandomize=True)
    @given(strategy(5, 1, wallet=True))
    def collect(schedule: dict[str, Any]) -> None:
        drawn.append(schedule)

    collect()
    kinds = {f["kind"] for s in drawn for f in s["forgeries"]}
    assert set(WALLET_FORGERY_KINDS) <= kinds and {"reversal", "approval", "query"} <= kinds
    for schedule in drawn[:20]:
        from_dict(schedule)


class TrustingGateway(WalletGateway):
    """A gateway that skips its authentication: any frame naming a terminal it has a key for is taken
    as that terminal's (it is signed here, with the terminal's key, before the real gateway reads it)."""

    def receive(self, now: float, data: bytes, sender: str | None = None) -> list[GatewayAction]:
        try:
            msg = W.decode(data)
        except ProtocolError:
            return super().receive(now, data, sender)
        key = self.keys.get(msg.tid) if self.keys is not None else None
        return super().receive(now, W.encode(msg, key) if key is not None else data, sender)


@pytest.fixture
def trusting_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("possim.running.wallet_rig.WalletGateway", TrustingGateway)


@pytest.mark.usefixtures("trusting_gateway")
def test_fuzz_reports_a_shrunk_violation_when_the_gateway_skips_authentication(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``possim fuzz --wallet`` against a gateway that takes any frame as its terminal's: the violation,
    shrunk to one sale and the one forgery that moved its money, written out; the real gateway refuses it."""
    from possim.cli import main

    monkeypatch.setenv("POSSIM_HYPOTHESIS_DIR", str(tmp_path / "cache"))
    out = tmp_path / "found.toml"
    with pytest.raises(SystemExit) as exited:
        main(["fuzz", "--wallet", "--policy", "reversal", "--examples", "400", "--out", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert exited.value.code == 1 and result["violations"] and result["out"] == str(out)
    assert result["wallet_forgeries_injected"] >= 1
    found = tomllib.loads(out.read_text())
    [forged] = found["forgeries"]
    assert forged["kind"] in WALLET_FORGERY_KINDS and "forged wallet" in found["description"]
    assert len(found["transactions"]) == 1 and not found.get("faults")
    monkeypatch.setattr("possim.running.wallet_rig.WalletGateway", WalletGateway)
    assert violations(simulate(load(out), "reversal")) == []  # the real gateway refuses the same forgery


def test_fuzz_cli_wallet_finds_no_violation_with_forgeries_drawn(tmp_path: Path) -> None:
    """The issue's check, smaller: ``possim fuzz --wallet --policy reversal`` with wallet forgeries among
    the faults finds nothing, and says how many forgeries it injected."""
    env = {**os.environ, "POSSIM_HYPOTHESIS_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "possim", "fuzz", "--wallet", "--policy", "reversal", "--examples",
                           "80", "--out", str(tmp_path / "found.toml"), "--json"], capture_output=True, text=True,
                          timeout=240, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["examples"], result["violations"], result["out"]) == (80, [], None)
    assert result["wallet_forgeries_injected"] > 0
    assert result["forgeries_injected"] >= result["wallet_forgeries_injected"]
    assert result["coverage"]["forged wallet cancel or refund refused (40002)"] > 0
    assert not (tmp_path / "found.toml").exists()


def test_the_tally_counts_forgeries_injected() -> None:
    from possim.judging.coverage import tally

    counter: Counter[str] = Counter()
    tally(counter, _run(EVERY_KIND).trace.records)
    tally(counter, _run([]).trace.records)
    assert (counter[FORGERIES_INJECTED], counter[WALLET_FORGERIES_INJECTED]) == (7, 7)
    assert counter["forged wallet cancel or refund refused (40002)"] == 1
    assert counter["genuine wallet request replayed"] == 1


def test_without_keys_a_pay_for_an_unknown_terminal_charges_a_customer_and_the_checker_says_so() -> None:
    """Money under a terminal id no journal names is judged in a run's own ledger: an orphaned debit."""
    result = _run([{"at": 50.0, "kind": "wallet_pay", "target": 1}], mac=False)
    [charge] = [c for c in _events(result, ev.WalletCharged) if c.tid == "GHOST001"]
    assert violations(result) == ["orphaned_debits"] and result.verdict.customer_loss == charge.amount == 2500
    assert [(f.finding, f.key[0]) for f in result.verdict.findings] == [("orphaned_debit", "GHOST001")]
    assert violations(_run([{"at": 50.0, "kind": "wallet_pay", "target": 1}])) == []  # with keys: refused

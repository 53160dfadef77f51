"""Replay of real-time traces: with the run's MAC keys (a recorded forgery stays refused) and with
wallet payments (recorded wallet frames, timers and the gateway's wakes go to the wallet drivers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from possim.processes.broker import Broker
from possim.protocol import events as ev
from possim.protocol.mqtt import BrokerAddress
from possim.running.realtime import run_mqtt, run_tcp
from possim.running.replay import load_trace, replay
from possim.running.trace import Trace
from possim.scenario import load
from tests.conftest import ROOT, SCENARIOS

COUNTS = ("transactions", "approved", "declined", "failed", "unknown", "reversed", "orphaned_debits",
          "double_debits", "phantom_approvals", "pending_reversals", "open_holds", "customer_loss", "merchant_loss")


def _possim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "possim", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False)


def _same(verdict: dict[str, object], recorded: dict[str, object]) -> None:
    assert {k: verdict[k] for k in COUNTS} == {k: recorded[k] for k in COUNTS}


def test_a_recorded_forged_reversal_replays_as_refused(tmp_path: Path) -> None:
    """Recorded over TCP with MACs on (the default), the forged 0400 was answered 63; replayed, too."""
    trace = tmp_path / "forged.jsonl"
    run = _possim("run", "forged-reversal", "--transport", "tcp", "--time-scale", "0.1", "--trace", str(trace),
                  "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["phantom_approvals"] == 0 and summary["approved"] == 1
    records = load_trace(trace)
    assert any(isinstance(s.event, ev.ForgeryInjected) and s.event.kind == "reversal" for s in records)
    refused = [s.event for s in records if isinstance(s.event, ev.SecurityViolation)]
    assert refused and refused[0].mti == "0400"

    verdict, recorded = replay(trace)
    assert recorded is not None
    _same(verdict.summary(), recorded)
    assert verdict.summary()["phantom_approvals"] == 0 and verdict.summary()["merchant_loss"] == "0.00"

    replayed = _possim("replay", str(trace))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay verdict matches the recording" in replayed.stdout


def test_the_replay_holds_the_run_keys_so_a_forgery_is_refused_again(tmp_path: Path) -> None:
    """The replayed host answers the recorded forgery with a security violation, not a credit."""
    from possim.pos_sim.terminal import Terminal
    from possim.running.replay import Rerun
    from possim.running.rig import run_keys

    trace = tmp_path / "forged.jsonl"
    assert _possim("run", "forged-reversal", "--transport", "tcp", "--time-scale", "0.1", "--trace",
                   str(trace)).returncode == 0
    records = load_trace(trace)
    started = next(s.event for s in records if isinstance(s.event, ev.RunStarted))
    scenario = load(SCENARIOS / "forged-reversal.toml").scaled(0.1)
    config = scenario.terminal_config(started.policy)
    keys = run_keys(started.seed, [config.tid])
    rerun = Rerun(Terminal(config, keys[config.tid]), scenario.host_config(), keys, scenario)
    rerun.feed(records)
    events = [s.event for s in rerun.trace.records]
    assert any(isinstance(e, ev.SecurityViolation) and e.mti == "0400" for e in events)
    assert not any(isinstance(e, ev.LedgerReversalCredited) for e in events)


def test_a_run_without_macs_replays_without_them(tmp_path: Path) -> None:
    """``mac = false``: the forgery succeeded in the run, and the replay says the same."""
    scenario = tmp_path / "unsigned.toml"
    scenario.write_text("mac = false\n" + (SCENARIOS / "forged-reversal.toml").read_text(encoding="utf-8"),
                        encoding="utf-8")
    trace = tmp_path / "unsigned.jsonl"
    run = _possim("run", str(scenario), "--transport", "tcp", "--time-scale", "0.1", "--trace", str(trace), "--json")
    assert json.loads(run.stdout)["phantom_approvals"] == 1, run.stdout + run.stderr
    verdict, recorded = replay(trace)
    assert recorded is not None
    _same(verdict.summary(), recorded)


def _wallet_inputs(trace: Trace | list[ev.Stamped]) -> set[type[ev.Event]]:
    records = trace.records if isinstance(trace, Trace) else trace
    return {type(s.event) for s in records}


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["none", "query-then-reversal"])
async def test_a_tcp_wallet_race_replays_to_the_same_verdict(tmp_path: Path, policy: str) -> None:
    result = await run_tcp(load(SCENARIOS / "qr-cancel-race.toml"), policy, 1, 0.1)
    assert result.quiescent
    trace = tmp_path / "qr.jsonl"
    result.trace.write(trace)
    kinds = _wallet_inputs(result.trace)
    assert {ev.WalletPaymentRequested, ev.WalletGatewayWake} <= kinds
    assert (ev.WalletTimerFired in kinds) == (policy != "none")  # queries and the cancel run on its timer
    verdict, recorded = replay(trace)
    assert recorded is not None
    _same(verdict.summary(), recorded)
    expected = {"none": ("orphaned_debits", 1), "query-then-reversal": ("reversed", 1)}[policy]
    assert verdict.summary()[expected[0]] == expected[1]


@pytest.mark.asyncio
async def test_an_mqtt_wallet_race_replays_to_the_same_verdict(broker: Broker, tmp_path: Path) -> None:
    scenario = load(SCENARIOS / "qr-cancel-race.toml")
    result = await run_mqtt(scenario, "query-then-reversal", 1, BrokerAddress.parse(broker.url), 1, 0.1)
    assert result.quiescent
    trace = tmp_path / "qr-mqtt.jsonl"
    result.trace.write(trace)
    verdict, recorded = replay(trace)
    assert recorded is not None
    _same(verdict.summary(), recorded)
    assert verdict.summary()["reversed"] == 1 and verdict.summary()["customer_loss"] == "0.00"


def test_optional_durations_scale_too() -> None:
    """A customer's ``confirm_after`` is a duration: ``--time-scale`` keeps it in step with the timings."""
    scenario = load(SCENARIOS / "qr-cancel-race.toml")
    scaled = scenario.scaled(0.1)
    assert scaled.model.transactions[0].confirm_after == pytest.approx(2.8)
    assert scaled.wallet_timings().alipay.pay_limit == pytest.approx(3.0)

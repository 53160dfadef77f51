"""Replay a recorded real-time run in virtual time, deterministically, and judge it again.

A trace recorded over MQTT holds every arrival (with its ISO 8583 bytes), every timer
firing and every payment request, with real timestamps. Replay feeds exactly those inputs,
in the recorded order, to fresh terminal and host state machines and a fresh journal and
ledger; their own timers and sends are not executed (the recording already says what
happened next). The verdict must match the recorded one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from acquirer_sim.host import AcquirerHost
from acquirer_sim.ledger import Ledger
from pos_sim.actions import WriteJournal
from pos_sim.journal import Journal
from pos_sim.terminal import PaymentRequest, Terminal
from possim.checker import Verdict, check
from possim.reconcile import Reconciliation, reconcile
from possim.scenario import ScenarioError, from_dict

#: The first event of a recorded real-time run, per transport.
REAL_TIME_HEADERS = ("mqtt_run", "tcp_run")


class ReplayError(Exception):
    """The file is not a replayable possim trace; ``str()`` is one line for the user."""


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read trace: {exc.strerror or exc}") from None
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path}: line {exc.lineno}: not a JSON trace line") from None


def replay(path: str | Path) -> tuple[Verdict, dict[str, Any] | None]:
    """Re-execute the trace; return the new verdict and the recorded summary (if the run finished)."""
    verdict, recorded, _ = replay_full(path)
    return verdict, recorded


def replay_full(path: str | Path) -> tuple[Verdict, dict[str, Any] | None, Reconciliation]:
    """As ``replay``, plus the end-of-day reconciliation of the re-executed run."""
    records = read_trace(path)
    header = next((r for r in records if r.get("event") in REAL_TIME_HEADERS), None)
    started = next((r for r in records if r.get("event") == "run_started"), None)
    if header is None or started is None:
        raise ReplayError(f"{path}: not a recorded real-time run (record one with run --transport mqtt|tcp --trace)")
    try:
        scenario = from_dict(header["scenario_data"]).scaled(float(header["time_scale"]))
    except (ScenarioError, KeyError) as exc:
        raise ReplayError(f"{path}: scenario inside the trace is unusable: {exc}") from None
    terminal = Terminal(scenario.terminal_config(started["policy"]))
    host_config = scenario.host_config()
    ledger = Ledger(default_balance=host_config.default_balance)
    host = AcquirerHost(host_config, ledger, random.Random(0))
    journal = Journal(tid=terminal.config.tid)
    for r in records:
        if r.get("event") == "terminal_power_restored":
            terminal = Terminal(terminal.config)
            for action in terminal.restore(float(r["t"]), journal.load()):
                if isinstance(action, WriteJournal):
                    journal.write(action.record)
            continue
        _feed(r, terminal, host, journal)
    journal.commit()
    verdict = check(journal.conn, ledger.conn)
    recon = reconcile(journal.conn, ledger.conn, scenario.fee_schedule())
    recorded = next((r for r in records if r.get("event") == "run_finished"), None)
    return verdict, recorded, recon


def _feed(r: dict[str, Any], terminal: Terminal, host: AcquirerHost, journal: Journal) -> None:
    event, now = r.get("event"), float(r.get("t", 0.0))
    actions: list[Any] = []
    if event == "payment_requested":
        request = PaymentRequest(int(r["txn"]), str(r["intent"]), r["kind"], int(r["amount"]), str(r["card"]),
                                 r.get("completion_amount"), r.get("instrument", "credit"))
        actions = terminal.request_payment(now, request)
    elif event == "msg_received" and "data" in r:
        data = bytes.fromhex(r["data"])
        if r.get("side") == "host":
            host.receive(now, data)
        else:
            actions = terminal.receive(now, data)
    elif event == "timer_fired":
        actions = terminal.timer_fired(now, str(r["timer"]))
    for action in actions:
        if isinstance(action, WriteJournal):
            journal.write(action.record)

"""Chaos: a fleet of terminal processes, one acquirer and a real Mosquitto, killed at random.

What it shows: with the ``reversal`` policy, journals written before every send, QoS 1
acknowledged after the ledger commit and idempotent keys, no money is lost however the
processes die. Every kill is a real ``SIGKILL`` of a real process; every restart reuses the
same ledger, journal, broker state and client ids. After the last kill everything is let
settle, the acquirer is stopped, and the checker judges every terminal's journal against the
one shared ledger.

Kills are spread over the run by one seeded RNG, so a chaos run is reproducible in what it
does (not in when the operating system schedules it). Everything binds to loopback and the
run stops by itself: each phase has a deadline. Ctrl-C stops every process and judges what
the run wrote so far (``interrupted``).

The fleet is secured as ``possim broker``/``acquirer``/``terminal`` are by default: a fresh
key file in the run's folder (``keys.json``, mode 0600) for its terminals, a broker with
accounts and the ACL, MACs on every message. ``ChaosPlan(insecure=True)`` runs it anonymous
and without MACs, as ``--insecure`` does.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import tomli_w

from possim.processes import keys
from possim.processes.broker import Broker
from possim.processes.child import POSSIM, LoggedProcess, NotReadyError

#: Each terminal's day: quick sales, a short timeout, reversals retried long enough to outlast
#: every outage the run causes (the acquirer or the broker down for a second or two).
SCENARIO: dict[str, Any] = {
    "title": "Chaos fleet terminal",
    "description": "A terminal selling while its acquirer, its broker and itself are killed at random.",
    "policy": "reversal",
    "terminal": {"response_timeout": 2.0, "reversal_timeout": 2.0, "reversal_attempts": 60,
                 "backoff_initial": 0.5, "backoff_factor": 1.5, "backoff_max": 3.0,
                 "advice_timeout": 2.0, "advice_attempts": 60},
    "host": {"processing": {"dist": "uniform", "low": 0.01, "high": 0.2}, "quick": {"value": 0.01}},
    "transactions": [{"amount": "12.50", "count": 12, "every": 1.0}],
}


class ChaosError(RuntimeError):
    """A process did not come up or the fleet did not settle in time; ``str()`` says which."""


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    """How big the fleet is and how often each kind of process is killed."""

    terminals: int = 20
    acquirer_kills: int = 20
    terminal_kills: int = 20
    broker_kills: int = 10
    seed: int = 1
    sales: int = 12
    settle_timeout: float = 300.0
    #: An anonymous broker and no MACs (``possim chaos --insecure``).
    insecure: bool = False


@dataclass
class ChaosReport:
    """What happened: kills of each kind, sales, and the checker's counts."""

    kills: Counter[str] = field(default_factory=Counter)
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: Stopped by Ctrl-C: the summary judges the journals and ledger as they were left.
    interrupted: bool = False

    @property
    def clean(self) -> bool:
        s = self.summary
        return all(s.get(k, 1) == 0 for k in ("orphaned_debits", "double_debits", "phantom_approvals",
                                               "pending_reversals"))

    def as_dict(self) -> dict[str, Any]:
        return {"kills": {k: self.kills[k] for k in ("acquirer", "terminal", "broker")}, **self.summary,
                "seconds": round(self.seconds, 1), "interrupted": self.interrupted, "clean": self.clean}

    def rows(self) -> list[tuple[str, object]]:
        s = self.summary
        return [("acquirer kills", self.kills["acquirer"]), ("terminal kills", self.kills["terminal"]),
                ("broker kills", self.kills["broker"]), ("sales attempted", s.get("transactions", 0)),
                ("approved", s.get("approved", 0)), ("reversed", s.get("reversed", 0)),
                ("orphaned debits", s.get("orphaned_debits")), ("double debits", s.get("double_debits")),
                ("phantom approvals", s.get("phantom_approvals")),
                ("pending reversals", s.get("pending_reversals")), ("seconds", round(self.seconds, 1))]


class _Process(LoggedProcess):
    """One possim process of the fleet; a readiness wait that fails is a ChaosError (the command's one-line error)."""

    def wait_for(self, event: str, timeout: float = 60.0) -> None:
        """Until this start of the process has logged ``event`` (a readiness line such as ``mqtt_connected``)."""
        try:
            self.wait_event(event, timeout)
        except NotReadyError as exc:
            raise ChaosError(str(exc).splitlines()[0]) from None


def _possim(*args: str) -> list[str]:
    return [*POSSIM, *args]


@contextlib.contextmanager
def _fleet(folder: Path, plan: ChaosPlan) -> Iterator[tuple[Broker, _Process, list[_Process]]]:
    """Broker, acquirer and terminals, all stopped on the way out whatever happens."""
    scenario = folder / "terminal.toml"
    data = {**SCENARIO, "transactions": [{**SCENARIO["transactions"][0], "count": plan.sales}]}
    scenario.write_text(tomli_w.dumps(data), encoding="utf-8")
    tids = [f"CHAOS{i:03d}" for i in range(1, plan.terminals + 1)]
    security = ["--insecure"]
    accounts = None
    if not plan.insecure:
        key_file = folder / "keys.json"
        ring = keys.add_terminals(key_file, tids) if key_file.exists() else keys.create_key_file(key_file, tids)
        security, accounts = ["--keys", str(key_file)], ring.accounts()
    broker = Broker(state_dir=folder / "broker", accounts=accounts)
    broker.start()
    acquirer = _Process("acquirer", _possim("acquirer", "--broker", broker.url, "--ledger",
                                            str(folder / "ledger.db"), *security), folder / "acquirer.log")
    terminals = [_Process(tid, _possim("terminal", str(scenario), "--broker", broker.url, "--tid", tid,
                                       "--journal", str(folder / f"{tid}.db"), "--policy", "reversal", *security),
                          folder / f"{tid}.log")
                 for tid in tids]
    try:
        yield broker, acquirer, terminals
    finally:
        for proc in [*terminals, acquirer]:
            proc.stop(10.0)
        broker.close()


def run_chaos(folder: Path, plan: ChaosPlan, progress: Callable[..., None] = lambda *_, **__: None) -> ChaosReport:
    """Run the fleet, kill at random, let it settle, judge it. ``folder`` keeps every file for a post-mortem.

    ``progress(message, **values)`` hears of each kill (``message`` is an English template
    for ``str.format``, so a caller may translate it first). Ctrl-C (``KeyboardInterrupt``)
    stops every process and judges what was written until then.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(plan.seed)
    report = ChaosReport()
    started = time.monotonic()
    terminals: list[_Process] = []
    try:
        with _fleet(folder, plan) as (broker, acquirer, terminals):
            acquirer.start()
            acquirer.wait_for("mqtt_connected")
            for term in terminals:
                term.start()
            kinds = ["acquirer"] * plan.acquirer_kills + ["terminal"] * plan.terminal_kills + \
                ["broker"] * plan.broker_kills
            rng.shuffle(kinds)
            for n, kind in enumerate(kinds, 1):
                time.sleep(rng.uniform(0.05, 0.6))  # the random moment of the next kill (not a synchronization)
                _kill_and_restart(kind, rng, broker, acquirer, terminals)
                report.kills[kind] += 1
                progress("kill {n}/{total}: {kind}", n=n, total=len(kinds), kind=kind)
            _settle(acquirer, terminals, plan.settle_timeout, progress)
            acquirer.stop()
    except KeyboardInterrupt:
        report.interrupted = True  # _fleet has stopped every process on the way out
    ledger = folder / "ledger.db"
    if ledger.exists():
        report.summary = judge(ledger, [folder / f"{t.name}.db" for t in terminals])
    report.seconds = time.monotonic() - started
    return report


def _kill_and_restart(kind: str, rng: random.Random, broker: Broker, acquirer: _Process,
                      terminals: list[_Process]) -> None:
    if kind == "broker":
        broker.stop(kill=True)
        broker.start()
    elif kind == "acquirer":
        acquirer.kill()
        acquirer.start()
        acquirer.wait_for("mqtt_connected")
    else:
        alive = [t for t in terminals if t.running] or terminals
        victim = rng.choice(alive)
        victim.kill()
        victim.start()


def _settle(acquirer: _Process, terminals: list[_Process], timeout: float, progress: Callable[..., None]) -> None:
    """Every terminal runs until it has nothing left to do (exit 0); one that ends otherwise is restarted."""
    deadline = time.monotonic() + timeout
    pending = list(terminals)
    while pending:
        if time.monotonic() > deadline:
            raise ChaosError(f"{len(pending)} terminal(s) did not settle within {timeout:g}s: "
                             f"{', '.join(t.name for t in pending)}")
        if not acquirer.running:
            acquirer.start()
        for term in list(pending):
            if term.proc is not None and term.proc.poll() is not None:
                if term.proc.returncode == 0:
                    pending.remove(term)
                else:
                    term.start()  # it gave up before its work was done: resume from the journal
        time.sleep(0.05)
    progress("every terminal settled")


def judge(ledger: Path, journals: list[Path]) -> dict[str, Any]:
    """The checker's verdict over every terminal's journal against the one shared ledger (as ``possim check``)."""
    from possim.acquirer_sim.ledger import read_ledger
    from possim.judging.checker import check
    from possim.pos_sim.journal import read_journal

    conns = [read_journal(path) for path in journals if path.exists()]
    ledger_conn = read_ledger(ledger)
    try:
        verdict = check(conns, ledger_conn)
    finally:
        for conn in [*conns, ledger_conn]:
            conn.close()
    return {**verdict.counts, "settled": verdict.settled}


def print_table(report: ChaosReport, out: IO[str], tr: Callable[[str], str] = str) -> None:
    """The chaos table, one measure a line (``tr`` translates the labels)."""
    if report.interrupted:
        out.write(tr("chaos interrupted: the kills so far, and the money as the processes left it") + "\n")
    for label, value in report.rows():
        out.write(f"{tr(label):>20}: {value}\n")

"""Property-based fault injection: generate schedules, find a violation, shrink it, write it out.

Schedules come from ``possim.fuzzing.fuzz_schedules`` (the space of ``pos_sim.testing.schedules``
with forgeries, in fewer Hypothesis choices) or, with ``wallet``, from
``pos_sim.testing.wallet_schedules`` with forgeries (wallet ones among them); they run in
virtual time and are judged by the checker. ``hypothesis.find`` shrinks the first violation
to a minimal schedule, which is written as a scenario that ``possim run`` reproduces exactly. Its ``[expect]`` holds the
invariants the fuzzer checks (no orphaned or double debit, no phantom approval, no customer
loss...), so the scenario is a regression test: ``possim run`` fails on it while the bug is
there and passes once it is fixed.

Hypothesis keeps files of its own (a cache of constants, its example database); possim keeps
them in a cache folder (:func:`storage_home`), never in the folder it is run from.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import NoSuchExample
from hypothesis.strategies import SearchStrategy

from possim.fuzzing.fuzz_schedules import card_schedules
from possim.judging.checker import Verdict
from possim.judging.coverage import tally
from possim.money.money import format_amount
from possim.pos_sim.policies import get_policy
from possim.pos_sim.testing import wallet_schedules
from possim.protocol.faults import Forgery, Rule
from possim.scenario import from_dict
from possim.simulation import RunResult, simulate


def violations(result: RunResult) -> list[str]:
    """The invariants this run breaks; a policy that arms a reversal before every original has
    promised to settle it, so it must also leave no reversal pending."""
    c = result.verdict.counts
    broken = [k for k in ("orphaned_debits", "double_debits", "phantom_approvals") if c[k]]
    if get_policy(result.policy).arms_reversal and c["pending_reversals"]:
        broken.append("pending_reversals")
    if not result.quiescent:
        broken.append("no_quiescence")
    return broken


@dataclass
class FuzzResult:
    policy: str
    examples: int = 0
    coverage: Counter[str] = field(default_factory=Counter)
    schedule: dict[str, Any] | None = None
    result: RunResult | None = None
    #: The situation groups (``possim.judging.coverage.GROUPS``) the drawn schedules can reach.
    groups: tuple[str, ...] = ("card", "forgery")
    #: Stopped by Ctrl-C: ``examples`` is what ran; ``schedule`` the smallest violation met so far, if any.
    interrupted: bool = False


def storage_home() -> Path:
    """Where Hypothesis keeps its files for possim: ``$POSSIM_HYPOTHESIS_DIR``, else Hypothesis's own
    ``$HYPOTHESIS_STORAGE_DIRECTORY``, else ``$XDG_CACHE_HOME/possim/hypothesis`` (``~/.cache`` when unset).

    Why: Hypothesis writes ``.hypothesis/`` into the current folder by default, so ``possim fuzz``
    run anywhere (a home folder, a project) would leave it there.
    """
    for name in ("POSSIM_HYPOTHESIS_DIR", "HYPOTHESIS_STORAGE_DIRECTORY"):
        if os.environ.get(name):
            return Path(os.environ[name])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "possim" / "hypothesis"


@contextlib.contextmanager
def storage_at_home() -> Iterator[Path]:
    """Hypothesis keeps its files in :func:`storage_home` while ``possim fuzz`` searches; the
    folder it used before is restored after, so a process that runs the command in-process (a
    test suite calling ``possim.cli.main``) keeps its own."""
    from hypothesis import configuration

    before = getattr(configuration, "__hypothesis_home_directory", None)
    home = storage_home()
    set_hypothesis_home_dir(home)
    try:
        yield home
    finally:
        set_hypothesis_home_dir(before)


def strategy(max_transactions: int, min_transactions: int, wallet: bool) -> SearchStrategy[dict[str, Any]]:
    """What the fuzzer draws: card payments with forgeries among the faults, or (``wallet``) QR
    wallet payments in the mix, with wallet and card forgeries among the faults. One place, so
    parallel workers draw exactly what ``fuzz`` does."""
    if wallet:
        return wallet_schedules(max_transactions=min(max_transactions, 3), forgeries=True)
    return card_schedules(max_transactions, min_transactions)


def groups_for(wallet: bool) -> tuple[str, ...]:
    """The coverage groups (``possim.judging.coverage.GROUPS``) that ``strategy`` can reach."""
    return ("card", "wallet", "forgery") if wallet else ("card", "forgery")


class Stopped(BaseException):
    """Raised inside a search once a search beside it found a violation.

    A ``BaseException``, so Hypothesis lets it through at once instead of treating it as
    the property failing.
    """


@dataclass(frozen=True)
class Beside:
    """How a search shares its work with searches in other processes (``possim.fuzzing.fuzz_workers``):
    ``stopped`` says, before each new example, whether another search already found a
    violation; ``found`` is told the moment this one finds its first."""

    stopped: Callable[[], bool]
    found: Callable[[], None]


@contextlib.contextmanager
def hypothesis_constants_only() -> Iterator[None]:
    """Search with Hypothesis's own constants, never with those of whatever the process imported.

    Why: Hypothesis sometimes draws a "local constant" collected from every non-library module in
    ``sys.modules``. The same ``--seed`` then searched differently in ``possim fuzz`` and inside a
    test suite that had imported more modules, so a violation found in one was missed in the
    other. While possim searches, the local pool is empty (and the cache of permitted constants
    is cleared on the way in and out), so a seed means one search wherever it runs.
    """
    try:
        from hypothesis.internal.conjecture import providers
        original = providers._get_local_constants
    except (ImportError, AttributeError):  # another Hypothesis layout: leave it as it is
        yield
        return
    from hypothesis.internal.constants_ast import Constants

    empty = Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()


@contextlib.contextmanager
def lighter_gc() -> Iterator[None]:
    """Collect garbage less often while searching, and leave what exists at the start alone.

    Why: a search keeps Hypothesis's record of every choice alive beside all the imported
    code, and each run builds thousands of short-lived objects, so the cyclic collector kept
    walking a large long-lived heap: 0.4-0.8 ms of every 5-6 ms example. Freezing the objects
    alive at the start takes them out of its way (``gc.freeze``; forked workers inherit it),
    and a higher first threshold runs it less often. Settings are restored on the way out.
    """
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 5000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:
            gc.unfreeze()


def fuzz(policy: str, examples: int, seed: int, progress: Callable[[int], None] | None = None,
         max_transactions: int = 5, min_transactions: int = 1, wallet: bool = False,
         beside: Beside | None = None) -> FuzzResult:
    """Run up to ``examples`` generated schedules; return the shrunk violation if one is found.

    ``wallet``: QR wallet payments in the mix (``pos_sim.testing.wallet_schedules``).
    ``beside``: the search runs beside others; it ends early, with no violation, once
    ``beside.stopped()`` says so. Ctrl-C (``KeyboardInterrupt``) ends it too, with
    ``interrupted`` set and the smallest violating schedule met so far, if any.
    """
    out = FuzzResult(policy, groups=groups_for(wallet))
    searching = [True]
    failing: list[dict[str, Any]] = []  # the last violating schedule met: the smallest so far while shrinking

    def violated(schedule: dict[str, Any]) -> bool:
        if searching[0] and beside is not None and beside.stopped():
            raise Stopped
        result = simulate(from_dict(schedule), policy)
        if searching[0]:
            out.examples += 1
            tally(out.coverage, result.trace.records)
            if progress:
                progress(out.examples)
        bad = bool(violations(result))
        if bad:
            failing[:] = [schedule]
        if bad and searching[0]:
            searching[0] = False
            if beside is not None:
                beside.found()
        return bad

    config = settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
    try:
        with lighter_gc(), hypothesis_constants_only():
            schedule = find(strategy(max_transactions, min_transactions, wallet), violated, settings=config,
                            random=random.Random(seed))
    except (NoSuchExample, Stopped):
        return out
    except KeyboardInterrupt:
        out.interrupted = True
        if not failing:
            return out
        schedule = failing[0]
    out.schedule = schedule
    out.result = simulate(from_dict(schedule), policy)
    return out


def fixed_expectations(policy: str) -> dict[str, Any]:
    """What a policy that keeps the fuzzer's invariants leaves behind: no orphaned or double debit,
    no phantom approval, no customer loss, and (for a policy that arms a reversal before every
    original) no reversal still pending."""
    expect: dict[str, Any] = {"orphaned_debits": 0, "double_debits": 0, "phantom_approvals": 0}
    if get_policy(policy).arms_reversal:
        expect["pending_reversals"] = 0
    return expect | {"customer_loss": "0.00"}


def scenario_document(schedule: dict[str, Any], result: RunResult) -> dict[str, Any]:
    """The shrunk schedule as a scenario: explained, and expecting the invariants it broke to hold.

    The ``[expect.<policy>]`` table says what the policy does once fixed (every invariant the
    fuzzer checks), never the damage found: ``possim run`` on it exits 1 while the bug exists
    and 0 once it is fixed, so it can be kept as a regression test. It holds the policy it was
    found under only: ``none`` is meant to fail, and other policies are not judged by it.
    """
    doc = {**schedule, "title": f"Minimal failing schedule under policy {result.policy}",
           "description": explain(schedule, result), "policy": result.policy,
           "expect": {result.policy: fixed_expectations(result.policy)}}
    return {k: v for k, v in doc.items() if v not in ([], {})} | {"host": _compact(schedule.get("host", {}))}


def to_toml(document: dict[str, Any]) -> str:
    return tomli_w.dumps(document, multiline_strings=True)


def broken(result: RunResult) -> str:
    """The invariants a run broke, with what the checker counted: ``orphaned_debits = 1, customer_loss = 25.00``."""
    summary = result.verdict.summary()
    parts = [f"{name} = {summary[name]}" for name in violations(result) if name in summary]
    parts += ["no quiescence"] if not result.quiescent else []
    if result.verdict.customer_loss:
        parts.append(f"customer_loss = {summary['customer_loss']}")
    return ", ".join(parts)


def explain(schedule: dict[str, Any], result: RunResult) -> str:
    """One paragraph in domain words: which faults, what the terminal believed, what the ledger holds."""
    faults = [Rule(f["action"], f["direction"], f["mti"], f["nth"], f.get("delay", 0.0)).describe()
              for f in schedule.get("faults", [])]
    faults += [f"partition {p['direction']} from {p['start']:g}s to {p['end']:g}s"
               for p in schedule.get("partitions", [])]
    faults += [f"host crash after committing {_nth(c['nth'])} {c['mti']}, down {c['down_for']:g}s"
               for c in schedule.get("host", {}).get("crash_after_commit", [])]
    faults += [f"terminal power loss at {p['at']:g}s for {p['down_for']:g}s" for p in schedule.get("power_losses", [])]
    faults += [Forgery(f["at"], f["kind"], f.get("target", 1), f.get("mac", "wrong")).describe()
               for f in schedule.get("forgeries", [])]
    n = len(schedule["transactions"])
    text = (f"Under policy '{result.policy}', {n} transaction{'s' if n > 1 else ''} ran with "
            f"{len(faults)} fault{'s' if len(faults) != 1 else ''}: {'; '.join(faults) or 'none'}. ")
    return text + " ".join(_finding_sentence(f.as_dict(), result.verdict) for f in result.verdict.findings
                           if f.finding != "open_hold") + _moral(result)


def _finding_sentence(f: dict[str, Any], verdict: Verdict) -> str:
    txn = f"transaction {f['txn']}" if f["txn"] else f"stan {f['stan']}"
    return {
        "orphaned_debit": f"The host's ledger holds a debit of {f['amount']} for {txn}, but the terminal's journal "
                          "does not record it as approved: the customer paid for a sale the terminal reported as "
                          "failed (an orphaned debit).",
        "double_debit": f"The customer was charged twice for the basket of {txn} (a double debit).",
        "phantom_approval": f"The terminal approved {txn} for {f['amount']}, but the host holds no money for it: "
                            "goods left the shop unpaid (a phantom approval).",
        "pending_reversal": f"The reversal of {txn} was never acknowledged and is still pending.",
        "orphaned_wallet_charge": f"The wallet charged the customer {f['amount']} for {txn} (order {f['stan']}), but "
                                  "the terminal's journal does not record the sale as approved: the customer's phone "
                                  "says paid, the merchant's screen says failed.",
        "double_wallet_charge": f"The wallet charged the order of {txn} more than once.",
        "phantom_wallet_approval": f"The terminal approved {txn} for {f['amount']}, but the wallet charged nothing.",
        "pending_cancel": f"The cancel of wallet order {f['stan']} ({txn}) was never answered and is still owed.",
    }.get(f["finding"], f"{f['finding']} on {txn}.")


def _moral(result: RunResult) -> str:
    loss = result.verdict.customer_loss
    return f" Customer money lost: {format_amount(loss)}." if loss else ""


def _compact(host: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in host.items() if v not in ([], {})}


def _nth(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")

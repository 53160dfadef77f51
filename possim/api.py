"""possim's Python API for other people's test suites: the functions ``import possim`` offers.

``possim/__init__.py`` loads this module on first use of one of its names (``possim.simulate``),
so ``import possim`` and the command line stay as fast to start as before. Everything here is a
thin, documented door onto the modules that do the work (``scenario``, ``simulation``,
``checker``, ``pos_sim.testing``): one place to learn, the same behaviour as the CLI.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from possim.judging.checker import Verdict
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.running.rig import RunResult
from possim.scenario import Scenario, ScenarioError

__all__ = ["RunResult", "Scenario", "ScenarioError", "ScenarioLike", "Verdict", "check", "compare", "load_scenario",
           "save_schedule", "simulate"]

#: What ``simulate`` and ``compare`` take as a scenario: a loaded one, a file or shipped name, or a
#: scenario as data (a schedule drawn from :func:`schedules`).
ScenarioLike = Scenario | str | Path | Mapping[str, Any]


def load_scenario(name_or_path: str | Path, *, lang: str | None = None) -> Scenario:
    """A validated scenario from a TOML file, or a shipped one by name (``"response-lost"``).

    Use it to run the same scenario several times or under several policies without reading
    the file again. A bad file raises :class:`ScenarioError` whose ``str()`` is one line naming
    the file, the key and what is wrong (the CLI's exit-2 message). ``lang`` sets the scenario
    in its audience's market as ``possim run --lang`` does (``"zh"``: yuan and UnionPay test
    cards unless the file pins them; docs/glossary.md, "Market"); the default is
    ``$POSSIM_LANG``, else English, which keeps the scenario as written.
    """
    from possim.scenario import load

    return load(name_or_path).in_market(_lang(lang))


def _lang(lang: str | None) -> str:
    """``lang``, else ``$POSSIM_LANG``, else English, as the command line's ``--lang``; an unknown one is a
    :class:`ScenarioError` (one line) before anything runs."""
    from possim.i18n import LanguageError, resolve

    try:
        return resolve(lang)
    except LanguageError as exc:
        raise ScenarioError(str(exc)) from None


def _scenario(scenario: ScenarioLike, lang: str | None) -> Scenario:
    """Any scenario the API takes, set in ``lang``'s market (one already set in a market keeps it)."""
    if isinstance(scenario, Scenario):
        return scenario.in_market(_lang(lang))
    if isinstance(scenario, Mapping):
        from possim.scenario import from_dict

        return from_dict(dict(scenario)).in_market(_lang(lang))
    return load_scenario(scenario, lang=lang)


def simulate(scenario: ScenarioLike, policy: str | None = None, *, seed: int | None = None,
             rng: random.Random | None = None, journal_path: str | Path | None = None,
             ledger_path: str | Path | None = None, lang: str | None = None, trace: bool = True) -> RunResult:
    """Run one terminal through ``scenario`` under ``policy`` in virtual time and judge it.

    Why: a 30-second timeout scenario runs in milliseconds and repeats byte for byte, so a test
    can assert on the verdict (``result.verdict.counts["orphaned_debits"]``) without a network.
    ``scenario`` is a :class:`Scenario`, a file or shipped name, or a dict such as a schedule from
    :func:`schedules`; ``policy`` defaults to the scenario's. ``seed`` replaces the scenario's
    seed; ``rng`` replaces the random source altogether (pass Hypothesis's ``st.randoms()`` so
    random link faults shrink). ``journal_path`` and ``ledger_path`` keep the run's SQLite files,
    which :func:`check` judges again. ``lang`` (default ``$POSSIM_LANG``, else English) sets the
    scenario in its market as :func:`load_scenario` does: under ``"zh"`` the terminal sends CNY (156)
    and UnionPay test cards. ``trace=False``: keep no trace (``result.trace.count`` still counts its
    events by name), for a long run whose test asserts on the verdict only.
    """
    from possim.scenario import check_policy
    from possim.simulation import simulate as run

    if policy is not None:
        check_policy(policy)
    return run(_scenario(scenario, lang), policy, seed, None, ledger_path, journal_path, rng, trace=trace)


def compare(scenario: ScenarioLike, policies: Iterable[str] | None = None, *, seed: int | None = None,
            lang: str | None = None) -> dict[str, RunResult]:
    """The same scenario, with the same faults, under each policy: ``{policy: result}``.

    Use it to show that a recovery policy fixes what ``none`` breaks (``possim compare`` as data).
    An unknown policy or language raises :class:`ScenarioError` before anything runs; ``lang`` sets
    the market as in :func:`simulate`.
    """
    from possim.scenario import check_policy

    names = [check_policy(p) for p in (POLICY_REGISTRY.names() if policies is None else policies)]
    sc = _scenario(scenario, lang)
    return {name: simulate(sc, name, seed=seed, lang=lang) for name in names}


def check(journal_paths: str | Path | Iterable[str | Path], ledger_paths: str | Path | Iterable[str | Path], *,
          whole_ledger: bool = False) -> Verdict:
    """Judge SQLite files a run left: terminal journals against the host ledger(s) (``possim check``).

    Why: when terminals and the acquirer ran as processes (``possim terminal --journal``,
    ``possim acquirer --ledger``, or the pytest plugin's ``possim_acquirer``), only their files
    know what happened. Each argument is one path or several; a folder stands for every file in
    it. ``verdict.settled`` is what ``possim check`` exits 0 on. A missing file or one that is
    not a journal or ledger raises ``possim.protocol.storage.StoreError`` (one line); nothing is
    ever written to the files.
    """
    from possim.acquirer_sim.ledger import read_ledger
    from possim.judging.checker import check as judge
    from possim.judging.checker import open_journals
    from possim.pos_sim.journal import read_journal
    from possim.protocol.storage import SIDECARS

    journals: list[sqlite3.Connection] = []
    ledgers: list[sqlite3.Connection] = []
    try:
        for path in _paths(journal_paths):
            journals.extend(open_journals(path) if path.is_dir() else [read_journal(path)])
        for path in _paths(ledger_paths):
            files = (sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")
                            and not f.name.endswith(SIDECARS)) if path.is_dir() else [path])
            ledgers.extend(read_ledger(file) for file in files)
        return judge(journals, ledgers, whole_ledger=whole_ledger)
    finally:
        for conn in journals + ledgers:
            conn.close()


def _paths(given: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(given, str | Path):
        return [Path(given)]
    return [Path(p) for p in given]


def save_schedule(schedule: Mapping[str, Any], path: str | Path) -> Path:
    """Write a scenario given as data (a schedule drawn from :func:`schedules`) as a TOML file.

    Why: a failing Hypothesis example is worth keeping as a regression scenario; the saved file
    runs with ``possim run FILE`` and loads with :func:`load_scenario`. Returns the path.
    """
    import tomli_w

    out = Path(path)
    out.write_text(tomli_w.dumps(dict(schedule), multiline_strings=True), encoding="utf-8")
    return out

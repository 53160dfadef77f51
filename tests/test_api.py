"""``import possim`` as a library: every public name is there, documented, and works on real runs.

The names load lazily, so ``import possim`` itself must import none of possim's modules: the
command line's start time does not grow with the API. That is checked as a fact (which modules a
fresh interpreter holds), not as a duration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings

import possim
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.scenario import ScenarioError

PUBLIC = {"load_scenario", "simulate", "compare", "check", "POLICIES", "schedules", "link_faults", "save_schedule"}


def test_every_public_name_is_listed_shown_and_documented() -> None:
    assert set(possim.__all__) == PUBLIC
    assert set(dir(possim)) >= PUBLIC
    for name in PUBLIC - {"POLICIES"}:
        doc = getattr(possim, name).__doc__
        assert doc and len(doc.split()) >= 8, f"possim.{name} says too little about why to use it"
    assert POLICY_REGISTRY.names() == possim.POLICIES
    assert set(possim.POLICIES) >= {"none", "reversal", "query", "query-then-reversal"}
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = possim.no_such_name  # type: ignore[attr-defined]


def test_import_possim_loads_none_of_its_modules() -> None:
    """Nothing but the package itself: the API's modules (pydantic, Hypothesis...) load on first use."""
    code = ("import sys; before = set(sys.modules); import possim; "
            "print(sorted(m for m in set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "['possim']"


def test_a_shipped_scenario_runs_by_name_and_a_recovery_policy_fixes_it() -> None:
    scenario = possim.load_scenario("response-lost")
    assert possim.simulate(scenario, "none").verdict.counts["orphaned_debits"] == 1
    assert possim.simulate("response-lost", "reversal", seed=7).verdict.counts["orphaned_debits"] == 0


def test_compare_runs_each_policy_on_the_same_faults() -> None:
    results = possim.compare("response-lost", ["none", "reversal"])
    assert list(results) == ["none", "reversal"]
    assert [r.verdict.counts["orphaned_debits"] for r in results.values()] == [1, 0]
    assert {r.seed for r in results.values()} == {results["none"].seed}


def test_bad_names_raise_one_line_errors_before_anything_runs() -> None:
    with pytest.raises(ScenarioError, match="no such scenario file or shipped scenario 'respons-lost'") as caught:
        possim.load_scenario("respons-lost")
    assert "\n" not in str(caught.value) and "response-lost" in str(caught.value)
    with pytest.raises(ScenarioError, match="unknown policy 'refund'"):
        possim.compare("response-lost", ["none", "refund"])
    with pytest.raises(ScenarioError, match="unknown policy 'refund'"):
        possim.simulate("response-lost", "refund")


def test_check_judges_the_files_a_run_wrote_as_possim_check_does(tmp_path: Path) -> None:
    journal, ledger = tmp_path / "journal.db", tmp_path / "ledger.db"
    ran = subprocess.run([sys.executable, "-m", "possim", "run", "response-lost", "--policy", "none", "--no-timeline",
                          "--journal", str(journal), "--ledger", str(ledger)], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr  # the file's [expect] says none leaves the orphaned debit
    verdict = possim.check(journal, [ledger])
    assert verdict.counts["orphaned_debits"] == 1 and not verdict.settled
    cli = subprocess.run([sys.executable, "-m", "possim", "check", "--journal", str(journal), "--ledger", str(ledger),
                          "--json"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1, cli.stderr
    assert {k: v for k, v in json.loads(cli.stdout).items() if k in verdict.summary()} == verdict.summary()
    assert possim.check([tmp_path / "journal.db"], tmp_path / "ledger.db").summary() == verdict.summary()


def test_check_judges_a_folder_of_journals(tmp_path: Path) -> None:
    (tmp_path / "journals").mkdir()
    possim.simulate("response-lost", "reversal", journal_path=tmp_path / "journals" / "t1.db",
                    ledger_path=tmp_path / "ledger.db")
    verdict = possim.check(tmp_path / "journals", tmp_path / "ledger.db")
    assert verdict.settled and verdict.counts["transactions"] >= 1


@settings(max_examples=5)
@given(possim.schedules(max_transactions=2))
def test_a_saved_schedule_loads_as_the_scenario_it_printed(schedule: dict[str, object]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:  # a function-scoped tmp_path is shared by every example
        saved = possim.save_schedule(schedule, Path(folder) / "found.toml")
        assert saved.read_text(encoding="utf-8") in repr(schedule)  # the file is what a failure prints
        from_file = possim.simulate(possim.load_scenario(saved), "reversal")
    assert from_file.verdict.summary() == possim.simulate(schedule, "reversal").verdict.summary()


def _sent(result: possim.RunResult) -> list[tuple[str | None, str | None]]:
    """(currency, card) of every 0200 the host received, decoded from the bytes it was handed."""
    from possim.protocol import codec
    from possim.protocol import events as ev

    return [(m.currency, m.pan) for m in (codec.decode(bytes.fromhex(s.event.data)) for s in result.trace.records
                                          if isinstance(s.event, ev.MsgReceived) and s.event.side == "host"
                                          and s.event.mti == "0200" and s.event.data)]


def test_lang_sets_the_market_as_possim_run_lang_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chinese: yuan and UnionPay test cards on the wire, whether ``lang`` is given or ``POSSIM_LANG`` says it."""
    yuan = [("156", "6212345678901232")]
    monkeypatch.delenv("POSSIM_LANG", raising=False)
    assert _sent(possim.simulate("response-lost", "none")) == [("978", "4000000000000002")]
    assert _sent(possim.simulate("response-lost", "none", lang="zh")) == yuan
    assert possim.load_scenario("response-lost", lang="zh").model.terminal.currency == "156"
    schedule = {"title": "one sale", "description": "d", "transactions": [{"amount": "25.00"}]}
    assert _sent(possim.simulate(schedule, lang="zh")) == yuan
    monkeypatch.setenv("POSSIM_LANG", "zh_CN.UTF-8")
    assert _sent(possim.simulate(possim.load_scenario("response-lost"), "none")) == yuan
    assert {p: _sent(r) for p, r in possim.compare("response-lost", ["none", "reversal"]).items()} == {
        "none": yuan, "reversal": yuan}
    assert _sent(possim.simulate("response-lost", "none", lang="en")) == [("978", "4000000000000002")]
    with pytest.raises(ScenarioError, match="unknown language 'fr'") as caught:
        possim.simulate("response-lost", lang="fr")
    assert "\n" not in str(caught.value)

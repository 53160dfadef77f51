"""Profiles (``protocol.profiles``): one object per scheme, asked instead of its name.

Three promises: a terminal configuration built anywhere gets its profile's defaults; no module
outside the profile classes (and ``protocol.cup``, the CUP wire format itself) branches on a
profile or dialect name; and a new scheme is one class registered in a test, run through the CLI
with no edit to any possim module.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import possim.cli
from possim.pos_sim.config import TerminalConfig
from possim.protocol import dialects
from possim.protocol.profiles import REGISTRY, CupProfile, Profile, get_profile

ROOT = Path(__file__).resolve().parent.parent.parent
#: The source folders of the package (``possim/`` holds links to the other three: skipped there).
SOURCES = ("possim", "pos_sim", "acquirer_sim", "protocol")
#: Where naming a scheme is the point: the profile classes, and the CUP wire format.
EXEMPT = frozenset({"protocol/profiles.py", "protocol/cup.py"})
#: Words that say "profile or dialect" in a variable or attribute name.
_SCHEME_WORDS = ("profile", "dialect")


# -- (a) defaults wherever a configuration is built --------------------------------------------

def test_a_terminal_config_built_directly_gets_its_profiles_defaults() -> None:
    cup = TerminalConfig(profile="cup")
    assert (cup.currency, cup.reversal_attempts) == ("156", 3)
    iso = TerminalConfig()
    assert (iso.currency, iso.reversal_attempts) == ("978", 6)


def test_values_named_in_the_config_win_over_the_profiles() -> None:
    config = TerminalConfig(profile="cup", currency="978", reversal_attempts=5)
    assert (config.currency, config.reversal_attempts) == ("978", 5)


def test_an_unknown_profile_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"^unknown profile 'visa' \(choose from iso, cup\)$"):
        TerminalConfig(profile="visa")


def test_each_profile_speaks_a_registered_dialect() -> None:
    for profile in REGISTRY.values():
        assert profile.wire is dialects.get(profile.dialect)
    assert get_profile("cup").wire.framing == dialects.get("cup").framing


# -- (b) no branch on a scheme's name outside the profile classes ------------------------------

def _names() -> frozenset[str]:
    """Every profile and dialect name, and ``cup`` itself."""
    return frozenset({"cup", *REGISTRY.names(), *dialects.DIALECTS})


def _ident(node: ast.expr) -> str:
    """The last name of ``x``, ``a.b.x`` or ``x()``; '' for anything else."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _literals(node: ast.expr) -> Iterator[str]:
    """The string constants of ``node``: itself, or the items of a tuple, list or set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            yield from _literals(item)


def scheme_branches(source: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """(line, why) for each place ``source`` decides by a scheme's name: a comparison with a
    profile or dialect name (``== "cup"``, ``in ("iso", "cup")``, a ``match`` case), a comparison
    of something called profile or dialect with a string (``profile == x``), or a ``cup`` flag
    (``config.cup``, ``def cup``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = sorted({s for side in sides for s in _literals(side) if s in names})
            if named:
                found.append((node.lineno, f"compares with {', '.join(named)}"))
            elif any(w in _ident(side).lower() for side in sides for w in _SCHEME_WORDS) \
                    and any(list(_literals(side)) for side in sides):
                found.append((node.lineno, "compares a profile or dialect with a string"))
        elif isinstance(node, ast.MatchValue) and any(s in names for s in _literals(node.value)):
            found.append((node.lineno, "matches a scheme's name"))
        elif isinstance(node, ast.Attribute) and node.attr == "cup":
            found.append((node.lineno, "reads a .cup flag"))
        elif isinstance(node, ast.FunctionDef) and node.name == "cup":
            found.append((node.lineno, "defines a cup flag"))
    return found


def _sources() -> Iterator[Path]:
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not any(p.is_symlink() for p in (path, *path.parents) if ROOT in p.parents):
                yield path


def test_no_module_branches_on_a_profile_or_dialect_name() -> None:
    names, offenders, scanned = _names(), [], 0
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        scanned += 1
        if rel in EXEMPT:
            continue
        offenders += [f"{rel}:{line}: {why}" for line, why in scheme_branches(path.read_text("utf-8"), names)]
    assert scanned > 100, "the scan read the package's sources"
    assert offenders == [], "ask the profile (protocol.profiles) instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line", [
    'if profile == "cup":\n    pass',
    'x = "156" if config.profile == "cup" else "978"',
    'if dialect != "iso":\n    pass',
    'ok = seen.profile in ("iso", "cup")',
    'if self.config.cup:\n    pass',
    'if "cup" == name:\n    pass',
    'if self.profile.name == "toy":\n    pass',
    'match profile:\n    case "cup":\n        pass',
    'class H:\n    @property\n    def cup(self): return True',
])
def test_the_scan_finds_each_kind_of_branch(line: str) -> None:
    assert scheme_branches(line, _names() | {"toy"}), line


@pytest.mark.parametrize("line", [
    'if scheme.reversal_copies_original:\n    pass',
    'wire = get_profile("cup").wire',
    'from possim.protocol import cup\nx = cup.encode',
    'if rc == "94":\n    pass',
])
def test_the_scan_leaves_questions_to_the_profile_alone(line: str) -> None:
    assert scheme_branches(line, _names()) == []


def test_the_scan_finds_a_branch_added_to_a_real_module() -> None:
    """A module the scan passes today fails it with one branch on a dialect's name added."""
    text = (ROOT / "protocol" / "codec.py").read_text("utf-8")
    assert scheme_branches(text, _names()) == []
    assert scheme_branches(text + '\nif dialect == "cup":\n    pass\n', _names()) == [
        (text.count("\n") + 2, "compares with cup")]


# -- (c) the recipe: a scheme is one class, registered in the test, run through the CLI ---------

class ToyProfile(Profile):
    """An ISO-like scheme in dollars whose terminal gives a reversal 2 tries, then escalates."""

    name = "toy"
    currency = "840"
    reversal_attempts = 2
    escalates_after_tries = True


_EVERY_ANSWER_LOST = """
title = "Every answer is lost"
description = "The sale's answer and every reversal answer are lost on their way back."
seed = 1

[[faults]]
action = "drop"
direction = "to_terminal"
mti = "0210"
nth = 1

[[partitions]]
start = 0
end = 3600
direction = "to_terminal"

[[transactions]]
at = 0
amount = "25.00"
"""


def _run(tmp_path: Path, profile: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    """``possim run`` in-process on a scenario where no answer comes back: summary and trace."""
    scenario, trace = tmp_path / "lost.toml", tmp_path / f"{profile}.jsonl"
    scenario.write_text(_EVERY_ANSWER_LOST, encoding="utf-8")
    result = CliRunner().invoke(possim.cli.cli, ["run", str(scenario), "--profile", profile, "--policy", "reversal",
                                                 "--json", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    return json.loads(result.output), events


def _escalations(events: list[dict[str, object]]) -> list[object]:
    return [e["attempts"] for e in events if e["event"] == "reversal_escalated"]


def test_a_toy_profile_registered_in_the_test_runs_through_the_cli(tmp_path: Path) -> None:
    with REGISTRY.added(ToyProfile()):
        summary, events = _run(tmp_path, "toy")
    assert "toy" not in REGISTRY, "registered for the block only"
    assert summary["escalated"] == 1 and summary["pending_reversals"] == 0
    assert _escalations(events) == [2], "escalated after the toy's 2 tries"
    reversals = [e for e in events if e["event"] == "ledger_reversal_credited"]
    assert len(reversals) == 1 and reversals[0]["stan"] != reversals[0]["orig_stan"], "an ISO reversal: new STAN"
    started = next(e for e in events if e["event"] == "run_started")
    assert started["scenario_data"]["terminal"]["currency"] == "840"  # type: ignore[index]


def test_the_shipped_profiles_differ_where_the_toy_does(tmp_path: Path) -> None:
    """The same scenario under iso parks the reversal after 6 tries and under cup escalates after 3:
    the toy's 2 come from the toy."""
    iso, iso_events = _run(tmp_path, "iso")
    cup, cup_events = _run(tmp_path, "cup")
    assert (iso["pending_reversals"], _escalations(iso_events)) == (1, [])
    assert (cup["escalated"], _escalations(cup_events)) == (1, [CupProfile.reversal_attempts])


def test_an_unregistered_profile_is_a_usage_error() -> None:
    result = CliRunner().invoke(possim.cli.cli, ["run", "response-lost", "--profile", "toy", "--json"])
    assert result.exit_code == 2
    assert "toy" in result.output and "cup" in result.output

"""Property: whatever a scenario file says, possim answers with exit code 0, 1 or 2, never a traceback.

Files are mutations of the shipped scenarios (as written, or with every default filled in):
keys dropped, values swapped for other types, extreme and non-finite numbers, negative
values, huge counts, wrong strings, and broken TOML. The CLI runs in-process through
``possim.cli.main``, as the ``possim`` command does.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import event, given
from hypothesis import strategies as st

from possim.cli import main
from possim.scenario import load
from tests.conftest import SCENARIOS

#: One-terminal scenarios (a mutated 500-terminal fleet would take seconds per example).
SHIPPED = [p for p in sorted(SCENARIOS.glob("*.toml")) if not load(p).is_fleet]
#: Each shipped file as written and with every default filled in, so absent keys can be mutated too.
BASES: list[dict[str, Any]] = [tomllib.loads(p.read_text()) for p in SHIPPED] + [load(p).raw() for p in SHIPPED]

NUMBERS: list[Any] = [0, -1, 1, 2**63 - 1, -(2**63), 10**30, 0.0, -0.0, 1e-300, 0.5, 1e300, 1e308, -1e308,
                      math.inf, -math.inf, math.nan]
STRINGS = ["", "x", "pray", "1e30", "10000000000.00", "-1.00", "1.005", "NaN", "inf", "0200", "9999", "ü" * 8,
           "POS/0001", "lognormal", "both"]
OTHER_TYPES: list[Any] = [True, [], [1, "a"], {}, {"a": 1}, {"dist": "lognormal", "value": 1e300}]
COMMANDS = [("run", "--json"), ("run", "--no-timeline"), ("compare", "--no-timelines"), ("reconcile", "--json")]

Path_ = tuple[str | int, ...]


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key and list index in ``node``, depth first."""
    found: list[Path_] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(doc: Any, path: Path_) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The text of a scenario file: a shipped one after one to three mutations, sometimes not even TOML."""
    doc = json.loads(json.dumps(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            value = draw(st.sampled_from(NUMBERS) | st.sampled_from(STRINGS) | st.sampled_from(OTHER_TYPES)
                         | st.integers(-(2**70), 2**70) | st.floats())
            parent[path[-1]] = copy.deepcopy(value)  # a shared {"a": 1} set into itself would be a cycle
    text = tomli_w.dumps(doc)
    if draw(st.integers(0, 9)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "[", "= 1", '"""', "\x00", "[[transactions]]\n"]))
    return text


def _possim(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
    assert isinstance(code, int), code
    return code, out.getvalue(), err.getvalue()


@given(mutated(), st.sampled_from(COMMANDS))
def test_any_scenario_file_gets_an_answer_never_a_traceback(text: str, command: tuple[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutant.toml"
        path.write_text(text, encoding="utf-8")
        code, out, err = _possim(command[0], str(path), command[1])
    event(f"{command[0]} exit {code}")
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in out + err
    if code == 2:
        assert err.startswith("possim: error: ") and err.count("\n") == 1, err
    elif command == ("run", "--json"):
        assert "quiescent" in json.loads(out)


def test_the_mutations_reach_every_outcome() -> None:
    """The generator is not vacuous: shipped files pass, a dropped required key and inf are refused."""
    doc = tomllib.loads((SCENARIOS / "response-lost.toml").read_text())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.toml"
        path.write_text(tomli_w.dumps(doc))
        assert _possim("run", str(path), "--json")[0] == 0
        path.write_text(tomli_w.dumps({**doc, "transactions": [{"amount": "1.00", "at": math.inf}]}))
        assert _possim("run", str(path), "--json")[0] == 2
        path.write_text(tomli_w.dumps({k: v for k, v in doc.items() if k != "title"}))
        code, _, err = _possim("run", str(path), "--json")
        assert code == 2 and "title" in err

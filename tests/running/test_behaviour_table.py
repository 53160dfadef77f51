"""Every shipped scenario under every policy gives the same ``possim run --json`` as the stored table.

The table (tests/data/summaries.json) holds, for each scenario and policy, the exit code and the
JSON summary ``possim run NAME --policy P --json`` printed when it was recorded. Structural work on
the terminal, the host and the wiring must leave it alone; a change to any number in it is a change
of behaviour and must be deliberate: regenerate it with ``python -m tests.running.test_behaviour_table`` and
say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from possim.cli import cli
from possim.pos_sim.policies import POLICY_NAMES
from tests.conftest import SCENARIOS

TABLE = Path(__file__).parent.parent / "data" / "summaries.json"
STORED: dict[str, dict[str, object]] = json.loads(TABLE.read_text(encoding="utf-8"))


def _run(case: str) -> dict[str, object]:
    """Exit code and parsed ``--json`` output of one case, through the command line users type."""
    name, policy = case.split("/")
    result = CliRunner().invoke(cli, ["run", name, "--policy", policy, "--json"], catch_exceptions=False)
    return {"exit": result.exit_code, "summary": json.loads(result.stdout)}


@pytest.mark.parametrize("case", sorted(STORED))
def test_summary_is_unchanged(case: str) -> None:
    assert _run(case) == STORED[case]


def test_table_covers_every_shipped_scenario_and_policy() -> None:
    assert set(STORED) == {f"{p.stem}/{pol}" for p in SCENARIOS.glob("*.toml") for pol in POLICY_NAMES}


def _regenerate() -> None:
    cases = sorted(f"{p.stem}/{pol}" for p in SCENARIOS.glob("*.toml") for pol in POLICY_NAMES)
    TABLE.write_text(json.dumps({c: _run(c) for c in cases}, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _regenerate()

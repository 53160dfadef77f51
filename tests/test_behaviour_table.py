"""Every shipped scenario under every policy gives the same summary as the stored table.

The table (tests/data/summaries.json) was recorded before the seams were reworked; a change
to any number in it is a change of behaviour and must be deliberate: regenerate it with
``python -m tests.test_behaviour_table`` and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from possim.scenario import load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

TABLE = Path(__file__).parent / "data" / "summaries.json"
STORED: dict[str, dict[str, object]] = json.loads(TABLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", sorted(STORED))
def test_summary_is_unchanged(case: str) -> None:
    name, policy = case.split("/")
    got = simulate(load(SCENARIOS / f"{name}.toml"), policy).summary()
    assert got == STORED[case]


def test_table_covers_every_shipped_scenario() -> None:
    assert {c.split("/")[0] for c in STORED} >= {p.stem for p in SCENARIOS.glob("*.toml")} - NEW_SINCE_TABLE


#: Scenarios added after the table was recorded (they have their own [expect]).
NEW_SINCE_TABLE: set[str] = {"reversal-refused", "forged-reversal", "forged-approval", "statement-mismatch",
                              "reversal-escalated", "issuer-timeout", "qr-user-paying-timeout", "qr-cancel-race",
                              "qr-network-drop", "card-failed-then-qr", "merchant-chain",
                              "settlement-recovers-advice", "qr-system-error", "qr-cancel-after-midnight",
                              "transaction-limit", "backup-line"}


def _regenerate() -> None:
    from possim.pos_sim.config import POLICIES

    table = {f"{p.stem}/{pol}": simulate(load(p), pol).summary()
             for p in sorted(SCENARIOS.glob("*.toml")) for pol in POLICIES}
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _regenerate()

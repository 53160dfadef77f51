"""The trainer's demo: every act runs, is narrated, paced, and ends with the money outcome."""

from __future__ import annotations

import io

from rich.console import Console

from possim.demo import ACTS, run_demo
from tests.conftest import SCENARIOS


def test_demo_walks_every_act_with_the_requested_pace() -> None:
    out = io.StringIO()
    pauses: list[float] = []
    run_demo(Console(file=out, width=160, no_color=True), SCENARIOS, 0.25, pauses.append)
    text = out.getvalue()
    for _, title, _, _ in ACTS:
        assert title in text
    assert text.count("Without recovery:") == len(ACTS)
    assert "customer loses 25.00" in text and "customer loses 49.90" in text
    assert "X 0210 LOST" in text and "TIMEOUT: no answer in time" in text
    assert len(pauses) > 30 and set(pauses) == {0.25, 0.75}

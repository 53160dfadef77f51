"""The trainer's demo: every act runs, is narrated, paced, and ends with the money outcome."""

from __future__ import annotations

import io

from rich.console import Console

from possim.views.demo import ACTS, run_demo
from tests.conftest import SCENARIOS


def _demo(lang: str = "en", width: int = 100) -> tuple[str, list[float]]:
    out = io.StringIO()
    pauses: list[float] = []
    run_demo(Console(file=out, width=width, no_color=True), SCENARIOS, 0.25, pauses.append, lang)
    return out.getvalue(), pauses


def test_demo_walks_every_act_with_the_requested_pace() -> None:
    text, pauses = _demo()
    for act in ACTS:
        assert act.title in text and act.fix.split(";")[0][:40] in " ".join(text.split())
    assert "The customer was charged €25.00 and the terminal said TIMEOUT - PAYMENT FAILED." in text
    assert "charged €49.90 more than the purchase" in text
    assert "X 0210 LOST" in text and "TIMEOUT: no answer in time" in text
    assert len(pauses) > 30 and set(pauses) == {0.25, 0.75}


def test_each_act_plays_what_its_narration_says() -> None:
    text, _ = _demo()
    act3 = text[text.index(ACTS[2].title):text.index(ACTS[3].title)]
    assert "under policy reversal" in act3
    assert act3.count("-> 0400") + act3.count("-> 0401") >= 3  # reversals are sent, and lost
    assert text.count("same faults, seed") == len(ACTS)  # one comparison per act, none twice


def test_demo_in_chinese_uses_the_audience_words() -> None:
    text, _ = _demo("zh")
    assert "第一幕" in text and "单边账" in text and "冲正" in text and "交易超时" in text
    assert "Without recovery" not in text

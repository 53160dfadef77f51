"""Per-card limits: a sale past the card's amount is answered 61, past its number of sales 65,
and a refused sale books nothing, so no policy has anything to reverse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from possim.i18n import Tr
from possim.pos_sim.config import POLICIES
from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol.messages import Message
from possim.scenario import load
from possim.simulation import simulate
from possim.views.lesson import limit_refusals, point
from tests.conftest import SCENARIOS
from tests.helpers import new_host, replies

PAN = "4000000000000002"


def sale(stan: str, amount: int) -> bytes:
    return codec.encode(Message(mti="0200", stan=stan, transmission=f"11251000{stan[-2:]}", tid="POS00001",
                                mid="MERCHANT0000001", pan=PAN, processing_code="000000", amount=amount,
                                currency="978"))


def answer(host: object, data: bytes) -> str:
    return str(codec.decode(replies(host.receive(0.0, data))[0].data).response_code)  # type: ignore[attr-defined]


def test_the_amount_limit_counts_what_the_card_still_has_taken() -> None:
    host = new_host(card_amount_limit=10_000)
    assert answer(host, sale("000001", 6_000)) == "00"
    assert answer(host, sale("000002", 5_000)) == "61"  # 6000 + 5000 > 10000
    assert answer(host, sale("000003", 4_000)) == "00"  # exactly the limit
    moves = host.ledger.conn.execute("SELECT kind, amount FROM entries ORDER BY id").fetchall()
    assert moves == [("debit", 6_000), ("debit", 4_000)]  # the refused sale moved nothing


def test_the_count_limit_ignores_declined_and_reversed_sales() -> None:
    host = new_host(card_count_limit=1, accounts={PAN: 5_000})
    assert answer(host, sale("000001", 9_000)) == "51"  # declined: not a sale of the card
    assert answer(host, sale("000002", 1_000)) == "00"
    assert answer(host, sale("000003", 1_000)) == "65"


@pytest.mark.parametrize("policy", POLICIES)
def test_the_shipped_scenario_refuses_two_sales_and_reverses_nothing(policy: str) -> None:
    result = simulate(load(SCENARIOS / "transaction-limit.toml"), policy)
    s = result.verdict.summary()
    assert (s["approved"], s["declined"], s["reversed"], s["pending_reversals"]) == (2, 2, 0, 0)
    shown = [r.event.display for r in result.trace.records if isinstance(r.event, ev.TxnOutcome)]
    assert shown == ["APPROVED", "DECLINED (61)", "APPROVED", "DECLINED (65)"]
    sent = [r.event.mti for r in result.trace.records if isinstance(r.event, ev.MsgSent) and r.event.side == "terminal"]
    assert sent == ["0200"] * 4  # no reversal, no query: nothing was left in doubt
    assert limit_refusals(result) == 2


def test_a_cup_host_refuses_by_limit_when_the_issuer_answers() -> None:
    """Under ``cup`` the debit waits for the issuer's answer: the limit is judged then, the same way."""
    result = simulate(load(SCENARIOS / "transaction-limit.toml").with_profile("cup"), "reversal")
    shown = [r.event.display for r in result.trace.records if isinstance(r.event, ev.TxnOutcome)]
    assert shown == ["APPROVED", "DECLINED (61)", "APPROVED", "DECLINED (65)"]
    assert result.verdict.settled and result.verdict.counts["reversed"] == 0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_lesson_says_what_the_cashier_tells_the_customer(lang: str) -> None:
    result = simulate(load(SCENARIOS / "transaction-limit.toml"), "reversal")
    tr = Tr(lang, "156")
    p = point(result, tr)
    assert p.good
    assert ("61" in p.headline and "65" in p.headline)
    assert any(("split" in a) if lang == "en" else ("拆单" in a) for a in p.actions)


def test_a_limit_of_no_sales_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((SCENARIOS / "transaction-limit.toml").read_text().replace("card_count_limit = 2",
                                                                              "card_count_limit = 0"))
    done = subprocess.run([sys.executable, "-m", "possim", "run", str(bad)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 2
    assert "card_count_limit" in done.stderr and len(done.stderr.strip().splitlines()) == 1

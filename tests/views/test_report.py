"""Reports as trainers use them: the HTML report in a real headless Chromium, Mermaid, reconciliation."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.scenario import from_dict, load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

POSSIM = [sys.executable, "-m", "possim"]


def possim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSSIM, *args], capture_output=True, text=True, timeout=120)


def open_page(browser, path: Path):  # type: ignore[no-untyped-def]
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"network request: {r.url}") if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    return page, errors


def test_html_report_of_response_lost_shows_the_lost_0210_and_the_timeout(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "run.html"
    assert possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", "none", "--report", str(report),
                  "--json").returncode == 0
    page, errors = open_page(browser, report)
    svg = page.locator("svg").first
    assert svg.is_visible()
    assert page.locator("svg g.arrow.lost").count() == 1
    assert "0210" in page.locator("svg g.arrow.lost title").text_content()
    assert page.locator("svg text", has_text="X 0210 LOST").first.is_visible()
    assert page.locator("svg g.timeout").count() == 1
    assert page.locator("svg g.timeout text", has_text="timeout 30 s").is_visible()
    assert page.locator("svg text", has_text="TIMEOUT: no answer in time").first.is_visible()
    assert errors == []


def test_step_through_walks_forwards_and_backwards(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "run.html"
    possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", "reversal", "--report", str(report), "--json")
    page, errors = open_page(browser, report)
    caption = page.locator(".caption").first
    total = int(caption.inner_text().split(" of ")[1].split(" ")[0])
    assert total > 5
    page.locator("button.first").first.click()
    assert caption.inner_text().startswith(f"step 1 of {total}")
    assert "customer pays €25.00" in caption.inner_text()
    assert page.locator("svg [data-step].future").count() > 0
    page.locator("button.next").first.click()
    page.locator("button.next").first.click()
    assert caption.inner_text().startswith(f"step 3 of {total}")
    page.locator("button.prev").first.click()
    assert caption.inner_text().startswith(f"step 2 of {total}")
    page.locator("button.last").first.click()
    assert page.locator("svg [data-step].future").count() == 0
    assert errors == []


def test_compare_report_has_every_policy_side_by_side(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "compare.html"
    out = possim("compare", str(SCENARIOS / "response-lost.toml"), "--no-timelines", "--report", str(report))
    assert out.returncode == 0
    page, errors = open_page(browser, report)
    assert page.locator("section.run").count() == len(POLICY_REGISTRY)
    header = page.locator("table", has_text="orphaned debits").first.inner_text()
    for policy in POLICY_REGISTRY.names():
        assert policy in header
    assert errors == []


def test_report_file_is_self_contained(tmp_path: Path) -> None:
    report = tmp_path / "run.html"
    possim("run", str(SCENARIOS / "slow-host.toml"), "--report", str(report), "--json")
    text = report.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "<script src" not in text and "<link" not in text


def test_mermaid_export(tmp_path: Path) -> None:
    out = tmp_path / "seq.mmd"
    assert possim("run", str(SCENARIOS / "response-lost.toml"), "--policy", "reversal", "--mermaid", str(out),
                  "--json").returncode == 0
    text = out.read_text()
    assert text.startswith("sequenceDiagram\n")
    assert "H-xT: 0210 purchase response no. 001 LOST (rule drop)" in text
    assert "T-->>H: 0400 reversal no. 002" in text
    assert "Note over T: t=30s TIMEOUT" in text


def test_compare_shows_the_orphan_only_under_none() -> None:
    out = possim("compare", str(SCENARIOS / "response-lost.toml"), "--no-timelines")
    row = next(line for line in out.stdout.splitlines() if "orphaned debits" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[1:] == ["1", "0", "0", "0"]


def _day(category: str, card: str, amount: str = "10000.00") -> dict[str, object]:
    return {"title": "day", "description": "one sale", "merchant": {"category": category},
            "transactions": [{"amount": amount, "card_type": card}]}


@pytest.mark.parametrize("category, card, fee", [
    ("standard", "debit", "25.00"), ("standard", "credit", "60.00"), ("supermarket", "credit", "38.00"),
    ("hospital", "credit", "0.00"),
])
def test_reconciliation_fees_of_a_ten_thousand_sale(category: str, card: str, fee: str) -> None:
    rec = simulate(from_dict(_day(category, card))).reconciliation
    assert rec is not None and rec.balanced
    assert str(rec.fees_total) == fee
    assert rec.merchant_net == Decimal("10000.00") - Decimal(fee)
    assert [str(line.fee) for line in rec.lines] == [fee]


def test_reconciliation_lists_every_mismatch_and_the_cost_of_timeouts() -> None:
    orphan = simulate(load(SCENARIOS / "customer-retries.toml"), "none").reconciliation
    assert orphan is not None and not orphan.balanced
    assert [m.kind for m in orphan.mismatches] == ["orphaned_debit"]
    assert str(orphan.customer_charged_without_sale) == "49.90"
    assert str(orphan.settled_total - orphan.batch_total) == "49.90"
    hold = simulate(load(SCENARIOS / "confirmation-lost.toml"), "none").reconciliation
    assert hold is not None and [m.kind for m in hold.mismatches] == ["hold_never_completed"]
    early = simulate(load(SCENARIOS / "reversal-overtakes-original.toml"), "reversal").reconciliation
    assert early is not None and early.balanced
    assert [m.kind for m in early.mismatches] == ["reversal_without_original"]


def test_reconcile_cli_on_a_scenario_and_on_its_trace(tmp_path: Path) -> None:
    direct = possim("reconcile", str(SCENARIOS / "customer-retries.toml"), "--policy", "none", "--json")
    assert direct.returncode == 1
    data = json.loads(direct.stdout)
    assert data["timeout_cost"]["customer_charged_without_sale"] == "49.90"
    trace = tmp_path / "t.jsonl"
    possim("run", str(SCENARIOS / "customer-retries.toml"), "--policy", "none", "--trace", str(trace), "--json")
    from_trace = possim("reconcile", str(trace), "--json")
    assert json.loads(from_trace.stdout) == data
    trace.write_text(trace.read_text().replace('"basket-1"', '"basket-9"'))
    tampered = possim("reconcile", str(trace))
    assert tampered.returncode == 2 and "does not reproduce" in tampered.stderr

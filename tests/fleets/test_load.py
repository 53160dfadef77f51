"""``possim load`` small and bounded over memory, TCP and MQTT; shards' ledgers merged by ``possim check``."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from possim.cli.load import _page_rows, _print
from possim.fleets import load_view
from possim.fleets.load import LoadPlan, LoadReport, run_load
from possim.i18n import Tr
from possim.processes.broker import Broker
from possim.protocol import transports
from tests.conftest import SCENARIOS
from tests.test_cli import possim


def _load(*args: str) -> dict[str, object]:
    out = possim("load", "--no-progress", "--json", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    report: dict[str, object] = json.loads(out.stdout)
    return report


def _brokerless() -> list[str]:
    """Every transport a load runs without a broker of its own (MQTT's tests start one: test_mqtt.py)."""
    return [t.name for t in transports.REGISTRY.values() if not t.broker]


@pytest.mark.parametrize("transport", _brokerless())
def test_a_small_load_settles_with_percentiles_and_every_host_serves(transport: str) -> None:
    r = _load("--terminals", "20", "--rate", "40", "--duration", "1", "--transport", transport, "--hosts", "2")
    assert r["sales_completed"] == r["transactions"] == 40
    assert (r["orphaned_debits"], r["double_debits"], r["phantom_approvals"], r["pending_reversals"]) == (0, 0, 0, 0)
    assert r["settled"] is True and r["finished"] is True and r["money_at_risk"] == "0.00"
    per_host = r["requests_per_host"]
    assert isinstance(per_host, list) and len(per_host) == 2 and all(n > 0 for n in per_host)
    lat = r["latency_ms"]
    assert isinstance(lat, dict) and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def test_a_lossy_load_under_reversal_reverses_and_stays_clean() -> None:
    r = _load("--terminals", "10", "--rate", "20", "--duration", "2", "--loss", "0.2", "--policy", "reversal",
              "--timeout", "0.5")
    assert r["timeouts"] > 0 and r["reversed"] > 0
    assert (r["orphaned_debits"], r["double_debits"], r["pending_reversals"]) == (0, 0, 0)


def test_loss_hits_answers_too_over_every_transport() -> None:
    """--loss loses messages in each direction: without recovery a lost answer is an orphaned debit,
    over TCP as in memory (answers from a real socket pass the terminals' fault layer too)."""
    args = ("--terminals", "20", "--rate", "20", "--duration", "3", "--loss", "0.2", "--policy", "none",
            "--timeout", "2")  # generous: on a busy machine only a lost answer, not a slow one, times out
    got = {}
    for transport in _brokerless():
        out = possim("load", "--no-progress", "--json", "--transport", transport, *args)
        assert out.returncode == 1, out.stdout + out.stderr  # orphaned debits: the run is not clean
        got[transport] = json.loads(out.stdout)
    assert len(got) >= 2 and all(r["orphaned_debits"] > 0 for r in got.values())
    # the recoveries finished, but the money is not settled: --json says so as the console does
    assert all(r["settled"] is False and r["finished"] is True for r in got.values())


@pytest.fixture(scope="module")
def orphaning() -> LoadReport:
    """One lossy run without recovery (the tester's run, with more sales and a timeout that only a lost
    message reaches): answers lost after the host's debit leave orphaned debits."""
    plan = LoadPlan(terminals=10, rate=20, duration=2, loss=0.2, timeout=2, policy="none")
    return asyncio.run(run_load(plan))


def _console(report: LoadReport, tr: Tr) -> str:
    con = Console(file=io.StringIO(), width=200, record=True)
    _print(con, report, tr)
    return con.export_text()


def test_the_report_page_carries_the_verdict_the_console_prints(orphaning: LoadReport, tmp_path: Path) -> None:
    tr = Tr("en", orphaning.plan.currency)
    d = orphaning.as_dict()
    assert d["orphaned_debits"] > 0 and not orphaning.ok
    page = load_view.render(orphaning, _page_rows(orphaning, tr), tr)
    text = _console(orphaning, tr)
    loss, at_risk = tr.money(d["customer_loss"]), tr.money(d["money_at_risk"])
    assert loss.startswith("€") and loss != "€0.00" and at_risk == loss  # an orphaned debit is the customer's loss
    assert f"orphaned debits</td><td>{d['orphaned_debits']}<" in page
    assert _line(text, "orphaned debits").split()[-2] == str(d["orphaned_debits"])
    for shown in (text, page):
        assert "double debits" in shown and loss in shown and at_risk in shown and "NOT settled" in shown
        assert f"{len(d['alert_terminals'])} terminal(s) over a threshold" in shown
        assert " ".join(d["alert_terminals"][:3]) in shown


def test_json_settled_is_the_verdict_the_console_prints(orphaning: LoadReport) -> None:
    d = orphaning.as_dict()
    assert d["finished"] is True  # every recovery ended: that alone is not settled
    assert d["settled"] is False and "NOT settled" in _console(orphaning, Tr())
    assert d["settled"] == orphaning.ok


def test_money_is_written_in_the_terminals_currency_in_each_language(orphaning: LoadReport) -> None:
    assert LoadPlan(1, 1, 1).currency == "978" and LoadPlan(1, 1, 1, profile="cup").currency == "156"
    loss = orphaning.as_dict()["customer_loss"]
    en, zh = Tr("en", "978"), Tr("zh", "978")
    assert en.money(loss) in _line(_console(orphaning, en), "customer loss")
    assert zh.money(loss) in _line(_console(orphaning, zh), "持卡人损失") and zh.money(loss) != loss


def _line(text: str, name: str) -> str:
    """The one line of ``text`` naming ``name`` (a table row)."""
    [line] = [line for line in text.splitlines() if name in line]
    return line


def test_chinese_load_views_say_transport_policy_and_profile_in_chinese(orphaning: LoadReport) -> None:
    Tr.missing.clear()
    tr = Tr("zh", orphaning.plan.currency)
    text = _console(orphaning, tr)
    page = load_view.render(orphaning, _page_rows(orphaning, tr), tr)
    header = text.splitlines()[0]
    assert "进程内内存" in header and tr.policy("none") in header and "通用 ISO 8583" in header
    assert not any(word in header for word in ("memory", "none", "iso"))
    title = tr("possim load: {terminals} terminals over {transport}", terminals=10, transport="进程内内存")
    assert f"<title>{title}</title>" in page
    assert "时延" not in text + page and "延迟 p99" in text + page  # one word for latency, as the charts say it
    assert "未对平" in page and "单边账" in page
    assert Tr.missing == set()


def test_a_small_load_over_mqtt_with_two_shards(broker: Broker) -> None:
    r = _load("--terminals", "10", "--rate", "20", "--duration", "1", "--transport", "mqtt", "--hosts", "2",
              "--broker", broker.url)
    assert r["sales_completed"] == 20 and r["orphaned_debits"] == 0 and r["double_debits"] == 0
    per_host = r["requests_per_host"]
    assert isinstance(per_host, list) and sum(per_host) == 20 and all(n > 0 for n in per_host)


@pytest.mark.parametrize("args", [
    ("--transport", "tcp", "--connect", "192.0.2.1:8583"),
    ("--transport", "memory", "--connect", "127.0.0.1:8583"),
    ("--transport", "tcp", "--connect", "nonsense"),
])
def test_remote_or_bad_targets_are_refused_in_one_line(args: tuple[str, ...]) -> None:
    out = possim("load", "--no-progress", *args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def _run_as(tmp_path: Path, tid: str, name: str) -> tuple[Path, Path]:
    """One approved sale by terminal ``tid``, its ledger and journal kept (a shard's files)."""
    text = (SCENARIOS / "duplicate-request.toml").read_text()
    scenario = tmp_path / f"{name}.toml"
    scenario.write_text(text + f'\n[terminal]\ntid = "{tid}"\n' if "[terminal]" not in text
                        else text.replace("[terminal]", f'[terminal]\ntid = "{tid}"', 1))
    ledger, journal = tmp_path / f"{name}.ledger", tmp_path / f"{name}.journal"
    out = possim("run", str(scenario), "--policy", "reversal", "--ledger", str(ledger), "--journal", str(journal),
                 "--json")
    assert out.returncode == 0, out.stderr
    return ledger, journal


def test_check_merges_the_ledgers_of_host_shards(tmp_path: Path) -> None:
    (l1, j1), (l2, j2) = _run_as(tmp_path, "SHOP0001", "a"), _run_as(tmp_path, "SHOP0002", "b")
    both = possim("check", "--journal", str(j1), "--journal", str(j2), "--ledger", str(l1), "--ledger", str(l2),
                  "--json")
    assert both.returncode == 0, both.stdout + both.stderr
    merged = json.loads(both.stdout)
    assert merged["transactions"] == 2 and merged["phantom_approvals"] == 0 and merged["settled"]
    folder = tmp_path / "ledgers"
    folder.mkdir()
    for ledger in (l1, l2):
        ledger.rename(folder / ledger.name)
    by_folder = possim("check", "--journal", str(j1), "--journal", str(j2), "--ledger", str(folder), "--json")
    assert json.loads(by_folder.stdout) == merged
    one = possim("check", "--journal", str(j1), "--journal", str(j2), "--ledger", str(folder / l1.name), "--json")
    assert one.returncode == 1 and json.loads(one.stdout)["phantom_approvals"] >= 1

"""possim conform: a host under test graded from its answers alone, over real TCP bytes.

possim's own acquirer (a real ``possim acquirer`` process) must pass every rule under both
profiles; each deliberately broken host (``tests/conform_hosts.py``) must fail exactly the
rule it breaks. The JUnit file CI would read is parsed back here as CI would read it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from possim.judging import conform as lib
from possim.processes.broker import free_port
from possim.processes.keys import create_key_file
from possim.processes.keys import load as load_keys
from possim.protocol.messages import Message
from tests import junit as junit_file
from tests.conform_hosts import BALANCE_SCRIPT, serving
from tests.procs import Finished, run, running

RULES = {case.id: case.rule for case in lib.CASES}


def _balance(ledger: Path) -> str:
    return f"{sys.executable} {BALANCE_SCRIPT} {ledger} {{card}}"


def _junit(path: Path) -> dict[str, str]:
    """Each testcase's outcome as CI reads it (junitparser): failure, skipped or pass; the suite's counts agree."""
    read = junit_file.read(path)
    assert len(read.cases) == len(lib.CASES)
    return read.outcomes


def _verdicts(done: Finished) -> dict[str, str]:
    doc = json.loads(done.stdout)
    return {c["id"]: c["verdict"] for c in doc["cases"]}


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["iso", "cup"])
async def test_possims_own_acquirer_passes_every_rule(tmp_path: Path, profile: str) -> None:
    keys, ledger = tmp_path / "keys.json", tmp_path / "ledger.db"
    junit, report = tmp_path / "j.xml", tmp_path / "r.html"
    create_key_file(keys, ["CONFORM1"])
    port = free_port()
    async with running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}", "--ledger",
                       str(ledger), "--profile", profile, "--keys", str(keys)) as acquirer:
        await acquirer.ready("acquirer_ready")
        done = await run("conform", "--host", f"tcp://127.0.0.1:{port}", "--profile", profile, "--keys", str(keys),
                         "--balance-command", _balance(ledger), "--junit", str(junit), "--report", str(report),
                         "--json")
        assert await acquirer.stop() == 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_verdicts(done).values()) == {lib.PASS}
    assert set(_junit(junit).values()) == {"pass"}
    evidence = {c["id"]: c["evidence"] for c in json.loads(done.stdout)["cases"]}
    assert "debited once" in evidence["duplicate-original"]  # the balance was read, not just the answers
    sent = [m for c in json.loads(done.stdout)["cases"] for m in c["messages"] if m["direction"] == "sent"]
    assert sent
    for message in sent:  # the report lists the fields the profile's bytes carry: CUP sends no field 7
        assert ("7" in message["fields"]) is (profile == "iso"), message
        assert ("60" in message["fields"]) is (profile == "cup"), message
    page = report.read_text(encoding="utf-8")
    assert page.count("<h2 id=") == len(lib.CASES) and "0410" in page and "39=25" in page


@pytest.mark.asyncio
@pytest.mark.parametrize(("kind", "broken"), [
    ("double-debit", "duplicate-original"),
    ("unknown-reversal", "reversal-unknown-original"),
    ("late-original", "late-original-after-reversal"),
    ("mac-blind", "mac-wrong-or-missing"),
])
async def test_a_broken_host_fails_exactly_the_rule_it_breaks(tmp_path: Path, kind: str, broken: str) -> None:
    ledger, junit = tmp_path / "ledger.db", tmp_path / "j.xml"
    args: list[str] = []
    mac_keys = None
    if kind == "mac-blind":  # the MAC case runs only with keys; the host MACs its answers but checks nothing
        create_key_file(tmp_path / "keys.json", ["CONFORM1"])
        mac_keys = load_keys(tmp_path / "keys.json").mac_keys()
        args = ["--keys", str(tmp_path / "keys.json")]
    async with serving(kind, ledger, mac_keys) as port:
        done = await run("conform", "--host", f"tcp://127.0.0.1:{port}", *args, "--balance-command",
                         _balance(ledger), "--junit", str(junit), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    verdicts = _verdicts(done)
    assert [case for case, v in verdicts.items() if v == lib.FAIL] == [broken]
    outcomes = _junit(junit)
    assert [case for case, v in outcomes.items() if v == "failure"] == [broken]
    assert outcomes["mac-wrong-or-missing"] == ("failure" if kind == "mac-blind" else "skipped")


@pytest.mark.asyncio
async def test_without_keys_the_mac_case_is_not_run_and_says_why_in_chinese(tmp_path: Path) -> None:
    async with serving("plain", tmp_path / "ledger.db") as port:
        done = await run("conform", "--host", f"tcp://127.0.0.1:{port}", "--lang", "zh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "未运行" in done.stdout and "--keys" in done.stdout
    assert "通过" in done.stdout and "Traceback" not in done.stderr
    assert "规范 通用 ISO 8583" in done.stdout and "profile iso" not in done.stdout, done.stdout


@pytest.mark.asyncio
async def test_a_host_that_never_answers_fails_every_case_within_the_timeouts() -> None:
    """Every wait is bounded: a silent host costs at most the timeout per awaited answer, and fails."""
    received: list[bytes] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        done = await run("conform", "--host", f"tcp://127.0.0.1:{port}", "--timeout", "0.2", "--json")
    finally:
        server.close()
        await server.wait_closed()
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    ran = [c for c in doc["cases"] if c["verdict"] != lib.NOT_RUN]
    assert len(ran) == len(lib.CASES) - 1 and all(c["verdict"] == lib.FAIL for c in ran)
    assert all("no answer within 0.2 s" in c["evidence"] for c in ran)
    assert received  # the requests did reach it


@pytest.mark.asyncio
async def test_an_unreachable_host_is_one_line_and_exit_2() -> None:
    done = await run("conform", "--host", f"tcp://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert done.stderr.startswith("possim: error: cannot connect") and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.asyncio
async def test_a_remote_host_needs_allow_remote() -> None:
    done = await run("conform", "--host", "tcp://192.0.2.1:5000")
    assert done.returncode == 2 and "--allow-remote" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _answer(mti: str, rc: str, **fields: object) -> Message:
    return Message(mti=mti, stan="000001", transmission="1207101010", tid="CONFORM1", response_code=rc,
                   **fields)  # type: ignore[arg-type]


def test_a_query_that_contradicts_the_sale_fails_and_one_in_progress_passes() -> None:
    """The grader is pure: a recorded exchange in, a verdict out."""
    iso = lib.PROFILES["iso"]
    sale = _answer("0210", "00", rrn="329100000001", auth_code="A00001")
    for status, verdict in (("NOT_FOUND", lib.FAIL), ("DECLINED", lib.FAIL), ("IN_PROGRESS", lib.PASS),
                            ("APPROVED", lib.PASS)):
        rec = lib.Record(answers={"sale": sale, "query": _answer("0610", "00", status=status)})
        assert lib.grade_query_in_flight(rec, iso).status == verdict, status
    other_rrn = _answer("0610", "00", status="APPROVED", rrn="329100000009")
    assert not lib.grade_query_in_flight(lib.Record(answers={"sale": sale, "query": other_rrn}), iso).passed


def test_a_repeat_answered_94_passes_under_cup_only_and_no_answer_fails() -> None:
    sale = _answer("0210", "00", rrn="329100000001", auth_code="A00001")
    rec = lib.Record(answers={"sale": sale, "repeat": _answer("0210", "94")})
    rec.sent["sale"] = Message(mti="0200", stan="000001", transmission="1207101010", tid="CONFORM1", amount=1234)
    assert lib.grade_duplicate(rec, lib.PROFILES["cup"]).passed
    assert not lib.grade_duplicate(rec, lib.PROFILES["iso"]).passed
    rec.answers["repeat"] = None
    verdict = lib.grade_duplicate(rec, lib.PROFILES["cup"])
    assert verdict.status == lib.FAIL and "no answer" in verdict.evidence


def test_every_card_number_passes_luhn() -> None:
    pan = lib.luhn_pan("491234567890123")
    digits = [int(c) for c in reversed(pan)]
    assert sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d) for i, d in enumerate(digits)) % 10 == 0


def test_every_string_of_the_conform_views_has_a_chinese_entry() -> None:
    from rich.console import Console

    from possim.cli.conform import _print, html_report
    from possim.i18n import Tr

    Tr.missing.clear()
    statuses = (lib.PASS, lib.FAIL, lib.NOT_RUN)
    wire = [lib.Wire("sent", 0.0, "sale", "0200", {"11": "000001"}, "00"),
            lib.Wire("received", 0.1, "sale", "0210", {"39": "00"}, "00")]
    results = [lib.CaseResult(case, lib.Verdict(statuses[i % 3], lib.NO_KEYS), lib.Record(wire=wire if i else []))
               for i, case in enumerate(lib.CASES)]
    console = Console(record=True, width=200)
    _print(console, results, "tcp://127.0.0.1:1", "iso", Tr("zh"))
    page = html_report(results, "tcp://127.0.0.1:1", "iso", Tr("zh"))
    assert Tr.missing == set()
    assert "未运行" in console.export_text() and "没有报文" in page and "收到" in page


@pytest.mark.asyncio
async def test_a_balance_command_that_prints_no_balance_is_bad_input(tmp_path: Path) -> None:
    done = await run("conform", "--host", "tcp://127.0.0.1:1", "--balance-command", "true")
    assert done.returncode == 2 and "{card}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    async with serving("plain", tmp_path / "ledger.db") as port:
        done = await run("conform", "--host", f"tcp://127.0.0.1:{port}", "--balance-command", "true {card}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "printed no balance" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.asyncio
async def test_a_third_party_host_from_pypi_is_driven_to_the_end_and_graded(tmp_path: Path) -> None:
    """iso8583sim's MockHost (its own wire format and rules): possim never tracebacks on a host it
    does not know; every case that runs gets a verdict with evidence, in the table and the JUnit file."""
    from iso8583sim.net import MockHost

    host = MockHost()
    await host.start("127.0.0.1", 0)
    junit = tmp_path / "sim.xml"
    try:
        done = await run("conform", "--host", f"tcp://127.0.0.1:{host.port}", "--timeout", "0.5", "--json",
                         "--junit", str(junit))
    finally:
        await host.stop()
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert {c["id"] for c in doc["cases"]} == set(RULES)
    assert all(c["verdict"] in (lib.PASS, lib.FAIL, lib.NOT_RUN) and c["evidence"] for c in doc["cases"])
    assert len(junit_file.read(junit).cases) == len(RULES)

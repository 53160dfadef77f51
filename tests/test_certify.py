"""possim certify: real acquirer, real terminal processes and bytes; verdicts from the wire and the ledger.

The builtin terminal with automatic reversal passes every rule under both profiles; without
recovery it fails exactly the rules about recovery; a raw-TCP terminal that takes a refused
reversal as done (tests/broken_terminal.py) fails exactly the rule about repeating reversals.
The power-loss case kills the builtin terminal (SIGKILL) once its sale reached the acquirer.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from possim.certify import Arrival, Seen, check_repeats, load_plan
from possim.protocol.messages import Message, OriginalData
from tests import junit as junit_file
from tests.processes import run
from tests.procs import POSSIM

BROKEN = Path(__file__).with_name("broken_terminal.py")
#: The rules only a terminal that recovers passes (everything the none policy must fail).
RECOVERY = {"lost-answer-reversed", "reversal-names-original", "reversal-repeats", "reversal-before-next",
            "late-answer-still-reversed", "wrong-mac-is-no-answer", "restart-reversal-first", "advice-forwarded"}


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["iso", "cup"])
async def test_the_builtin_reversal_terminal_passes_every_rule(profile: str, tmp_path: Path) -> None:
    junit, report = tmp_path / "r.xml", tmp_path / "r.html"
    done = await run("certify", "--builtin-terminal", "reversal", "--profile", profile, "--junit", str(junit),
                     "--report", str(report), "--lang", "zh")
    assert done.returncode == 0, done.stdout + done.stderr
    read = junit_file.read(junit)
    plan = load_plan(profile)
    assert [c.name for c in read.cases] == [c.id for c in plan] and len(plan) >= 10
    assert read.suite.failures == read.suite.skipped == 0 and read.named("pass") == {c.id for c in plan}
    lost = next(c for c in read.cases if c.name == "lost-answer-reversed")
    assert "0400" in (lost.system_out or "")  # the reversal as the acquirer received it
    page = report.read_text(encoding="utf-8")
    assert "通过" in page and "lost-answer-reversed" in page


@pytest.mark.asyncio
async def test_a_terminal_without_recovery_fails_exactly_the_recovery_rules() -> None:
    done = await run("certify", "--builtin-terminal", "none", "--json")
    assert done.returncode == 1, done.stderr
    verdicts = {c["id"]: c["verdict"] for c in json.loads(done.stdout)["cases"]}
    assert {k for k, v in verdicts.items() if v == "fail"} == RECOVERY
    assert {k for k, v in verdicts.items() if v == "pass"} == set(verdicts) - RECOVERY


@pytest.mark.asyncio
async def test_a_terminal_that_takes_a_refused_reversal_as_done_fails_that_rule_only(tmp_path: Path) -> None:
    junit = tmp_path / "broken.xml"
    done = await run("certify", "--terminal-command", f"{sys.executable} {BROKEN} {{address}} {{amount}} {{tid}}",
                     "--junit", str(junit), "--json")
    assert done.returncode == 1, done.stderr
    verdicts = {c["id"]: c["verdict"] for c in json.loads(done.stdout)["cases"]}
    assert {k for k, v in verdicts.items() if v == "fail"} == {"reversal-repeats"}
    assert verdicts["wrong-mac-is-no-answer"] == "not run"  # no key file: nothing proves a MAC wrong
    assert verdicts["restart-reversal-first"] == "not run"  # no --restart-command
    assert verdicts["settlement-totals"] == verdicts["advice-forwarded"] == "not run"  # sales only
    read = junit_file.read(junit)
    assert read.named("failure") == {"reversal-repeats"} and read.suite.skipped == 4


@pytest.mark.asyncio
@pytest.mark.parametrize(("args", "said"), [
    ((), "exactly one of"),
    (("--builtin-terminal", "sometimes"), "unknown policy"),
    (("--terminal-command", "pos {amount} {till}"), "{till}"),
    (("--builtin-terminal", "reversal", "--plan", "PLAN"), "cases.0.check"),
    (("--builtin-terminal", "reversal", "--case", "no-such-case"), "no-such-case"),
    (("--builtin-terminal", "reversal", "--restart-command", "pos"), "--restart-command"),
])
async def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], said: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[cases]]\nid = "mine"\nrule = "r"\nreason = "r"\nsales = ["1.00"]\ncheck = "vibes"\n',
                    encoding="utf-8")
    done = await run("certify", *(str(plan) if a == "PLAN" else a for a in args))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr


@pytest.mark.asyncio
async def test_interactive_waits_for_each_sale_it_asks_for() -> None:
    """A person is played by this test: it reads each prompt and rings the sale up on the raw-TCP terminal."""
    args = ["certify", "--interactive", "--case", "clean-sale-not-reversed", "--case", "decline-not-reversed",
            "--json", "--case-timeout", "60"]
    proc = await asyncio.create_subprocess_exec(*POSSIM, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(120):
            for _ in range(2):
                line = (await proc.stderr.readline()).decode()
                prompt = re.search(r"ring up (\S+) on terminal (\S+) now \(host (\S+)\)", line)
                assert prompt is not None, line
                amount, tid, address = prompt.groups()
                sale = await asyncio.create_subprocess_exec(sys.executable, str(BROKEN), address, amount, tid)
                assert await sale.wait() == 0
            out = await proc.stdout.read()
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    verdicts = {c["id"]: c["verdict"] for c in json.loads(out)["cases"]}
    assert verdicts == {"clean-sale-not-reversed": "pass", "decline-not-reversed": "pass"}


def _repeats(profile: str, tries: list[tuple[str, bool]], state: str) -> tuple[str, str]:
    """check_repeats on a sale of 12.25 and its reversals: (MTI, refused by the acquirer) each, in order."""
    sale = Message(mti="0200", stan="000100", transmission="1207120000", tid="CERT0001", amount=1225)
    if profile == "cup":
        revs = [replace(sale, mti=mti, response_code="98") for mti, _ in tries]
    else:
        revs = [replace(sale, mti=mti, stan=f"{101 + i:06d}", original=OriginalData("0200", "000100", "1207120000"))
                for i, (mti, _) in enumerate(tries)]
    arrivals = [Arrival(0.0, sale, b""), *(Arrival(float(i + 1), m, b"", refused=refused)
                                            for i, (m, (_, refused)) in enumerate(zip(revs, tries, strict=True)))]
    verdict = check_repeats(Seen(profile, (1225,), arrivals, lambda _m: state))
    return verdict.status, verdict.evidence


REFUSED, TAKEN = True, False


@pytest.mark.parametrize(("profile", "tries", "state", "status", "said"), [
    ("cup", [("0400", REFUSED), ("0400", TAKEN)], "reversed", "pass", "ledger reversed"),
    # a CUP terminal stops after its third try even when all three were refused: that is the rule
    ("cup", [("0400", REFUSED)] * 3, "debited", "pass", "stopped after 3"),
    ("cup", [("0400", REFUSED)] * 4, "debited", "fail", "4 tries"),
    ("cup", [("0400", REFUSED), ("0400", TAKEN), ("0400", TAKEN), ("0400", TAKEN)], "reversed", "fail", "4 tries"),
    ("cup", [("0400", REFUSED), ("0400", TAKEN), ("0400", TAKEN)], "reversed", "fail", "after try 2"),
    ("cup", [("0400", REFUSED)], "debited", "fail", "not repeated"),
    ("cup", [("0400", REFUSED)] * 2, "debited", "fail", "not repeated"),
    ("iso", [("0400", REFUSED), ("0401", TAKEN)], "reversed", "pass", "ledger reversed"),
    ("iso", [("0400", REFUSED)] * 3 + [("0401", TAKEN)], "reversed", "fail", "0401"),
    ("iso", [("0400", REFUSED), ("0401", REFUSED), ("0401", REFUSED), ("0401", TAKEN)], "reversed", "pass", "0401"),
    ("iso", [("0400", REFUSED), ("0401", REFUSED), ("0401", REFUSED)], "debited", "fail", "not repeated"),
    ("iso", [("0400", REFUSED), ("0401", TAKEN)], "debited", "fail", "ledger debited"),
])
def test_repeats_counts_tries_up_to_the_acknowledged_one(profile: str, tries: list[tuple[str, bool]], state: str,
                                                        status: str, said: str) -> None:
    got, evidence = _repeats(profile, tries, state)
    assert (got, said in evidence) == (status, True), evidence

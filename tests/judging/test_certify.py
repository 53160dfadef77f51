"""possim certify: real acquirer, real terminal processes and bytes; verdicts from the wire and the ledger.

possim's terminal under automatic reversal, and under query-then-reversal, passes every rule under
both profiles; without recovery
it fails exactly the rules about recovery. A terminal written apart from possim
(tests/broken_terminal.py: a raw TCP socket, ISO 8583 bytes from possim's codec) with one deliberate
bug fails exactly the rule about that bug: one of them against the whole plan, the others against
the cases about their bug only (each case is a real process). The power-loss case kills the terminal
(SIGKILL) once its sale reached the acquirer. JUnit files are read with junitparser."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from possim.judging.certify import Arrival, Seen, check_repeats, load_plan
from possim.processes.keys import create_key_file
from possim.protocol.messages import Message, OriginalData
from tests import junit as junit_file
from tests.procs import POSSIM, run

BROKEN = Path(__file__).parent.with_name("broken_terminal.py")
#: The rules only a terminal that recovers passes (everything the none policy must fail).
RECOVERY = {"lost-answer-reversed", "reversal-names-original", "reversal-repeats", "reversal-before-next",
            "late-answer-still-reversed", "wrong-mac-is-no-answer", "restart-reversal-first", "advice-forwarded"}


def _broken(bug: str | None, *more: str) -> str:
    """The --terminal-command of tests/broken_terminal.py with ``bug`` (None: a terminal that keeps every rule)."""
    argv = [sys.executable, str(BROKEN), "{address}", "{amount}", "{tid}", "--profile", "{profile}",
            "--journal", "{journal}", *(("--bug", bug) if bug else ()), *more]
    return shlex.join(argv)


def _verdicts(stdout: str) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in json.loads(stdout)["cases"]}


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["iso", "cup"])
@pytest.mark.parametrize("policy", ["reversal", "query-then-reversal"])
async def test_the_builtin_recovering_terminals_pass_every_rule(policy: str, profile: str, tmp_path: Path) -> None:
    """Both recovering policies keep every rule. query-then-reversal asks first (0600): the plan's
    recovery cases answer its queries IN_PROGRESS, so it is graded on the reversal it falls back to,
    and it resolves the unknown sale before the next customer's goes out."""
    junit, report = tmp_path / "r.xml", tmp_path / "r.html"
    done = await run("certify", "--builtin-terminal", policy, "--profile", profile, "--junit", str(junit),
                     "--report", str(report), "--lang", "zh")
    assert done.returncode == 0, done.stdout + done.stderr
    read = junit_file.read(junit)
    plan = load_plan(profile)
    assert [c.name for c in read.cases] == [c.id for c in plan] and len(plan) >= 10
    assert read.suite.failures == read.suite.skipped == 0 and read.named("pass") == {c.id for c in plan}
    lost = next(c for c in read.cases if c.name == "lost-answer-reversed")
    assert "0400" in (lost.system_out or "")  # the reversal as the acquirer received it
    assert ("0600" in (lost.system_out or "")) is (policy == "query-then-reversal")  # asked first, answered IN_PROGRESS
    page = report.read_text(encoding="utf-8")
    assert "通过" in page and "lost-answer-reversed" in page


@pytest.mark.asyncio
async def test_the_chinese_table_names_the_builtin_terminal_in_chinese() -> None:
    done = await run("certify", "--builtin-terminal", "reversal", "--case", "clean-sale-not-reversed", "--lang", "zh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "内置终端" in done.stdout and "builtin terminal" not in done.stdout, done.stdout
    assert "规范 通用 ISO 8583" in done.stdout and "profile iso" not in done.stdout, done.stdout
    assert "自动冲正" in done.stdout and "(reversal)" not in done.stdout, done.stdout
    cup = await run("certify", "--builtin-terminal", "reversal", "--profile", "cup", "--case",
                    "clean-sale-not-reversed", "--lang", "zh")
    assert cup.returncode == 0 and "规范 中国银联" in cup.stdout and "profile cup" not in cup.stdout, cup.stdout


@pytest.mark.asyncio
async def test_a_terminal_without_recovery_fails_exactly_the_recovery_rules() -> None:
    done = await run("certify", "--builtin-terminal", "none", "--json")
    assert done.returncode == 1, done.stderr
    verdicts = _verdicts(done.stdout)
    assert {k for k, v in verdicts.items() if v == "fail"} == RECOVERY
    assert {k for k, v in verdicts.items() if v == "pass"} == set(verdicts) - RECOVERY


@pytest.mark.asyncio
async def test_a_terminal_that_reverses_a_decline_fails_that_rule_and_no_other_of_the_whole_plan(
        tmp_path: Path) -> None:
    """The whole plan, MAC keys and restarts included: every rule a sales-only terminal can be graded
    on runs, and only the decline's fails."""
    keys, junit = tmp_path / "keys.json", tmp_path / "broken.xml"
    create_key_file(keys, [f"BRKN{i:04d}" for i in range(1, 13)])
    command = _broken("reverses-decline", "--keys", "{keys}")
    done = await run("certify", "--terminal-command", command, "--restart-command", f"{command} --resume",
                     "--keys", str(keys), "--junit", str(junit), "--json")
    assert done.returncode == 1, done.stderr
    verdicts = _verdicts(done.stdout)
    assert {k for k, v in verdicts.items() if v == "fail"} == {"decline-not-reversed"}
    assert {k for k, v in verdicts.items() if v == "not run"} == {"settlement-totals", "advice-forwarded"}
    read = junit_file.read(junit)
    assert read.named("failure") == {"decline-not-reversed"}
    assert read.named("skipped") == {"settlement-totals", "advice-forwarded"}
    assert len(read.named("pass")) == len(load_plan("iso")) - 3


#: (bug, profile, the cases run, the rules it must fail). Each bug breaks one thing; where that one
#: thing also fails a second rule, the reason is in the comment.
BUGS = [
    pytest.param("never-reverses", "iso",
                 ("lost-answer-reversed", "reversal-names-original", "clean-sale-not-reversed"),
                 # with no reversal at all there is none to name the original: that rule fails too
                 {"lost-answer-reversed", "reversal-names-original"}, id="never-reverses"),
    pytest.param("new-stan", "cup", ("lost-answer-reversed", "reversal-names-original", "reversal-repeats"),
                 {"reversal-names-original"}, id="cup-reversal-with-a-new-stan"),
    pytest.param("forgets-pending", "iso", ("restart-reversal-first", "lost-answer-reversed"),
                 {"restart-reversal-first"}, id="forgets-pending-reversal-across-restart"),
    pytest.param("accepts-wrong-mac", "iso", ("wrong-mac-is-no-answer", "clean-sale-not-reversed"),
                 {"wrong-mac-is-no-answer"}, id="accepts-wrong-mac"),
    pytest.param("takes-refusal-as-done", "iso", ("reversal-repeats", "lost-answer-reversed"),
                 {"reversal-repeats"}, id="takes-refusal-as-done"),
    pytest.param("four-tries", "cup", ("reversal-repeats", "lost-answer-reversed"),
                 {"reversal-repeats"}, id="cup-fourth-try"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("bug", "profile", "cases", "failed"), BUGS)
async def test_a_broken_terminal_fails_exactly_its_rule(bug: str, profile: str, cases: tuple[str, ...],
                                                        failed: set[str], tmp_path: Path) -> None:
    """Only the cases about the bug (and one it must still pass) run: each is a real terminal process."""
    keys, junit = tmp_path / "keys.json", tmp_path / "broken.xml"
    create_key_file(keys, [f"BRKN{i:04d}" for i in range(1, len(cases) + 1)])
    command = _broken(bug, "--keys", "{keys}")
    done = await run("certify", "--profile", profile, "--terminal-command", command,
                     "--restart-command", f"{command} --resume", "--keys", str(keys), "--junit", str(junit),
                     "--json", *(a for case in cases for a in ("--case", case)))
    assert done.returncode == 1, done.stderr
    verdicts = _verdicts(done.stdout)
    assert set(verdicts) == set(cases)
    assert {k for k, v in verdicts.items() if v == "fail"} == failed, done.stdout
    assert {k for k, v in verdicts.items() if v == "pass"} == set(cases) - failed, done.stdout
    assert junit_file.read(junit).named("failure") == failed


@pytest.mark.asyncio
async def test_without_keys_or_a_restart_command_those_rules_are_not_run() -> None:
    done = await run("certify", "--terminal-command", _broken(None), "--json", "--case", "wrong-mac-is-no-answer",
                     "--case", "restart-reversal-first", "--case", "advice-forwarded", "--case", "settlement-totals")
    assert done.returncode == 0, done.stderr
    assert set(_verdicts(done.stdout).values()) == {"not run"}


@pytest.mark.asyncio
@pytest.mark.parametrize(("args", "said"), [
    ((), "exactly one of"),
    (("--builtin-terminal", "sometimes"), "unknown policy"),
    (("--terminal-command", "pos {amount} {till}"), "{till}"),
    (("--terminal-command", "pos {address}"), "no {amount}"),
    (("--terminal-command", "pos {host} {amount}"), "no {address} or {port}"),
    (("--builtin-terminal", "reversal", "--plan", "AMOUNT_PLAN"), "cases.0.sales.0: not an amount: '1.0x'"),
    (("--builtin-terminal", "reversal", "--plan", "PLAN"), "cases.0.check"),
    (("--builtin-terminal", "reversal", "--case", "no-such-case"), "no-such-case"),
    (("--builtin-terminal", "reversal", "--restart-command", "pos"), "--restart-command"),
])
async def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], said: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[cases]]\nid = "mine"\nrule = "r"\nreason = "r"\nsales = ["1.00"]\ncheck = "vibes"\n',
                    encoding="utf-8")
    amount_plan = tmp_path / "amount.toml"
    amount_plan.write_text('[[cases]]\nid = "mine"\nrule = "r"\nreason = "r"\nsales = ["1.0x"]\ncheck = "reversed"\n',
                           encoding="utf-8")
    named = {"PLAN": str(plan), "AMOUNT_PLAN": str(amount_plan)}
    done = await run("certify", *(named.get(a, a) for a in args))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr


@pytest.mark.asyncio
async def test_a_terminal_that_fails_before_sending_says_why() -> None:
    """Nothing arrived: the evidence is the terminal's exit status and last stderr line, not only "no 0200"."""
    script = 'import sys; sys.exit("cannot reach " + sys.argv[1])'
    failing = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)} {{address}} {{amount}}"
    done = await run("certify", "--terminal-command", failing, "--json", "--case", "clean-sale-not-reversed")
    assert done.returncode == 1, done.stderr
    (case,) = json.loads(done.stdout)["cases"]
    assert case["verdict"] == "fail"
    assert re.fullmatch(r"the terminal exited with status 1: cannot reach 127\.0\.0\.1:\d+", case["evidence"]), case


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

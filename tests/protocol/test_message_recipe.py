"""Recipe: a new request/response pair, defined and registered here, touching no possim module.

The toy pair is an ISO 8583 network-management echo test (0820, answered 0830): the terminal
checks the line once when it starts, before its first sale. Everything it needs is registered
for the test only (``Registry.added``):

1. its message kind (``protocol.mti.KINDS``): MTIs, names, required fields, its events' labels;
2. its trace events (``protocol.events.REGISTRY``);
3. the terminal's exchange spec and handlers (``pos_sim.terminal.EXCHANGES``);
4. the host's handler for its request MTI (``acquirer_sim.host.HANDLERS``).

Then a shipped scenario runs through the CLI in-process, and the trace shows the pair on the
wire with its events, the timeline labels them, and the run's outcome is the one it has without
the echo test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from possim.acquirer_sim.host import HANDLERS, AcquirerHost, HostAction, HostHandler
from possim.cli import cli, main
from possim.pos_sim.actions import Action
from possim.pos_sim.exchanges import Exchange, ExchangeSpec
from possim.pos_sim.records import TxnRecord
from possim.pos_sim.terminal import EXCHANGES, Terminal
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol.messages import Message
from possim.protocol.validation import validate

ECHO, ECHO_RESPONSE = "0820", "0830"


@dataclass(frozen=True, slots=True)
class EchoSent(ev.Event):
    """The terminal checks the line before its first sale."""

    NAME: ClassVar[str] = "echo_test_sent"
    SIDE: ClassVar[ev.Side | None] = "terminal"
    tid: str
    stan: str


@dataclass(frozen=True, slots=True)
class EchoAnswered(ev.HostMessageEvent):
    """The host answered the echo test; nothing is booked."""

    NAME: ClassVar[str] = "echo_test_answered"


@dataclass(frozen=True, slots=True)
class EchoPassed(ev.Event):
    """The echo test's answer came back: the line works."""

    NAME: ClassVar[str] = "echo_test_passed"
    SIDE: ClassVar[ev.Side | None] = "terminal"
    tid: str
    stan: str
    rc: str


KIND = M.MessageKind(
    "echo_test", ECHO, ECHO_RESPONSE, "echo test", "echo test response",
    events={EchoSent.NAME: "echo test {stan} sent: is the line up?",
            EchoAnswered.NAME: "echo test {stan} answered: nothing booked",
            EchoPassed.NAME: ""})  # no words: the timeline shows the event's name


def _build(terminal: Terminal, now: float, txn: TxnRecord) -> Message:
    return terminal.request(now, ECHO)


def _sent(terminal: Terminal, msg: Message) -> list[Action]:
    return [EchoSent(msg.tid, msg.stan)]


def _answered(terminal: Terminal, now: float, ex: Exchange, msg: Message) -> list[Action]:
    terminal.exchange_done(ex)
    return [EchoPassed(msg.tid, msg.stan, msg.response_code or "")]


def _timed_out(terminal: Terminal, now: float, ex: Exchange) -> list[Action]:
    terminal.exchange_done(ex)  # a line check is not repeated: the sale will tell
    return []


SPEC: ExchangeSpec[Terminal] = ExchangeSpec(
    "echo_test", priority=-1, timeout=lambda c: c.response_timeout, build=_build, answered=_answered,
    timed_out=_timed_out, stan_of=lambda r: None, journals=False, sent=_sent, at_start=True)


def _host_echo(host: AcquirerHost, now: float, msg: Message) -> list[HostAction]:
    return [EchoAnswered(msg.tid, msg.stan, msg.mti), replace(host.reply(msg, "00"), fresh=False)]


HOST = HostHandler(ECHO, _host_echo)


def _register(stack: ExitStack, host: bool = True) -> None:
    """The toy pair on every registry, until ``stack`` closes (never leaks into other tests)."""
    stack.enter_context(M.KINDS.added(KIND))
    for cls in (EchoSent, EchoAnswered, EchoPassed):
        stack.enter_context(ev.REGISTRY.added(cls))
    stack.enter_context(EXCHANGES.added(SPEC))
    if host:
        stack.enter_context(HANDLERS.added(HOST))


@pytest.fixture
def echo_pair() -> Iterator[None]:
    with ExitStack() as stack:
        _register(stack)
        yield


def _run(*args: str) -> Any:
    """``possim run`` in-process, its timeline wide enough that no row wraps."""
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False, env={"COLUMNS": "240"})


def _trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


RUN = ("response-lost", "--policy", "reversal")


def test_echo_pair_goes_over_the_wire(echo_pair: None, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    result = _run(*RUN, "--json", "--trace", str(trace))
    assert result.exit_code == 0, result.output
    records = _trace(trace)
    sent = [(r["side"], r["mti"]) for r in records if r["event"] == "msg_sent"]
    assert ("terminal", ECHO) in sent and ("host", ECHO_RESPONSE) in sent
    assert sent.index(("terminal", ECHO)) < sent.index(("terminal", M.PURCHASE))  # before the first sale
    names = [r["event"] for r in records]
    assert names.count(EchoSent.NAME) == names.count(EchoAnswered.NAME) == names.count(EchoPassed.NAME) == 1
    assert next(r for r in records if r["event"] == EchoPassed.NAME)["rc"] == "00"


def test_echo_pair_shows_in_the_timeline(echo_pair: None) -> None:
    result = _run(*RUN)
    assert result.exit_code == 0, result.output
    assert "-> 0820 echo test stan" in result.output
    assert "<- 0830 echo test response stan" in result.output
    assert "echo test 000001 sent: is the line up?" in result.output
    assert "echo test 000001 answered: nothing booked" in result.output
    assert "echo_test_passed 0830" not in result.output  # EchoPassed has no MTI field: its name alone
    assert "echo_test_passed" in result.output


def test_echo_pair_changes_no_outcome() -> None:
    without = json.loads(_run(*RUN, "--json").output)
    with ExitStack() as stack:
        _register(stack)
        with_echo = json.loads(_run(*RUN, "--json").output)
    moved = {"virtual_seconds"}  # the echo test's round trip comes first
    assert {k: v for k, v in with_echo.items() if k not in moved} == {k: v for k, v in without.items()
                                                                       if k not in moved}
    assert with_echo["virtual_seconds"] >= without["virtual_seconds"]


def test_a_kind_without_host_handler_is_dropped_on_purpose(tmp_path: Path) -> None:
    """Registered on the wire but not at the host: the host drops the 0820 with an event, no KeyError;
    the terminal's echo test times out and the sale goes on."""
    trace = tmp_path / "trace.jsonl"
    with ExitStack() as stack:
        _register(stack, host=False)
        result = _run(*RUN, "--json", "--trace", str(trace))
    assert result.exit_code == 0, result.output
    dropped = [r for r in _trace(trace) if r["event"] == "request_dropped"]
    assert [r["mti"] for r in dropped] == [ECHO]
    assert "no host handler" in dropped[0]["reason"]


def test_the_toy_kind_is_checked_like_possim_own() -> None:
    """Registered, 0820 is a known MTI with a name and its required fields; unregistered, it is not."""
    with M.KINDS.added(KIND):
        assert ECHO in M.KNOWN and ECHO_RESPONSE in M.RESPONSES and M.NAMES[ECHO] == "echo test"
        assert M.response_to(ECHO) == ECHO_RESPONSE and M.KINDS.of(ECHO_RESPONSE) is KIND
        assert validate(Message(mti=ECHO, stan="000001", transmission="1207101010", tid="TERM0001")) is None
    assert ECHO not in M.KNOWN and ECHO not in M.NAMES
    assert validate(Message(mti=ECHO, stan="000001", transmission="1207101010", tid="TERM0001")) is not None


_LOST_ECHO = """\
title = "The echo test's answer is lost"
description = "The terminal checks the line before its first sale; the answer never comes back."
seed = 1

[[faults]]
action = "drop"
direction = "to_terminal"
mti = "0830"
nth = 1

[[transactions]]
at = 0
amount = "25.00"
"""


def test_a_scenario_fault_may_name_the_toy_mti(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """While the kind is registered a scenario may drop its answer: the echo test times out, the sale
    goes on; without it the scenario names an unknown MTI, one line and exit 2."""
    scenario, trace = tmp_path / "lost-echo.toml", tmp_path / "trace.jsonl"
    scenario.write_text(_LOST_ECHO)
    with ExitStack() as stack:
        _register(stack)
        result = _run(str(scenario), "--policy", "reversal", "--json", "--trace", str(trace))
    assert result.exit_code == 0, result.output
    records = _trace(trace)
    assert [r["mti"] for r in records if r["event"] == "net_dropped"] == [ECHO_RESPONSE]
    assert not [r for r in records if r["event"] == EchoPassed.NAME]
    assert json.loads(result.output)["approved"] == 1
    with pytest.raises(SystemExit) as exited:  # possim's entry point: the error as one line, exit 2
        main(["run", str(scenario), "--json"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown MTI '0830'" in err[0]

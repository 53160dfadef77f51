"""``possim proxy`` between real processes: a ``possim terminal`` and a ``possim acquirer`` over TCP,
the proxy losing the first 0210 by its MTI. Every wait is on a readiness line, a log line or a
process ending; the verdicts are read from the files and outputs the processes leave."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from possim.cli import main
from possim.i18n import Tr
from possim.processes.broker import free_port
from possim.processes.proxy import wire_verdict
from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol.framing import CupDeframer, CupFraming, Deframer, Tpdu, frame
from possim.protocol.messages import Message
from possim.running.realtime import run_tcp
from possim.running.replay import load_trace
from possim.running.trace import Trace
from possim.scenario import load
from tests.conftest import SCENARIOS
from tests.procs import POSSIM, Proc, check, fleet, wait_for

SALE_SCENARIO = """
title = "One sale through a proxy"
description = "One purchase; the proxy in front of the host decides what becomes of each message."

[terminal]
response_timeout = 3.0
reversal_timeout = 3.0

[[transactions]]
at = 0
amount = "25.00"
"""
LOSE_FIRST_0210 = """
[[faults]]
action = "drop"
direction = "to_terminal"
mti = "0210"
nth = 1
"""
READY = "possim proxy: listening on "
CUP_SALE = Message(mti="0200", pan="6212345678901232", processing_code="000000", amount=12345,
                   transmission="0612103015", stan="000042", local_time="103015", local_date="0612",
                   tid="TERM0001", mid="898310048990001", currency="156")


def _possim(*args: str) -> subprocess.CompletedProcess[str]:
    """``possim ARGS`` to its end; its timeline wide enough that no row wraps."""
    return subprocess.run([*POSSIM, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def _ready(proxy: Proc) -> None:
    """The proxy's readiness line on stderr: from then on it accepts connections."""
    wait_for(lambda: READY in proxy.log.read_text(errors="replace") or proxy.exit_code() is not None, 60,
             "the proxy's readiness line")
    assert proxy.exit_code() is None, proxy.tail()


def _stopped(proxy: Proc) -> tuple[int, dict[str, object]]:
    """SIGTERM, then the exit code and the verdict the proxy printed (``--json``)."""
    assert proxy.proc is not None
    proxy.proc.send_signal(signal.SIGTERM)
    code, out = proxy.finish()
    return code, json.loads(out)


def _sale_through_proxy(tmp_path: Path, policy: str) -> tuple[dict[str, object], int, dict[str, object], Path]:
    """A real acquirer, the proxy losing the first 0210 in front of it, a real terminal paying once through
    it. The terminal's summary, the proxy's exit code and verdict, and the proxy's trace."""
    (tmp_path / "sale.toml").write_text(SALE_SCENARIO, encoding="utf-8")
    (tmp_path / "faults.toml").write_text(LOSE_FIRST_0210, encoding="utf-8")
    host_port, proxy_port = free_port(), free_port()
    trace = tmp_path / "proxy.jsonl"
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{host_port}",
                                     "--ledger", str(tmp_path / "L.db")], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        proxy = make("proxy", ["proxy", "--listen", f"tcp://127.0.0.1:{proxy_port}", "--upstream",
                               f"tcp://127.0.0.1:{host_port}", "--faults", str(tmp_path / "faults.toml"),
                               "--trace", str(trace), "--json"], tmp_path / "proxy.log").start()
        _ready(proxy)
        terminal = _possim("terminal", str(tmp_path / "sale.toml"), "--transport", "tcp", "--connect",
                           f"tcp://127.0.0.1:{proxy_port}", "--tid", "TERM0001", "--policy", policy,
                           "--journal", str(tmp_path / "J.db"))
        assert terminal.returncode == 0, terminal.stderr[-2000:]
        code, verdict = _stopped(proxy)
        assert acquirer.stop() == 0
    return json.loads(terminal.stdout), code, verdict, trace


def test_a_lost_0210_is_reversed_and_the_wire_verdict_finds_no_sale_at_risk(tmp_path: Path) -> None:
    summary, code, verdict, trace = _sale_through_proxy(tmp_path, "reversal")
    assert (summary["approved"], summary["reversed"], summary["pending_reversals"]) == (0, 1, 0)
    assert code == 0
    assert (verdict["answers_lost"], verdict["reversals"], verdict["sales_at_risk"]) == (1, 1, 0)
    assert verdict["messages"] == 6  # the sign-on 0800 and 0810, then 0200, 0210 (lost), 0400, 0410
    check_code, money, err = check(tmp_path / "J.db", tmp_path / "L.db")
    assert check_code == 0, (money, err)
    assert money["orphaned_debits"] == 0 and money["reversed"] == 1

    records = load_trace(trace)
    assert isinstance(records[0].event, ev.ProxyRun)
    dropped = [s.event for s in records if isinstance(s.event, ev.NetDropped)]
    assert [(d.dir, d.mti, d.nth, d.reason, d.tid) for d in dropped] == [
        ("to_terminal", "0210", 1, "rule_drop", "TERM0001")]
    delivered = [(s.event.side, s.event.mti) for s in records if isinstance(s.event, ev.MsgReceived)]
    assert delivered == [("host", "0800"), ("terminal", "0810"),  # the terminal process signs on first
                         ("host", "0200"), ("host", "0400"), ("terminal", "0410")]

    replayed = _possim("replay", str(trace), "--report", str(tmp_path / "report.html"))
    assert replayed.returncode == 0, replayed.stderr
    assert "0210 LOST (rule drop)" in replayed.stdout and "matches the recording" in replayed.stdout
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "rule drop" in page
    as_json = json.loads(_possim("replay", str(trace), "--json").stdout)
    assert as_json["matches_recording"] is True and as_json["answers_lost"] == 1
    chinese = _possim("replay", str(trace), "--lang", "zh")
    assert chinese.returncode == 0 and "丢失的应答" in chinese.stdout and "线路结论与记录一致" in chinese.stdout
    assert "通用 ISO 8583" in chinese.stdout and "(iso)" not in chinese.stdout, chinese.stdout


def test_without_recovery_the_lost_answer_leaves_a_sale_at_risk(tmp_path: Path) -> None:
    summary, code, verdict, _ = _sale_through_proxy(tmp_path, "none")
    assert summary["reversed"] == 0
    assert code == 1
    assert (verdict["answers_lost"], verdict["reversals"], verdict["sales_at_risk"]) == (1, 0, 1)
    assert verdict["at_risk"] == [{"tid": "TERM0001", "stan": "000002"}]
    check_code, money, _ = check(tmp_path / "J.db", tmp_path / "L.db")
    assert check_code == 1 and money["orphaned_debits"] == 1  # the host's ledger agrees with the wire


def test_cup_frames_pass_with_their_tpdu_and_are_read_by_mti(tmp_path: Path) -> None:
    """A CUP 0200 through the proxy to a CUP acquirer: the 0210 comes back with the TPDU swapped, and
    the proxy, told to stop after two messages, read both (tid, STAN) through the TPDU and header."""
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    host_port, proxy_port = free_port(), free_port()
    trace = tmp_path / "cup.jsonl"
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--profile", "cup", "--listen",
                                     f"tcp://127.0.0.1:{host_port}", "--ledger", str(tmp_path / "L.db")],
                        tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        proxy = make("proxy", ["proxy", "--profile", "cup", "--listen", f"tcp://127.0.0.1:{proxy_port}",
                               "--upstream", f"tcp://127.0.0.1:{host_port}", "--faults", str(tmp_path / "none.toml"),
                               "--max-messages", "2", "--trace", str(trace), "--json"], tmp_path / "proxy.log").start()
        _ready(proxy)
        deframer = CupDeframer()
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=60) as sock:
            sock.sendall(CupFraming().frame(cup.encode(CUP_SALE)))
            answers: list[bytes] = []
            while not answers:
                chunk = sock.recv(65536)
                assert chunk, "the proxy closed the connection before the answer"
                answers = deframer.feed(chunk)
        code, verdict = proxy.finish()
        assert acquirer.stop() == 0
    answer = cup.decode(answers[0])
    assert (answer.mti, answer.stan, answer.tid) == ("0210", "000042", "TERM0001")
    assert deframer.last_tpdu == Tpdu().reply()
    assert code == 0
    assert json.loads(verdict)["messages"] == 2
    sent = [(s.event.side, s.event.mti, s.event.tid, s.event.stan) for s in load_trace(trace)
            if isinstance(s.event, ev.MsgSent)]
    assert sent == [("terminal", "0200", "TERM0001", "000042"), ("host", "0210", "TERM0001", "000042")]


@pytest.mark.parametrize(("content", "names"), [
    ('[[faults]]\naction = "drop"\ndirection = "to_terminal"\nmti = "0299"\n', "faults.0.mti"),
    ('title = "not a fault file"\n', "title"),
    ("[network.to_host]\nloss = 2\n", "network.to_host.loss"),
])
def test_a_bad_fault_file_is_one_line_and_exit_2(tmp_path: Path, content: str, names: str) -> None:
    (tmp_path / "bad.toml").write_text(content, encoding="utf-8")
    out = _possim("proxy", "--listen", f"tcp://127.0.0.1:{free_port()}", "--upstream", "tcp://127.0.0.1:9",
                  "--faults", str(tmp_path / "bad.toml"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("possim: error: ") and names in lines[0], out.stderr
    assert "Traceback" not in out.stderr and READY not in out.stderr


def test_a_remote_upstream_is_refused_without_allow_remote(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    out = _possim("proxy", "--listen", f"tcp://127.0.0.1:{free_port()}", "--upstream", "tcp://192.0.2.10:5000",
                  "--faults", str(tmp_path / "none.toml"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--upstream" in lines[0] and "--allow-remote" in lines[0], out.stderr


def test_an_undecodable_frame_passes_untouched_and_a_delayed_answer_still_arrives(tmp_path: Path) -> None:
    """Garbage in a valid length frame reaches the host as it was sent (the host logs it); the 0210 the
    fault file delays is traced as delayed and then delivered."""
    (tmp_path / "delay.toml").write_text('[[faults]]\naction = "delay"\ndirection = "to_terminal"\nmti = "0210"\n'
                                         "delay = 0.2\n", encoding="utf-8")
    host_port, proxy_port = free_port(), free_port()
    trace = tmp_path / "proxy.jsonl"
    sale = Message(mti="0200", pan="4000000000000002", processing_code="000000", amount=2500,
                   transmission="0612103015", stan="000043", tid="TERM0002", mid="MERCHANT0000001", currency="978")
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{host_port}",
                                     "--ledger", str(tmp_path / "L.db")], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        proxy = make("proxy", ["proxy", "--listen", f"tcp://127.0.0.1:{proxy_port}", "--upstream",
                               f"tcp://127.0.0.1:{host_port}", "--faults", str(tmp_path / "delay.toml"),
                               "--trace", str(trace), "--json"], tmp_path / "proxy.log").start()
        _ready(proxy)
        deframer = Deframer()
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=60) as sock:
            sock.sendall(frame(b"\x07\xffnot ISO 8583 at all"))
            acquirer.wait_event("malformed_frame")
            sock.sendall(frame(codec.encode(sale)))
            answers: list[bytes] = []
            while not answers:
                chunk = sock.recv(65536)
                assert chunk, "the proxy closed the connection before the answer"
                answers = deframer.feed(chunk)
        code, verdict = _stopped(proxy)
        assert acquirer.stop() == 0
    assert (codec.decode(answers[0]).mti, codec.decode(answers[0]).stan) == ("0210", "000043")
    assert code == 0 and (verdict["malformed"], verdict["messages"]) == (1, 3)
    events = [s.event for s in load_trace(trace)]
    assert [e.reason for e in events if isinstance(e, ev.MalformedFrame)] == [
        "cannot decode as iso ISO 8583; forwarded untouched"]
    delayed = [e for e in events if isinstance(e, ev.NetDelayed)]
    assert [(d.mti, d.stan, d.delays) for d in delayed] == [("0210", "000043", (0.2,))]
    arrived = [i for i, e in enumerate(events) if isinstance(e, ev.MsgReceived) and e.side == "terminal"]
    assert len(arrived) == 1 and arrived[0] > events.index(delayed[0])


def test_replay_draws_a_recorded_real_time_run_as_html(tmp_path: Path) -> None:
    result = asyncio.run(run_tcp(load(SCENARIOS / "response-lost.toml"), "reversal", 1, 0.05))
    assert result.quiescent
    result.trace.write(tmp_path / "run.jsonl")
    out = _possim("replay", str(tmp_path / "run.jsonl"), "--report", str(tmp_path / "run.html"))
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert "<svg" in page and "0210" in page and "orphaned debits" in page


def test_a_lost_approval_never_reversed_is_at_risk_and_every_view_speaks_chinese(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The verdict from hand-made records of real bytes; ``possim replay`` of them in Chinese, with the
    HTML page, asks the catalogue for nothing it lacks."""
    sale = Message(mti="0200", pan="4000000000000002", processing_code="000000", amount=2500,
                   transmission="0612103015", stan="000007", tid="TERM0003", mid="MERCHANT0000001", currency="978")
    trace = Trace(lambda: 1.0)
    trace.emit(ev.ProxyRun("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "iso", 1, {}))
    trace.emit(ev.MsgSent("terminal", sale.tid, sale.stan, "0200"))
    trace.emit(ev.MsgReceived("host", "0200", sale.tid, sale.stan, data=codec.encode(sale).hex()))
    trace.emit(ev.MsgSent("host", sale.tid, sale.stan, "0210"))
    trace.emit(ev.NetDropped("to_terminal", "0210", 1, "rule_drop", sale.tid, sale.stan))
    verdict = wire_verdict(trace.records)
    assert (verdict.answers_lost, verdict.reversals, verdict.sales_at_risk) == (1, 0, (("TERM0003", "000007"),))
    trace.emit(ev.RunFinished(quiescent=True, summary=verdict.summary()))
    trace.write(tmp_path / "t.jsonl")
    before = {m for m in Tr.missing if m[0] == "zh"}
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(tmp_path / "t.jsonl"), "--lang", "zh", "--report", str(tmp_path / "t.html")])
    assert exited.value.code == 0
    assert {m for m in Tr.missing if m[0] == "zh"} == before
    out = capsys.readouterr().out
    assert "终端 TERM0003 流水号 000007" in out and "线路结论与记录一致" in out
    assert "<html lang='zh-CN'>" in (tmp_path / "t.html").read_text(encoding="utf-8")

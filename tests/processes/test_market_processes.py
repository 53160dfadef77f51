"""The market of ``--lang`` (docs/glossary.md, "Market") reaches the processes: a ``possim terminal`` and a
``possim acquirer --scenario`` under ``--lang zh`` meet in yuan with UnionPay cards, as ``possim run --lang zh``.

What the terminal sends is read from the wire itself: a ``possim proxy`` (no faults) between the two
records every frame it passes, and the test decodes the ISO 8583 bytes. Every wait is on a readiness
line or a process ending."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from possim.processes.broker import free_port
from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol.messages import Message
from possim.running.replay import load_trace
from tests.procs import POSSIM, Proc, fleet, wait_for

#: Two sales on generic test cards; the host declines the second card (as written: in the file's market).
SCENARIO = """
title = "Two sales, one card declined"
description = "The default card is approved; the host declines the second card."

[terminal]
response_timeout = 5.0
reversal_timeout = 5.0

[host]
decline_pans = ["4000000000000010"]

[[transactions]]
at = 0
amount = "25.00"

[[transactions]]
at = 0.5
amount = "10.00"
pan = "4000000000000010"
"""
READY = "possim proxy: listening on "


def _proxy_ready(proxy: Proc) -> None:
    wait_for(lambda: READY in proxy.log.read_text(errors="replace") or proxy.exit_code() is not None, 60,
             "the proxy's readiness line")
    assert proxy.exit_code() is None, proxy.tail()


def _sales_over_the_wire(tmp_path: Path, lang: str) -> tuple[dict[str, object], list[Message]]:
    """A real acquirer (host behaviour from the scenario), a proxy recording the wire in front of it, and a
    real terminal paying the scenario's two sales, all under ``--lang``. The terminal's summary and the
    0200s the host received, decoded from the bytes the proxy passed."""
    scenario = tmp_path / "two-sales.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    (tmp_path / "faults.toml").write_text("", encoding="utf-8")
    host_port, proxy_port = free_port(), free_port()
    trace = tmp_path / "wire.jsonl"
    with fleet() as make:
        acquirer = make("acquirer", ["acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{host_port}",
                                     "--scenario", str(scenario), "--ledger", str(tmp_path / "L.db"),
                                     "--lang", lang], tmp_path / "acquirer.log").start()
        acquirer.wait_event("acquirer_ready")
        proxy = make("proxy", ["proxy", "--listen", f"tcp://127.0.0.1:{proxy_port}", "--upstream",
                               f"tcp://127.0.0.1:{host_port}", "--faults", str(tmp_path / "faults.toml"),
                               "--trace", str(trace), "--json"], tmp_path / "proxy.log").start()
        _proxy_ready(proxy)
        terminal = subprocess.run([*POSSIM, "terminal", str(scenario), "--transport", "tcp", "--connect",
                                   f"tcp://127.0.0.1:{proxy_port}", "--tid", "TERM0001", "--policy", "reversal",
                                   "--journal", str(tmp_path / "J.db"), "--no-log", "--lang", lang],
                                  capture_output=True, text=True, timeout=120)
        assert terminal.returncode == 0, terminal.stderr[-2000:]
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGTERM)
        code, _ = proxy.finish()
        assert code == 0, proxy.tail()
        assert acquirer.stop() == 0
    requests = [codec.decode(bytes.fromhex(s.event.data)) for s in load_trace(trace)
                if isinstance(s.event, ev.MsgReceived) and s.event.side == "host" and s.event.mti == "0200"
                and s.event.data]
    return json.loads(terminal.stdout), requests


def test_under_zh_terminal_and_acquirer_processes_trade_in_yuan_with_unionpay_cards(tmp_path: Path) -> None:
    summary, requests = _sales_over_the_wire(tmp_path, "zh")
    assert [(m.currency, m.pan) for m in requests] == [("156", "6212345678901232"), ("156", "6212345678900010")]
    # the acquirer declines the UnionPay twin of the card the file declines: its [host] is in the market too
    assert (summary["approved"], summary["declined"]) == (1, 1)


def test_in_english_the_processes_keep_the_scenario_as_written(tmp_path: Path) -> None:
    summary, requests = _sales_over_the_wire(tmp_path, "en")
    assert [(m.currency, m.pan) for m in requests] == [("978", "4000000000000002"), ("978", "4000000000000010")]
    assert (summary["approved"], summary["declined"]) == (1, 1)

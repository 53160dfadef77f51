"""possim's pytest plugin, loaded here as in any user's suite: by its ``pytest11`` entry point.

Each fixture starts a real process (``possim acquirer`` over TCP, Mosquitto); the tests talk to
it over real sockets with real ISO 8583 bytes and read its real SQLite ledger.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from possim import pytest_plugin
from possim.acquirer_sim.config import HostConfig
from possim.processes import keys
from possim.protocol import codec
from possim.protocol.framing import Deframer, frame
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message
from possim.pytest_plugin import Acquirer

CARD = "4000000000000002"


def _sale(acquirer: Acquirer, stan: str, amount: int, tid: str = "QATERM01", key: MacKey | None = None) -> Message:
    """A 0200 sent the way a terminal's own client would (MACed with ``key``); its 0210."""
    sale = Message(mti="0200", stan=stan, transmission="1207101500", tid=tid, pan=CARD,
                   processing_code="000000", amount=amount, currency="978")
    with socket.create_connection(acquirer.address, timeout=60) as s:
        s.sendall(frame(codec.encode(sale, key)))
        deframer, answers = Deframer(), []
        while not answers:
            chunk = s.recv(4096)
            assert chunk, "the acquirer closed the connection without answering"
            answers = deframer.feed(chunk)
    return codec.decode(answers[0], {tid: key} if key else None)


def test_the_plugin_is_loaded_by_its_entry_point(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.get_plugin("possim") is pytest_plugin
    assert any(line.startswith("possim_acquirer(") for line in request.config.getini("markers"))


def test_possim_acquirer_answers_a_sale_and_books_it(possim_acquirer: Acquirer) -> None:
    host, port = possim_acquirer.address
    assert possim_acquirer.url == f"tcp://{host}:{port}" and host == "127.0.0.1" and port > 0
    assert possim_acquirer.profile == "iso" and possim_acquirer.balance(CARD) is None
    answer = _sale(possim_acquirer, "000001", 2500)
    assert (answer.mti, answer.stan, answer.response_code) == ("0210", "000001", "00")
    assert [(d.stan, d.pan, d.kind, d.amount) for d in possim_acquirer.debits()] == [("000001", CARD, "debit", 2500)]
    assert possim_acquirer.balance(CARD) == HostConfig().default_balance - 2500
    assert any(e.get("event") == "acquirer_ready" for e in possim_acquirer.log())


@pytest.mark.possim_acquirer(profile="cup")
def test_the_marker_sets_the_acquirers_profile(possim_acquirer: Acquirer) -> None:
    assert possim_acquirer.profile == "cup"
    ready = next(e for e in possim_acquirer.log() if e.get("event") == "acquirer_ready")
    assert (ready["port"], ready.get("dialect")) == (possim_acquirer.address[1], "cup")


def test_the_factory_starts_separate_acquirers_and_stops_them(
        possim_acquirer_factory: Callable[..., Acquirer]) -> None:
    first, second = possim_acquirer_factory(), possim_acquirer_factory()
    assert first.address != second.address and first.ledger_path != second.ledger_path
    _sale(first, "000001", 100)
    assert second.debits() == [] and len(first.debits()) == 1
    assert first.stop() == 0  # SIGTERM: a clean stop
    assert first.stop() == 0  # and again: nothing left to stop
    with pytest.raises(ProcessLookupError):
        os.kill(first.process.pid, 0)


def test_the_factory_gives_an_acquirer_the_keys_it_is_asked_for(
        possim_acquirer_factory: Callable[..., Acquirer], tmp_path: Path) -> None:
    ring = keys.generate(["QATERM01"])
    keys.write(tmp_path / "keys.json", ring)
    acquirer = possim_acquirer_factory(keys=tmp_path / "keys.json")
    assert _sale(acquirer, "000001", 700).response_code == "63"  # no MAC: a security violation, nothing booked
    assert _sale(acquirer, "000002", 700, key=ring.mac_key("QATERM01")).response_code == "00"
    assert [d.stan for d in acquirer.debits()] == ["000002"]


def test_an_acquirer_that_cannot_start_fails_with_its_own_words(
        possim_acquirer_factory: Callable[..., Acquirer], tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"exited with 2 before it was ready:\n.*possim: error: .*no-such-keys"):
        possim_acquirer_factory(keys=tmp_path / "no-such-keys.json")


def test_possim_broker_accepts_connections(possim_broker: str) -> None:
    assert possim_broker.startswith("mqtt://127.0.0.1:")
    with socket.create_connection(("127.0.0.1", int(possim_broker.rsplit(":", 1)[1])), timeout=30):
        pass


def test_an_acquirer_not_ready_in_time_is_stopped_and_named(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The readiness wait is bounded (``--possim-ready-timeout``, 60 s unless set); a process that misses
    it is not left running. A bound of 0 s cannot be met by any interpreter's start."""
    assert pytest_plugin._timeout(request.config) == pytest_plugin.READY_TIMEOUT
    with pytest.raises(RuntimeError, match="was not ready within 0s"):
        pytest_plugin.start_acquirer(tmp_path, timeout=0)
    assert _naming(tmp_path) == []


def _naming(folder: Path) -> list[str]:
    """The processes whose command line names ``folder`` (only the acquirer started in it would)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(folder).encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:  # a process that ended meanwhile
            continue
    return found

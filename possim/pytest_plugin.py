"""possim's pytest plugin: a real acquirer host and a real MQTT broker as fixtures for your own tests.

Registered as the ``pytest11`` entry point ``possim``: once possim is installed, plain ``pytest``
offers these fixtures (``pytest --fixtures`` lists them) with nothing to import:

- ``possim_acquirer``: a ``possim acquirer --transport tcp`` process on a free loopback port with
  its own SQLite ledger, started for the test and stopped after it (SIGTERM, then SIGKILL). Point
  your terminal at ``possim_acquirer.url``; read what it booked with ``.balance(card)``,
  ``.debits()``, ``.entries()``. Mark a test ``@pytest.mark.possim_acquirer(profile="cup",
  keys=path)`` for other settings;
- ``possim_acquirer_factory``: start as many acquirers as a test needs, each with its own settings;
- ``possim_broker``: a Mosquitto on a free port (``possim_broker`` is its ``mqtt://`` URL).

Why processes and not objects: your client then talks to the very program ``possim acquirer``
is, over real sockets, and every wait is on a readiness line the process logs (``acquirer_ready``),
never on a sleep. Nothing from possim is imported until a fixture is used, so the plugin costs a
suite that does not use it nothing.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from possim.processes.child import json_lines

#: How long an acquirer may take to log that it is ready (a busy CI machine is slow to start Python).
READY_TIMEOUT = 60.0
#: How long an acquirer may take to stop after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 30.0
MARKER = "possim_acquirer"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("possim", "possim fixtures (possim_acquirer, possim_broker)")
    group.addoption("--possim-ready-timeout", type=float, default=None, metavar="SECONDS",
                    help=f"How long a possim process may take to become ready (default {READY_TIMEOUT:g}).")
    parser.addini("possim_ready_timeout", f"How long a possim process may take to become ready "
                  f"(default {READY_TIMEOUT:g} seconds).", default=str(READY_TIMEOUT))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(profile='iso', keys=None, scenario=None): settings of the "
                            "possim_acquirer fixture for this test (possim's plugin).")


class Entry(NamedTuple):
    """One row of the ledger's book of record (``entries``): money moved for one request."""

    tid: str
    stan: str
    transmission: str
    pan: str
    kind: str  # debit, credit, hold, release, capture, refund
    amount: int  # minor units (cents)


@dataclass
class Acquirer:
    """A running ``possim acquirer`` over TCP, and what its ledger says."""

    host: str
    port: int
    ledger_path: Path
    profile: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)``: what ``socket.create_connection`` takes."""
        return (self.host, self.port)

    @property
    def url(self) -> str:
        """``tcp://127.0.0.1:PORT``: what ``possim terminal --connect`` takes."""
        return f"tcp://{self.host}:{self.port}"

    def balance(self, card: str) -> int | None:
        """The card's balance in minor units (cents) as the ledger holds it, or None before the host saw it."""
        rows = self._query("SELECT balance FROM accounts WHERE pan = ?", card)
        return int(rows[0][0]) if rows else None

    def entries(self) -> list[Entry]:
        """Every money movement the host booked, in order."""
        return [Entry(*row) for row in self._query(
            "SELECT tid, stan, transmission, pan, kind, amount FROM entries ORDER BY id")]

    def debits(self) -> list[Entry]:
        """The movements that took money from a customer (debits and captures), in order."""
        return [e for e in self.entries() if e.kind in ("debit", "capture")]

    def log(self) -> list[dict[str, Any]]:
        """The process's JSON log lines so far (``acquirer_ready``, ``msg_received``, ...)."""
        return json_lines(self.log_path)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not end; its exit code. Safe to call twice."""
        return _stop(self.process)

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        # read-only, waiting out the acquirer's write lock: reading never changes the ledger
        with closing(sqlite3.connect(f"file:{self.ledger_path}?mode=ro", uri=True, timeout=30)) as conn:
            return conn.execute(sql, args).fetchall()


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    return process.returncode


def _ready_port(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The port from the ``acquirer_ready`` line; fails with the log's tail if the process ends or never says it."""
    deadline = time.monotonic() + timeout
    while True:
        for event in json_lines(log):
            if event.get("event") == "acquirer_ready":
                return int(event["port"])
        if process.poll() is not None:
            raise RuntimeError(f"possim acquirer exited with {process.returncode} before it was ready:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"possim acquirer was not ready within {timeout:g}s:\n{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]) if log.exists() else ""


def start_acquirer(folder: Path, profile: str = "iso", keys: str | Path | None = None,
                   scenario: str | Path | None = None, timeout: float = READY_TIMEOUT) -> Acquirer:
    """Start ``possim acquirer --transport tcp`` on a free loopback port with its ledger in ``folder``.

    The port is the system's choice (``--listen tcp://127.0.0.1:0``), read back from the
    ``acquirer_ready`` log line, so two acquirers never race for one port. The caller stops it
    (``Acquirer.stop``); the fixtures do that for you.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ledger, log = folder / "ledger.db", folder / "acquirer.log"
    from possim.protocol.transports import for_url

    listen = "tcp://127.0.0.1:0"  # the transport is the one this address names
    argv = [sys.executable, "-m", "possim", "acquirer", "--transport", for_url(listen).name, "--listen", listen,
            "--ledger", str(ledger), "--profile", profile]
    # Without keys the acquirer is a lab host (no MACs), as a user's own client expects;
    # possim's processes are otherwise secure by default and would answer 63.
    argv += ["--keys", str(keys)] if keys is not None else ["--insecure"]
    if scenario is not None:
        argv += ["--scenario", str(scenario)]
    with log.open("ab") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sink)
    try:
        port = _ready_port(process, log, timeout)
    except BaseException:
        _stop(process)
        raise
    return Acquirer("127.0.0.1", port, ledger, profile, log, process)


def _timeout(config: pytest.Config) -> float:
    given = config.getoption("possim_ready_timeout")
    return float(given if given is not None else config.getini("possim_ready_timeout"))


@pytest.fixture
def possim_acquirer_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Callable[..., Acquirer]]:
    """Start acquirers with your settings: ``possim_acquirer_factory(profile="cup", keys=path, scenario=None)``.

    Each call starts one more process with its own ledger; every one is stopped when the test ends.
    ``profile``: ``iso`` or ``cup`` (CUP framing and host behaviour); ``keys``: a key file from
    ``possim keys`` (requests need MACs then); ``scenario``: host behaviour from a scenario's ``[host]``.
    """
    started: list[Acquirer] = []
    timeout = _timeout(request.config)

    def start(profile: str = "iso", keys: str | Path | None = None, scenario: str | Path | None = None) -> Acquirer:
        acquirer = start_acquirer(tmp_path_factory.mktemp("possim-acquirer"), profile, keys, scenario, timeout)
        started.append(acquirer)
        return acquirer

    try:
        yield start
    finally:
        for acquirer in reversed(started):
            acquirer.stop()


@pytest.fixture
def possim_acquirer(request: pytest.FixtureRequest, possim_acquirer_factory: Callable[..., Acquirer]) -> Acquirer:
    """A real ``possim acquirer`` over TCP for this test: ``.url``, ``.address``, ``.ledger_path``, ``.balance()``.

    Settings from ``@pytest.mark.possim_acquirer(profile=..., keys=..., scenario=...)``, else the ISO
    profile without MACs. Stopped (SIGTERM, then SIGKILL) when the test ends, whatever happened.
    """
    marker = request.node.get_closest_marker(MARKER)
    return possim_acquirer_factory(**(marker.kwargs if marker else {}))


@pytest.fixture
def possim_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Mosquitto on a free loopback port for this test; its URL (``mqtt://127.0.0.1:PORT``).

    ``possim acquirer --transport mqtt --broker URL`` and ``possim terminal`` meet there. Needs the
    ``mosquitto`` program installed.
    """
    from possim.processes.broker import Broker

    broker = Broker(state_dir=tmp_path_factory.mktemp("possim-mosquitto"))
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()

"""The transport recipe: a wire defined here, one registry entry, and every command can use it.

The toy is an asyncio-queue wire (real loop, one process). It is registered for the test only
(``REGISTRY.added``) and run through the CLI in-process: ``possim run`` and ``possim load`` pick it
by its declared capabilities, never by its name, and no possim module nor the architecture test
needs an edit for it. The toy counts what it carried, so the tests know the messages went over it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

import possim.cli
from possim.protocol import transports
from possim.protocol.ports import TraceSink
from possim.protocol.transports import REGISTRY, Endpoint, Origin, Transport

ROOT = Path(__file__).resolve().parent.parent.parent


class _QueueEnd:
    """One end: ``send`` queues at once; a task hands the queue to the peer on the loop."""

    def __init__(self, deliver: Callable[[bytes, Mapping[str, object] | None], None]) -> None:
        self.sent = self.received = 0
        self._queue: asyncio.Queue[tuple[bytes, Mapping[str, object] | None]] = asyncio.Queue()
        self._deliver = deliver
        self._busy = False
        self._task = asyncio.get_running_loop().create_task(self._pump())

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.sent += 1
        self._queue.put_nowait((data, meta))

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._busy

    async def _pump(self) -> None:
        while True:
            data, meta = await self._queue.get()
            self._busy = True
            try:
                QueueWire.carried += 1
                self._deliver(data, meta)
            finally:
                self._busy = False

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class QueueWire:
    """The toy transport: host and terminals in one process, joined by asyncio queues."""

    name = "queue"
    #: Messages carried by every queue wire (both directions), for the tests to count.
    carried: ClassVar[int] = 0

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._host: _QueueEnd | None = None
        self._on_request: Callable[[bytes, Origin], None] | None = None
        self._terminals: dict[str, tuple[_QueueEnd, Callable[[bytes], None]]] = {}

    async def open_host(self, on_request: Callable[[bytes, Origin], None], emit: TraceSink) -> _QueueEnd:
        self._on_request = on_request
        self._host = _QueueEnd(self._to_terminal)
        return self._host

    async def open_terminal(self, tid: str, on_response: Callable[[bytes], None], emit: TraceSink) -> _QueueEnd:
        end = _QueueEnd(self._to_host)
        self._terminals[tid] = (end, on_response)
        return end

    def describe(self) -> dict[str, object]:
        return {"queue": True}

    def _to_host(self, data: bytes, _meta: Mapping[str, object] | None) -> None:
        assert self._host is not None and self._on_request is not None
        self._host.received += 1
        self._on_request(data, Origin())

    def _to_terminal(self, data: bytes, meta: Mapping[str, object] | None) -> None:
        end, deliver = self._terminals[str((meta or {})["tid"])]
        end.received += 1
        deliver(data)


QUEUE = Transport("queue", __name__, "over asyncio queues", attribute="QueueWire")


@pytest.fixture
def queue() -> Iterator[Transport]:
    QueueWire.carried = 0
    with REGISTRY.added(QUEUE) as entry:
        yield entry


def test_run_goes_over_a_registered_transport(queue: Transport) -> None:
    result = CliRunner().invoke(possim.cli.cli, ["run", "response-lost", "--transport", "queue", "--policy",
                                                 "reversal", "--time-scale", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["transport"] == "queue"
    assert (summary["reversed"], summary["orphaned_debits"], summary["double_debits"]) == (1, 0, 0)
    assert summary["merchant_loss"] == summary["customer_loss"] == "0.00"
    assert QueueWire.carried >= 3  # the sale, its reversal (sent again until answered) and the answers


def test_load_goes_over_a_registered_transport(queue: Transport) -> None:
    result = CliRunner().invoke(possim.cli.cli, ["load", "--transport", "queue", "--terminals", "3", "--rate", "6",
                                                 "--duration", "1", "--hosts", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["transport"] == "queue"
    assert report["sales_completed"] == report["approved"] == sum(report["requests_per_host"]) > 0
    assert (report["orphaned_debits"], report["money_at_risk"]) == (0, "0.00")
    assert QueueWire.carried == 2 * report["sales_completed"]  # each sale: a request and its answer


def test_a_command_refuses_a_transport_it_cannot_use(queue: Transport) -> None:
    """The toy cannot be separate processes: ``possim terminal`` says so in one line, exit 2."""
    result = CliRunner().invoke(possim.cli.cli, ["terminal", "response-lost", "--transport", "queue"])
    assert result.exit_code == 2
    assert "queue" in result.output and "Traceback" not in result.output


def test_the_toy_is_gone_after_the_test() -> None:
    assert "queue" not in transports.names()
    result = CliRunner().invoke(possim.cli.cli, ["run", "response-lost", "--transport", "queue", "--json"])
    assert result.exit_code == 2


def _allowed() -> set[Path]:
    """Where a transport may be named: its registry and the wire modules the registry lists."""
    wires = {ROOT.joinpath(*t.module.split(".")[1:]).with_suffix(".py") for t in REGISTRY.values()
             if t.module.startswith("possim.protocol.")}
    return wires | {ROOT / "protocol" / "transports.py"}


def _sources() -> list[Path]:
    """possim's own modules, each once (``possim/protocol`` and friends are links to the top folders)."""
    found = {p.resolve() for folder in ("possim", "pos_sim", "acquirer_sim", "protocol")
             for p in (ROOT / folder).rglob("*.py")}
    return sorted(found - {p.resolve() for p in _allowed()})


def named_transports(paths: list[Path], names: tuple[str, ...]) -> list[str]:
    """Every string literal that is exactly a transport's name, as ``path:line: 'name'``."""
    return [f"{path.name}:{node.lineno}: {node.value!r}" for path in paths
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]


def test_no_module_outside_the_registry_names_a_transport() -> None:
    """Commands branch on what a transport can do: a name in a command is a transport it would mishandle."""
    sources = _sources()
    assert ROOT.resolve() / "possim" / "cli" / "run.py" in sources and len(sources) > 100
    assert named_transports(sources, transports.names()) == []


def test_the_name_check_finds_a_name(tmp_path: Path) -> None:
    """The check above can fail: a command branching on a transport's name is caught, with its line."""
    text = (ROOT / "possim" / "cli" / "run.py").read_text(encoding="utf-8")
    copy = tmp_path / "run.py"
    copy.write_text(text + '\n\ndef _legacy(transport: str) -> bool:\n    return transport == "tcp"\n',
                    encoding="utf-8")
    assert named_transports([copy], transports.names()) == [f"run.py:{len(text.splitlines()) + 4}: 'tcp'"]

"""Hosts under test for ``possim conform``: possim's own host with one behaviour broken each.

Each subclass of ``AcquirerHost`` breaks exactly one rule a conforming host keeps, so conform
must fail exactly that rule's case and pass the others. ``serving`` runs one over real TCP
sockets in the test's event loop (``realtime.serve_acquirer``, as ``possim acquirer`` does),
with a SQLite ledger file that ``ledger_balance.py`` reads for ``--balance-command``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost, HostAction
from possim.acquirer_sim.ledger import Ledger, Original
from possim.processes.broker import free_port
from possim.protocol import codec
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message
from possim.protocol.tcp import Wire
from possim.protocol.transports import Endpoint
from possim.running.realtime import serve_acquirer

BALANCE_SCRIPT = Path(__file__).with_name("ledger_balance.py")


class _Rebooking(AcquirerHost):
    """Helpers for the broken hosts: a fresh approval for an original already on file, debited again."""

    def _approve_again(self, now: float, msg: Message) -> list[HostAction]:
        rrn, auth = self._ids(now)
        self.ledger._write("debit_again", "UPDATE accounts SET balance = balance - ? WHERE pan = ?",
                           (msg.amount or 0, msg.pan or ""))
        return [self._answer(msg, "00", rrn, auth, quick=True)]

    def _on_file(self, msg: Message) -> Original | None:
        return self.ledger.find(msg.key())


class DoubleDebitHost(_Rebooking):
    """Breaks rule 1: a repeated original still debited is approved and debited again."""

    def _original(self, now: float, msg: Message) -> list[HostAction]:
        seen = self._on_file(msg)
        if seen is not None and seen.state == "debited":
            return self._approve_again(now, msg)
        return super()._original(now, msg)


class LateOriginalHost(_Rebooking):
    """Breaks rule 4: an original repeated after its reversal is approved and debited as a new sale."""

    def _original(self, now: float, msg: Message) -> list[HostAction]:
        seen = self._on_file(msg)
        if seen is not None and seen.state == "reversed":
            return self._approve_again(now, msg)
        return super()._original(now, msg)


class UnknownReversalHost(AcquirerHost):
    """Breaks rule 2: a reversal of an original it never saw is credited and answered 00 (the key is
    still closed, so the late original is refused: only the answer and the money are wrong)."""

    def _reversal(self, now: float, msg: Message) -> list[HostAction]:
        key = msg.original.key(msg.tid) if msg.original is not None else msg.key()
        if self.ledger.find(key) is None and self.ledger.reversal_seen(key) is None:
            self.ledger.close_key(now, key, "reversal_before_original")
            self.ledger.record_reversal(now, key, "credited", "00")
            self.ledger.available(msg.pan or "")  # opens the account of a card not seen before
            self.ledger._write("credit_unknown", "UPDATE accounts SET balance = balance + ? WHERE pan = ?",
                               (msg.amount or 0, msg.pan or ""))
            return [self._reply(msg, "00")]
        return super()._reversal(now, msg)


class MacBlindHost(AcquirerHost):
    """Breaks rule 7: a request with a wrong or missing MAC is handled as if it were authentic."""

    def receive(self, now: float, data: bytes, sender: str | None = None) -> list[HostAction]:
        self._now = now
        return super().receive(now, data, sender)

    def _security(self, exc: codec.MacError, sender: str | None) -> list[HostAction]:
        return self._request(self._now, exc.message)


HOSTS: dict[str, type[AcquirerHost]] = {"plain": AcquirerHost, "double-debit": DoubleDebitHost,
                                        "late-original": LateOriginalHost, "unknown-reversal": UnknownReversalHost,
                                        "mac-blind": MacBlindHost}


@contextlib.asynccontextmanager
async def serving(kind: str | type[AcquirerHost], ledger_path: Path, keys: Mapping[str, MacKey] | None = None,
                  profile: str = "iso") -> AsyncIterator[int]:
    """Serve host ``kind`` (a name of ``HOSTS``, or a host class) on a free loopback port until the
    block ends, as ``possim acquirer`` serves; yields the port once it listens."""
    port = free_port()
    wire = Wire(Endpoint(f"tcp://127.0.0.1:{port}", dialect=profile))
    config = HostConfig(profile=profile)
    ledger = Ledger(str(ledger_path), default_balance=config.default_balance)
    host = (HOSTS[kind] if isinstance(kind, str) else kind)(config, ledger, random.Random(1), keys)
    ready, stop = asyncio.Event(), asyncio.Event()

    def emit(event: str, **_fields: object) -> None:
        if event == "acquirer_ready":
            ready.set()

    task = asyncio.create_task(serve_acquirer(wire, host, emit, stop))
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        yield port
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        ledger.close()

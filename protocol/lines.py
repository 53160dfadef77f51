"""A terminal's host lines: a primary and backups, and when to leave one for the next.

Acquirers give a terminal more than one host address (a second line: another host of the same
acquirer, the same ledger behind it). The terminal switches to the next address after
``failover_after`` consecutive response timeouts on the one it uses, or at once when that
line cannot carry a request (its connection is down: a connect failure). Whatever the
terminal sends next, a reversal of a sale sent on the primary included, goes over the new
line; the acquirer behind both finds the sale in its one ledger.

:class:`Lines` is the transport under the terminal's fault layer: it sends over the current
line and counts. The terminal driver tells it of timeouts and answers (it decides nothing
itself); the state machine never knows which line carried its message. No clock, no socket:
a line in an ``outage`` window (a scenario's ``[[line_outages]]``, on the run's clock) loses
what is sent on it, as a cut line does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from possim.protocol import codec
from possim.protocol.errors import ProtocolError
from possim.protocol.events import Event, LineDownDrop, LineSwitched
from possim.protocol.ports import Transport


@dataclass(frozen=True, slots=True)
class Line:
    """One host address and the transport to it; ``outages``: (start, end) windows in which it is cut."""

    name: str
    transport: Transport
    outages: tuple[tuple[float, float], ...] = ()

    def cut(self, now: float) -> bool:
        return any(start <= now < end for start, end in self.outages)

    def down(self) -> bool:
        """The transport says it has no connection (a TCP link that lost its host)."""
        connected: Any = getattr(self.transport, "connected", None)
        return connected is not None and not connected.is_set()


class Lines:
    """The current line, switched after ``after`` consecutive timeouts or when the line is down."""

    def __init__(self, tid: str, lines: Sequence[Line], after: int, now: Callable[[], float],
                 emit: Callable[[Event], None]) -> None:
        self.tid, self.lines, self.after, self.now, self.emit = tid, list(lines), after, now, emit
        self.current = 0
        self.timeouts = 0  # consecutive, on the current line

    @property
    def line(self) -> Line:
        return self.lines[self.current]

    def send(self, data: bytes, meta: Any = None) -> None:
        if self.line.down() and len(self.lines) > 1:
            self.switch("connect_failure")
        line = self.line
        if line.cut(self.now()):
            self.emit(LineDownDrop(self.tid, line.name, _mti(data)))
            return
        line.transport.send(data)

    def timed_out(self) -> None:
        """A response timeout of a request sent over the current line."""
        self.timeouts += 1
        if self.timeouts >= self.after and len(self.lines) > 1:
            self.switch("timeouts")

    def answered(self) -> None:
        """An answer arrived: the line works, the count starts again."""
        self.timeouts = 0

    def switch(self, reason: str) -> None:
        """Leave the current line: what still waits in its outbox (a TCP link that lost its host) is
        lost, never sent late when that host comes back; the next line carries everything from now."""
        before = self.line
        outbox: Any = getattr(before.transport, "outbox", None)
        while outbox:
            self.emit(LineDownDrop(self.tid, before.name, _mti(outbox.popleft())))
        self.current = (self.current + 1) % len(self.lines)
        self.timeouts = 0
        self.emit(LineSwitched(self.tid, before.name, self.line.name, reason))

    @property
    def idle(self) -> bool:
        """The current line has nothing left to send (a line left behind holds nothing: see ``switch``)."""
        return bool(getattr(self.line.transport, "idle", True))

    async def close(self) -> None:
        for line in self.lines:
            close: Any = getattr(line.transport, "close", None)
            if close is not None:
                await close()


def _mti(data: bytes) -> str:
    """The MTI of a card request, for the trace ("" for a wallet frame or what does not decode)."""
    try:
        return codec.decode(data).mti
    except ProtocolError:
        return ""

"""The run trace: every event of a run, typed, stamped with run time; JSON lines on demand.

Events are the classes of ``protocol.events`` (stable names such as ``msg_sent``,
``net_dropped``, ``timer_fired``, ``ledger_debit``, ``txn_outcome``, with ``tid``, ``stan``,
``mti`` and ``rrn`` where they apply). The trace keeps the typed events, so every view
matches on classes; the JSON lines (structlog's renderer) are built only when written.
In virtual time the stamp is the simulated second, never the wall clock, so the same
scenario and seed give a byte-identical file.

A long run that only needs the file streams it instead (``Trace(clock, stream=path)``):
each event is rendered and written as it happens and nothing is kept per event, so the
trace of 100,000 purchases costs a file, not memory. Such a trace counts its events by
name (``count``) but has no ``records`` for the views that walk them.

A run that no one asked a trace of (``Trace(clock, keep=False)``) only counts its events by
name: no record, no rendering, no clock reading per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import structlog

from possim.protocol.events import Event, Stamped, fields_of, from_fields, to_record

_RENDER = structlog.processors.JSONRenderer(sort_keys=True)


class Trace:
    """Collects typed events in memory, or streams them to a file; rendered with structlog's JSON renderer."""

    def __init__(self, clock: Callable[[], float], stream: str | Path | None = None, *, keep: bool = True) -> None:
        """``stream``: write the events to this file as they happen; ``keep=False`` (without ``stream``):
        count them by name only."""
        self.clock = clock
        self.records: list[Stamped] = []
        #: Also hand every event to this as ``(name, **fields)`` (live structlog output of
        #: long-running processes); message bytes are left out.
        self.sink: Callable[..., None] | None = None
        #: The last clock reading and its rounding to the microsecond (the stamp).
        self._raw, self._t = float("nan"), 0.0
        #: Where a streamed trace goes (``None``: kept in ``records``), and its events by name.
        self.path = Path(stream) if stream is not None else None
        self._out: IO[str] | None = self.path.open("w", encoding="utf-8") if self.path is not None else None
        self._counts: Counter[str] = Counter()
        #: Only counted: neither kept nor written (no ``sink`` either, or the sink gets them as ever).
        self._counting = stream is None and not keep

    @property
    def counted(self) -> bool:
        """True when the events were only counted (no one asked for a trace): no records, no file."""
        return self._counting

    @property
    def streamed(self) -> bool:
        """True when the events went to a file as they happened and are not kept here."""
        return self.path is not None

    def emit(self, event: Event | str, **fields: Any) -> None:
        """Record ``event``. A name with fields is accepted for producers that log by name (the
        transports); it must be a registered event with its declared fields."""
        if self._counting and self.sink is None:  # the hot path of a run without a trace: a count
            self._counts[event if isinstance(event, str) else event.NAME] += 1
            return
        typed = event if isinstance(event, Event) else from_fields(event, fields)
        now = self.clock()
        if now != self._raw:  # most events share their instant with the one before: rounded once
            self._raw, self._t = now, round(now, 6)
        stamped = Stamped(self._t, typed)
        if self._counting:
            self._counts[typed.NAME] += 1
        elif self._out is None:
            self.records.append(stamped)
        else:
            self._out.write(_line(stamped) + "\n")
            self._counts[typed.NAME] += 1
        if self.sink is not None:
            self.sink(typed.NAME, t=stamped.t, **_live_fields(typed))

    def close(self) -> None:
        """End a streamed trace: the file is complete and closed (a kept trace has nothing to close)."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def lines(self) -> list[str]:
        if self._counting:
            raise ValueError("this run kept no trace, only counts of its events: run it with a trace to write one")
        if self.path is not None:
            self.close()
            return self.path.read_text(encoding="utf-8").splitlines()
        return [_line(s) for s in self.records]

    def write(self, path: str | Path) -> None:
        if self.path is not None and Path(path).resolve() == self.path.resolve():
            self.close()  # streamed there already
            return
        Path(path).write_text("".join(line + "\n" for line in self.lines()), encoding="utf-8")

    def count(self, event: str | type[Event]) -> int:
        """How many events of this class (or trace name) the run produced."""
        if self.path is not None or self._counting:
            return self._counts[event if isinstance(event, str) else event.NAME]
        if isinstance(event, str):
            return sum(1 for s in self.records if event == s.event.NAME)
        return sum(1 for s in self.records if isinstance(s.event, event))


def _line(stamped: Stamped) -> str:
    return str(_RENDER(None, "info", to_record(stamped)))


def named(sink: Callable[..., None]) -> Callable[[Event], None]:
    """Adapt a logger taking ``(name, **fields)`` to the drivers' typed emit (message bytes left out)."""

    def emit(event: Event) -> None:
        sink(event.NAME, **_live_fields(event))

    return emit


def _live_fields(event: Event) -> dict[str, Any]:
    return {k: v for k, v in fields_of(event).items() if k != "data"}

"""The run trace: every event of a run as structlog JSON lines, stamped with run time.

Events carry stable names (``msg_sent``, ``net_dropped``, ``timer_fired``, ``ledger_debit``,
``txn_outcome``...) and the keys ``tid``, ``stan``, ``mti`` and ``rrn`` where they apply.
In virtual time the stamp is the simulated second, never the wall clock, so the same
scenario and seed give a byte-identical file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

_RENDER = structlog.processors.JSONRenderer(sort_keys=True)


class Trace:
    """Collects events in memory; renders them with structlog's JSON renderer on demand."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.records: list[dict[str, Any]] = []
        #: Also hand every event to this (live structlog output of long-running processes).
        self.sink: Callable[..., None] | None = None

    def emit(self, event: str, **fields: Any) -> None:
        record = {"t": round(self.clock(), 6), "event": event, **fields}
        self.records.append(record)
        if self.sink is not None:
            self.sink(event, **{k: v for k, v in record.items() if k not in ("event", "data")})

    def lines(self) -> list[str]:
        return [str(_RENDER(None, "info", dict(r))) for r in self.records]

    def write(self, path: str | Path) -> None:
        Path(path).write_text("".join(line + "\n" for line in self.lines()), encoding="utf-8")

    def count(self, event: str) -> int:
        return sum(1 for r in self.records if r["event"] == event)

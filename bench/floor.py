"""The floor of one in-memory purchase: the unavoidable work, each piece timed alone in the same run.

A purchase must encode and decode its 0200 and its 0210 with MACs (possim's codec; the four
AES-CMACs are inside those four calls and are timed apart only to show their share), read the
ledger once and commit the ledger's writes in one transaction. The floor is the sum of those
microbenchmarks; the goal is a whole purchase in at most 2.5 times it. The SQL is not written
here by hand: the statements (text and parameters) are recorded from a real purchase of the
benchmark scenario and replayed under fresh keys, on an in-memory ledger like the simulator's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from common import purchases

from possim.acquirer_sim import ledger as ledger_mod
from possim.protocol import codec
from possim.protocol.mac import MacKey
from possim.running.rig import run_keys
from possim.simulation import simulate

Statement = tuple[str, tuple[Any, ...]]


class _Recording(sqlite3.Connection):
    """A ledger connection that writes down every statement it is given (still a real connection:
    the checker reads it at the end of the run)."""

    log: list[Statement]

    def execute(self, sql: str, params: Any = (), /) -> sqlite3.Cursor:
        self.log.append((sql, tuple(params)))
        return super().execute(sql, params)


def purchase_sql() -> tuple[list[Statement], list[Statement]]:
    """The ledger statements of one purchase of the benchmark scenario, as they ran: its reads (the
    host's one lookup), and its writes (the booking, with BEGIN and COMMIT if the ledger used them).
    The third purchase of a run is taken, so that setting up the run and opening the card's account
    are not counted."""
    log: list[Statement] = []
    original = ledger_mod.Ledger.__init__

    def recording_init(self: ledger_mod.Ledger, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        conn = sqlite3.connect(":memory:", isolation_level=None, factory=_Recording)
        conn.log = log
        conn.deserialize(self.conn.serialize())
        conn.executescript(ledger_mod._BOOKING)  # the connection's own (temp) booking view, not in the file
        self.conn.close()
        self.conn = conn
        del log[:]  # the view's creation is set-up, not a purchase

    ledger_mod.Ledger.__init__ = recording_init  # type: ignore[method-assign]
    try:
        simulate(purchases(4), "reversal")
    finally:
        ledger_mod.Ledger.__init__ = original  # type: ignore[method-assign]
    starts = [i for i, (sql, _) in enumerate(log) if sql == ledger_mod._LOOKUP]
    third = log[starts[2]:starts[3]]
    reads = [(sql, params) for sql, params in third if sql.lstrip().upper().startswith("SELECT")]
    return reads, [statement for statement in third if statement not in reads]


def _renamed(statements: list[Statement], stan: str, fresh: str) -> list[Statement]:
    return [(sql, tuple(fresh if p == stan else p for p in params)) for sql, params in statements]


def sql_runs(n: int) -> tuple[Callable[[], object], Callable[[], object], dict[str, int]]:
    """Two timed bodies over a fresh in-memory ledger each: ``n`` lookups, and ``n`` transactions
    of a purchase's writes, each under a new key (the STAN renamed)."""
    reads, txn = purchase_sql()
    stan = reads[0][1][1]  # the lookup names (tid, stan, transmission, ...)
    keyed = [_renamed(txn, stan, f"{i:06d}") for i in range(n)]
    lookups = [_renamed(reads, stan, f"{i:06d}") for i in range(n)]

    def lookup() -> None:
        conn = ledger_mod.Ledger().conn
        for statements in lookups:
            for sql, params in statements:
                conn.execute(sql, params).fetchall()

    def write() -> None:
        conn = ledger_mod.Ledger().conn
        for statements in keyed:
            for sql, params in statements:
                conn.execute(sql, params)

    control = sum(1 for sql, _ in txn if sql.split()[0].upper() in ("BEGIN", "COMMIT"))
    shape = {"reads": len(reads), "transaction_statements": len(txn) - control}
    return lookup, write, shape


def codec_runs(frames: tuple[bytes, bytes], n: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """possim's codec per purchase, with MACs: encode the 0200 and the 0210 under the terminal's key
    and decode each verifying it (4 AES-CMACs in all); and those 4 AES-CMACs alone, for their share."""
    tid = codec.decode(frames[0]).tid
    key: MacKey = run_keys(1, [tid])[tid]
    messages = [codec.decode(data) for data in frames]
    bodies = [codec.encode(msg, key)[:-16] for msg in messages]
    last = codec._last  # the one-frame memory, emptied so that every decode parses

    def with_macs() -> None:
        for _ in range(n):
            for msg in messages:
                data = codec.encode(msg, key)
                last.clear()
                codec.decode(data, key)

    def cmacs() -> None:
        for _ in range(n):
            for body in bodies:
                key.compute(body)
                key.verify(body, key.compute(body))

    return with_macs, cmacs


def pieces(frames: tuple[bytes, bytes], n: int) -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    """The floor's timed bodies, ``n`` purchases' worth each, to run in turns with the whole purchase."""
    with_macs, cmacs = codec_runs(frames, n)
    lookup, write, shape = sql_runs(n)
    return {"floor codec": with_macs, "floor cmac": cmacs, "floor lookup": lookup, "floor write": write}, shape


def floor_us(t: dict[str, float], n: int) -> dict[str, float]:
    """Microseconds per purchase of each piece and the floor (codec with MACs + lookup + transaction)."""
    per = {name.removeprefix("floor "): t[name] / n * 1e6 for name in t if name.startswith("floor ")}
    return {**per, "floor": per["codec"] + per["lookup"] + per["write"]}

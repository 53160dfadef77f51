"""What both terminal drivers (card and wallet) do when their journal refuses a write, and
what both journals do to say so (``JournalWrites``).

The state machines put every journal write before the send it covers. If the write fails (a
full disk), the actions after it must not be carried out, or a message would leave with no
record of it; the terminal stops for good and says why. Card and wallet drivers share this
one rule, so it is written once.
"""

from __future__ import annotations

import sqlite3
from typing import Generic, TypeVar

from possim.protocol.ports import Cancellable
from possim.protocol.storage import WriteError, write_failure

A = TypeVar("A")


class HaltsOnWriteError(Generic[A]):
    """A driver whose ``execute`` stops for good at the first journal write that fails."""

    failure: WriteError | None
    _timers: dict[str, Cancellable]

    def execute(self, actions: list[A]) -> None:
        """Carry out the terminal's actions in order; a refused journal write stops the terminal.

        The actions after the failed write are not carried out, so the message it covered never
        leaves; timers are cancelled, later arrivals and payments ignored, and ``failure`` says
        why, for the run to end and report it.
        """
        if self.failure is not None:
            return
        try:
            self._execute(actions)
        except WriteError as exc:
            self.failure = WriteError(f"{exc}; the terminal stopped and sent nothing after it")
            for name in list(self._timers):
                self._cancel(name)

    def _execute(self, actions: list[A]) -> None:
        raise NotImplementedError

    def _cancel(self, name: str) -> None:
        raise NotImplementedError


class JournalWrites:
    """The write both journals (card and wallet) make: one statement at a time; in a journal file
    (``durable``) a refusal (a full disk) is a :class:`WriteError` naming the file, which stops the
    terminal (``HaltsOnWriteError``); in memory it is a bug and raised as it is."""

    durable: bool

    def _execute(self, sql: str, values: tuple[object, ...]) -> None:
        conn = self._db()
        try:
            conn.execute(sql, values)
            self._written(conn)
        except sqlite3.Error as exc:
            if not self.durable:
                raise
            raise write_failure(exc, self._file(conn), "journal") from None

    def _written(self, conn: sqlite3.Connection) -> None:
        """After a write went through (the wallet journal commits a durable one at once)."""

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _file(self, conn: sqlite3.Connection) -> str:
        raise NotImplementedError

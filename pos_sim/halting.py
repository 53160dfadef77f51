"""What both terminal drivers (card and wallet) do when their journal refuses a write.

The state machines put every journal write before the send it covers. If the write fails (a
full disk), the actions after it must not be carried out, or a message would leave with no
record of it; the terminal stops for good and says why. Card and wallet drivers share this
one rule, so it is written once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from possim.protocol.ports import Cancellable
from possim.protocol.storage import WriteError

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

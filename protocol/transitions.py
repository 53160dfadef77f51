"""Transition tables: which move from which state a state machine may make.

A table (``Transitions``) names the states a thing may begin in and, per state, the states it
may move to; ``move(old, new)`` returns ``new`` when the table has the move and raises
:class:`IllegalTransitionError` when it does not. A state with no row is final. A move to the same
state is legal only where the table lists it: a self-move is a decision, not a default.

The terminal's records (``pos_sim.records``) and the acquirer's ledgers (``acquirer_sim.ledger``,
``acquirer_sim.wallet_ledger``) change state only through their tables, so a move the design
never meant (a reversed sale approved again, a reversed original debited again) stops the state
machine where it happens instead of reaching the journal or the ledger. The checker
(``possim.judging.checker``) never imports this module: it judges from the recorded facts, not from the
rules the recovery it judges followed.

Restoring a record from its journal is not a move: the state read back is set as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class IllegalTransitionError(Exception):
    """A state machine asked for a move its table does not allow: a defect, never bad input."""

    def __init__(self, what: str, old: str, new: str, legal: Iterable[str]) -> None:
        allowed = ", ".join(sorted(str(s) for s in legal)) or "none, it is final"
        super().__init__(f"illegal {what} move: {old} -> {new} (from {old}: {allowed})")
        self.what, self.old, self.new = what, old, new


class Transitions(Generic[S]):
    """The legal moves between the states ``S`` of one thing (``what`` names it in errors)."""

    def __init__(self, what: str, starts: Iterable[S], moves: Mapping[S, Iterable[S]]) -> None:
        self.what = what
        self.starts: frozenset[S] = frozenset(starts)
        self.moves: Mapping[S, frozenset[S]] = {old: frozenset(new) for old, new in moves.items()}

    def allows(self, old: S, new: S) -> bool:
        """Whether the table has the move ``old`` -> ``new``."""
        return new in self.moves.get(old, ())

    def move(self, old: S, new: S) -> S:
        """``new``, when the move from ``old`` is legal; raises :class:`IllegalTransitionError` otherwise."""
        if new not in self.moves.get(old, ()):
            raise IllegalTransitionError(self.what, old, new, self.moves.get(old, ()))
        return new

    def begin(self, state: S) -> S:
        """``state``, when a new one may begin in it; raises :class:`IllegalTransitionError` otherwise."""
        if state not in self.starts:
            raise IllegalTransitionError(self.what, "(new)", state, self.starts)
        return state

    def final(self, state: S) -> bool:
        """Whether no move leaves ``state``."""
        return not self.moves.get(state)

    def pairs(self) -> list[tuple[S, S]]:
        """Every legal move, for tests and documentation."""
        return [(old, new) for old, targets in self.moves.items() for new in sorted(targets)]

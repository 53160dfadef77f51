"""One registry per concept: the only place a name is turned into the object that does the work.

Policies, profiles, transports and message kinds each keep one ``Registry``. Whatever lists them
(the CLI's choices, scenario validation, fuzzing, the tests) asks the registry at the moment it
needs the list, so an entry registered later, by a plugin or by a test, is offered everywhere
at once. An unknown name fails with one line naming the choices.

Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in the order they were registered (the first is the default).

    ``key`` reads an entry's name (usually its ``name`` attribute); ``what`` is the word an
    error uses ("policy", "transport").
    """

    def __init__(self, what: str, key: Callable[[T], str]) -> None:
        self.what = what
        self._key = key
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add ``entry`` under its name and return it (so a class body can end with it)."""
        name = self._key(entry)
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name``; a name not registered is an error, so a typo does not pass silently."""
        del self._entries[name]

    @contextmanager
    def added(self, entry: T) -> Iterator[T]:
        """``entry`` registered for the ``with`` block only (tests and one-off runs)."""
        self.register(entry)
        try:
            yield entry
        finally:
            self.unregister(self._key(entry))

    def get(self, name: str) -> T:
        """The entry called ``name``; a ``ValueError`` naming the choices for anything else."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r} (choose from {', '.join(self._entries)})") from None

    def names(self) -> tuple[str, ...]:
        """Every name, in registration order."""
        return tuple(self._entries)

    def values(self) -> tuple[T, ...]:
        """Every entry, in registration order."""
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

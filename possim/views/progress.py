"""A progress bar on stderr for runs longer than about a second, shown only to a person.

``possim run`` and ``compare`` of a fleet, ``chaos`` and the benchmarks take seconds to
minutes; a bar says the run is alive and how far it got. It goes to stderr and only when
stderr is a terminal (a pipe, a CI log or ``--json`` consumer sees nothing of it), and
``--no-progress`` turns it off. The bar is transient: when the run ends it is gone, and the
result is printed on a clean screen.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: Advance a bar: ``step(done)`` sets how many of the total are done; ``step(done, label)`` renames it.
Step = Callable[..., None]


def _quiet(_done: int, _label: str | None = None) -> None:
    """The step of a bar that is not shown."""


@contextmanager
def bar(label: str, total: int, enabled: bool = True, console: Console | None = None) -> Iterator[Step]:
    """A bar of ``total`` steps on stderr while the block runs, when ``enabled`` and stderr is a terminal."""
    con = console or Console(stderr=True)
    # stderr itself must be a terminal: FORCE_COLOR may make rich colour a log, never draw a bar in it
    if not enabled or not con.is_terminal or (console is None and not sys.stderr.isatty()):
        yield _quiet
        return
    with Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=con, transient=True) as shown:
        task = shown.add_task(label, total=total)

        def step(done: int, new_label: str | None = None) -> None:
            if new_label:
                shown.update(task, completed=done, description=new_label)
            else:
                shown.update(task, completed=done)

        yield step

"""The console the commands print on, and the heading every scenario view starts with.

Its own module so that the view commands (views.py) and the fleet commands (fleet.py), which
call each other's work, both import it without importing each other.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape

from possim.scenario import Scenario


def console() -> Console:
    """Colour on a terminal; plain, wide text when piped into a file or another program."""
    if sys.stdout.isatty():
        return Console()
    width = os.environ.get("COLUMNS", "")
    return Console(width=int(width) if width.isdigit() and int(width) >= 40 else 140, no_color=True)


def heading(con: Console, scenario: Scenario, lang: str) -> None:
    """The scenario's title and what it teaches, in the reader's language."""
    from possim.views.lesson import story

    title, description = story(scenario, lang)
    con.print(f"[bold]{escape(title)}[/]\n{escape(description)}\n")

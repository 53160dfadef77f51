"""How the command line fails: bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from possim.protocol.storage import StoreError

#: Exit codes: 0 the run met its expectations, 1 it did not (or did not settle), 2 bad input.
BAD_INPUT = 2
ABORTED = 130


class InputError(Exception):
    """Bad input from the user: becomes one line and exit code 2."""


@contextmanager
def as_input_error(*kinds: type[Exception]) -> Iterator[None]:
    """Turn the errors a library raises for bad input (a broken scenario, an unreachable broker) into ``InputError``."""
    try:
        yield
    except kinds as exc:
        raise InputError(str(exc)) from None


def guarded(command: Callable[[], object]) -> int:
    """Run ``command``; map every way input can be wrong to one ``possim: error:`` line and an exit code."""
    try:
        command()
    except (InputError, StoreError) as exc:  # StoreError: a ledger or journal file that cannot be used
        return _fail(str(exc))
    except click.UsageError as exc:
        return _fail(exc.format_message())
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_FULL:
            raise
        return _fail(f"the disk is full: {exc}")  # a write no caller could name the file of
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except click.Abort:
        click.echo("possim: aborted", err=True)
        return ABORTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def _fail(message: str) -> int:
    click.echo(f"possim: error: {message}", err=True)
    return BAD_INPUT

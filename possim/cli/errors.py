"""How the command line fails: bad input is one line on stderr and exit code 2, never a traceback.

The line is in the reader's language (``--lang`` on the command line, else ``POSSIM_LANG``): its
prefix always, its message when the message is a :class:`possim.money.fees.Said` (an English text that
keeps its message id and values), so the Chinese line names the same keys and paths literally.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import click

from possim import i18n
from possim.cli import usage
from possim.i18n import N_, Tr
from possim.money.fees import Said, say
from possim.protocol.storage import StoreError

#: Exit codes: 0 the run met its expectations, 1 it did not (or did not settle), 2 bad input.
BAD_INPUT = 2
ABORTED = 130


class InputError(Exception):
    """Bad input from the user: becomes one line and exit code 2 (a ``Said`` message is translated)."""


#: The error line and the system's words for the file errors people meet most (``strerror`` is English).
LINE = N_("possim: error: {message}")
OS_WORDS = {errno.ENOENT: N_("No such file or directory"), errno.EACCES: N_("Permission denied"),
            errno.EISDIR: N_("Is a directory"), errno.ENOTDIR: N_("Not a directory")}


def language(args: Sequence[str] | None) -> str:
    """The language of the error line: ``--lang`` as the command line gives it (an error may come before
    click reads the option), else ``POSSIM_LANG``, else English; a name possim does not know is English."""
    value = None
    words = list(args or ())
    for i, word in enumerate(words):
        if word == "--":
            break
        if word == "--lang" and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith("--lang="):
            value = word.partition("=")[2]
    try:
        return i18n.resolve(value)
    except i18n.LanguageError:
        return "en"


@contextmanager
def as_input_error(*kinds: type[Exception]) -> Iterator[None]:
    """Turn the errors a library raises for bad input (a broken scenario, an unreachable broker) into ``InputError``."""
    try:
        yield
    except kinds as exc:
        raise InputError(_message(exc)) from None


def _message(exc: BaseException) -> str:
    """The exception's message, still a ``Said`` (translatable) when the library raised it with one."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, Said) else str(exc)


def guarded(command: Callable[[], object], lang: str = "en") -> int:
    """Run ``command``; map every way input can be wrong to one ``possim: error:`` line in ``lang`` and an exit code."""
    tr = Tr(lang)
    try:
        command()
    except (InputError, StoreError) as exc:  # StoreError: a ledger or journal file that cannot be used
        return _fail(_message(exc), tr)
    except click.UsageError as exc:
        return _fail(usage.said(exc.format_message()), tr)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_FULL:
            raise
        return _fail(Said(N_("the disk is full: {error}"), error=str(exc)), tr)  # no caller could name the file
    except OSError as exc:
        return _fail(_os_message(exc), tr)
    except click.Abort:
        click.echo("possim: aborted", err=True)
        return ABORTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def _os_message(exc: OSError) -> str:
    """``FILE: what went wrong``, the system's words translated for the errors in ``OS_WORDS``."""
    what: str = Said(OS_WORDS[exc.errno]) if exc.errno in OS_WORDS else exc.strerror or str(exc)
    return Said("{path}: {what}", path=exc.filename, what=what) if exc.filename else what


def _fail(message: str, tr: Tr) -> int:
    click.echo(tr(LINE, message=say(message, tr)) if tr.lang != "en" else f"possim: error: {message}", err=True)
    return BAD_INPUT

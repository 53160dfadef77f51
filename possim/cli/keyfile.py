"""Which key file a process command uses: secure unless told ``--insecure``.

``possim broker``, ``acquirer``, ``terminal`` and ``settle`` (and ``possim chaos``) run with
a key file: the one ``--keys FILE`` names, else the default one, ``$POSSIM_KEYS`` or
``./possim-keys.json``. The default key file is created with fresh keys (mode 0600) by
whichever command runs first, for the terminals ``POS00001`` ... ``POS00100`` plus the
terminal id that command was given; every later command reads it. A terminal that is not in
it is refused with one line saying how to add it: keys are a secret shared by the terminal
and the host, so a terminal never adds itself behind the host's back.

``--insecure`` (or ``POSSIM_INSECURE=1`` in the environment) without ``--keys`` runs as
before: an anonymous broker, no MACs. The acquirer then logs ``insecure_mode``. ``--keys``
wins over ``POSSIM_INSECURE``; typed together with ``--insecure`` it is an input error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from possim.cli.errors import InputError, as_input_error

if TYPE_CHECKING:
    from possim.processes.keys import KeyRing
    from possim.protocol.mac import MacKey
    from possim.protocol.ports import TraceSink
    from possim.protocol.transports import HostEnd, Origin, TerminalEnd, Wire

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_KEY_FILE = "possim-keys.json"
KEYS_ENV = "POSSIM_KEYS"
INSECURE_ENV = "POSSIM_INSECURE"
#: The terminals a default key file is created for (plus the id of the terminal that creates it).
DEFAULT_TERMINALS = 100
_META = "possim.insecure"


def default_path() -> Path:
    """``$POSSIM_KEYS``, else ``possim-keys.json`` in the current folder."""
    return Path(os.environ.get(KEYS_ENV) or DEFAULT_KEY_FILE)


def _remember_insecure(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[_META] = bool(value)
    ctx.meta[_META + ".typed"] = bool(value) and param.name is not None and \
        ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE
    return bool(value)


def keys_options(text: str) -> Callable[[F], F]:
    """``--keys FILE`` and ``--insecure``; the latter is read back by :func:`insecure`, not passed on."""
    keys = click.option("--keys", "keys_path", type=click.Path(dir_okay=False), metavar="FILE",
                        help=f"{text} Default: ${KEYS_ENV}, else ./{DEFAULT_KEY_FILE}, created (mode 0600) for "
                             f"POS00001..POS{DEFAULT_TERMINALS:05d} when missing.")
    unsafe = click.option("--insecure", is_flag=True, envvar=INSECURE_ENV, expose_value=False,
                          callback=_remember_insecure,
                          help=f"Without --keys: no key file, no MACs, an anonymous broker (also {INSECURE_ENV}=1). "
                               "Anyone on the broker can then read every message and forge any terminal.")

    def apply(command: F) -> F:
        return keys(unsafe(command))

    return apply


def insecure() -> bool:
    """Whether the running command was given ``--insecure`` (or ``POSSIM_INSECURE=1``)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_META))


def resolve(path: str | None, tids: Iterable[str] = ()) -> KeyRing | None:
    """The key file of ``--keys``, else ``None`` under ``--insecure``, else the default one (created if missing)."""
    from possim.processes import keys

    if path is None and insecure():
        return None
    ctx = click.get_current_context(silent=True)
    if path is not None and ctx is not None and ctx.meta.get(_META + ".typed"):
        raise InputError("--keys and --insecure contradict each other: give one")  # POSSIM_INSECURE yields to --keys
    with as_input_error(keys.KeyFileError):
        if path is not None:
            file, ring = Path(path), keys.load(Path(path))
        else:
            file = default_path()
            defaults = keys.default_tids(DEFAULT_TERMINALS)
            ring, created = keys.create_or_load(file, [*defaults, *(t for t in tids if t not in defaults)])
            if created:
                click.echo(f"possim: created key file {file} (mode 0600) for {len(ring.terminals)} terminals: "
                           "keep it secret, whoever reads it can forge any terminal", err=True)
    warning = keys.permission_warning(file)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    return ring


def terminal_key(ring: KeyRing, tid: str, path: str | None) -> MacKey:
    """``tid``'s MAC key; a terminal missing from the key file is one line saying how to add it."""
    if tid in ring.terminals:
        return ring.mac_key(tid)
    file = path or str(default_path())
    raise InputError(f"{file}: no key for terminal {tid!r}; add one with: possim keys --add --terminal {tid} "
                     f"--out {file} (then restart the broker and the acquirer)")


class WarnInsecure:
    """A wire whose host logs ``insecure_mode`` once it is open, and for the unauthenticated requests it accepts.

    Every request is unauthenticated without keys, so only the first ``first`` are logged one
    by one, then every ``every``-th with the running count. The first line comes once the host
    is open, so a host that cannot start says only why.
    """

    def __init__(self, wire: Wire, log: Callable[..., None], first: int = 5, every: int = 100) -> None:
        self.wire, self.log, self.first, self.every = wire, log, first, every
        self.name = wire.name
        self.accepted = 0

    async def open_host(self, on_request: Callable[[bytes, Origin], None], emit: TraceSink) -> HostEnd:
        def counted(data: bytes, origin: Origin) -> None:
            self.accepted += 1
            if self.accepted <= self.first or self.accepted % self.every == 0:
                self.log("insecure_mode", reason="unauthenticated_request", accepted=self.accepted,
                         origin=getattr(origin, "tid", None))
            on_request(data, origin)

        end = await self.wire.open_host(counted, emit)
        self.log("insecure_mode", reason="started without keys", transport=self.name)
        return end

    async def open_terminal(self, tid: str, on_response: Callable[[bytes], None], emit: TraceSink) -> TerminalEnd:
        return await self.wire.open_terminal(tid, on_response, emit)

    def describe(self) -> dict[str, object]:
        return self.wire.describe()

"""Checks on what the user names (scenarios, files, brokers) before any work starts.

Every refusal is an ``InputError``: one line, exit code 2, and nothing written, so a typo
never leaves a half-written ledger or journal behind.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from possim import shipped
from possim.cli.errors import InputError, as_input_error
from possim.i18n import N_
from possim.money.fees import Said
from possim.protocol import transports
from possim.protocol.mqtt import BrokerAddress
from possim.protocol.transports import Endpoint, TransportError, Wire
from possim.scenario import Scenario, ScenarioError, load


def shipped_folder() -> Path:
    """The shipped scenarios, wherever possim is installed (``possim.shipped``)."""
    with as_input_error(shipped.NotOnDiskError):
        return shipped.folder()


def scenario(name_or_path: str) -> Scenario:
    """A scenario file, or the name of a shipped one ("response-lost")."""
    with as_input_error(ScenarioError):
        return load(name_or_path)


def scaled(sc: Scenario, factor: float) -> Scenario:
    """``sc`` with every duration times ``factor``, refused if a duration leaves its range."""
    with as_input_error(ScenarioError):
        return sc.scaled(factor)


def writable(*paths: str | None) -> None:
    """Refuse output paths that cannot be written before any work starts.

    A path that does not exist yet is created and removed again at once: only that proves a
    file can be made there (root passes every permission check, yet not on ``/proc`` or a
    read-only mount), and it leaves nothing behind.
    """
    for p in paths:
        if p is None:
            continue
        parent = Path(p).resolve().parent
        if parent.exists() and not parent.is_dir():
            raise InputError(Said(N_("{path}: {parent} is a file, not a folder"), path=p, parent=parent))
        if not parent.is_dir():
            raise InputError(Said(N_("{path}: folder {parent} does not exist"), path=p, parent=parent))
        if Path(p).is_dir():
            raise InputError(Said(N_("{path}: is a folder, not a file"), path=p))
        if not Path(p).exists():
            _probe(Path(p), parent)


def _probe(path: Path, parent: Path) -> None:
    """Create ``path`` and remove it, or say in one line why a file cannot be made in ``parent``."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise InputError(f"{path}: cannot create a file in folder {parent}: {exc.strerror or exc}") from None
    path.unlink()


def fresh(*paths: str | None) -> None:
    """Refuse a ledger or journal that exists: a run never writes into earlier money."""
    for p in paths:
        if p and Path(p).exists():
            raise InputError(Said(N_("{path}: already exists; possim will not write into an existing ledger or "
                                     "journal"), path=p))


def database(path: str, table: str, what: str) -> None:
    """Refuse a file that is not a possim SQLite ``what`` (it has no ``table``); the file is opened read-only."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - table is one of possim's own names
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise InputError(Said(N_("{path}: not a possim {what}: {error}"), frozenset({"what"}), path=path, what=what,
                              error=_sqlite_words(str(exc)))) from None


#: SQLite's words for a file that is no possim database, for the reader's language.
SQLITE_WORDS = {"file is not a database": N_("file is not a database"),
                "unable to open database file": N_("unable to open database file")}


def _sqlite_words(text: str) -> str:
    """SQLite's message, translatable when it is one people meet with a wrong file."""
    if text.startswith("no such table: "):
        return Said(N_("no such table: {table}"), table=text.removeprefix("no such table: "))
    return Said(SQLITE_WORDS[text]) if text in SQLITE_WORDS else text


def address(url: str) -> BrokerAddress:
    with as_input_error(TransportError):
        return BrokerAddress.parse(url)


def wire(transport: str, broker_url: str | None, tcp_url: str | None, qos: int, client_id: str,
         shard: int = 0, shards: int = 1, port_offset: int = 0, dialect: str = "iso") -> Wire:
    """The transport a separate process uses: MQTT through ``--broker``, or TCP at ``--listen``/``--connect``.

    The client id is fixed per process, so a restarted process resumes its MQTT session.
    With host shards, MQTT topics carry the shard (``shard``/``shards``) and over TCP host
    shard k listens on the base port + k (``port_offset``). ``dialect``: the profile's wire
    dialect, which sets the TCP framing (``cup``: TPDU and header).
    """
    with as_input_error(TransportError):
        chosen = transports.get(transport)
    if chosen.broker:
        if broker_url is None:
            raise InputError(f"--broker {chosen.scheme}://HOST:PORT is needed with --transport {chosen.name}")
        url: str | None = broker_url
    else:
        given = tcp_url or chosen.default_url
        url = _offset(given, port_offset) if given is not None else None
    with as_input_error(TransportError):
        return chosen.open(Endpoint(url, qos, client_id=client_id, shard=shard, shards=shards, dialect=dialect))


def _offset(url: str, offset: int) -> str:
    """``url`` with its port moved up by ``offset`` (host shard k listens on the base port + k)."""
    if not offset:
        return url
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"bad address {url!r}: {exc}") from None
    if port is None or not parts.hostname:
        raise InputError(f"bad address {url!r}: expected SCHEME://HOST:PORT")
    if port + offset > 65535:
        raise InputError(f"{url}: port {port} + shard {offset} is beyond 65535")
    return f"{parts.scheme}://{parts.hostname}:{port + offset}"


def shard(text: str | None) -> tuple[int, int]:
    """``--shard k/K`` as (k, K); (0, 1) when not given."""
    if text is None:
        return 0, 1
    from possim.protocol.shards import parse_shard

    with as_input_error(ValueError):
        return parse_shard(text)


def default_addresses() -> str:
    """Where ``possim acquirer`` listens and ``possim terminal`` connects when not told: each transport's
    own default address (its registry entry says it), for the options' help."""
    return ", ".join(t.default_url for t in transports.REGISTRY.values() if t.default_url)


def tid(text: str) -> str:
    """A terminal id as field 41 and the MQTT topics carry it: 8 printable characters, no wildcards."""
    if len(text) != 8 or any(c in text for c in "+#/") or not text.isprintable():
        raise InputError(f"--tid {text!r}: a terminal id is 8 printable characters without + # /")
    return text

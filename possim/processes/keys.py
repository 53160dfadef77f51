"""Per-terminal MAC keys and broker passwords: the secrets that make messages unforgeable.

A key file is what ``possim keys`` writes and what the host, the terminals and the broker
read. It is JSON (readable, diffable, in the standard library), written with mode 0600
because whoever reads it can forge any terminal::

    {
      "format": "possim-keys/1",
      "algorithm": "aes-cmac",                 # protocol.mac.ALGORITHMS: "aes-cmac", "x9.19" or "cup-ecb"
      "host": {"username": "possim-host", "password": "<broker password>"},
      "terminals": {
        "POS00001": {"mac_key": "<32 hex digits>", "password": "<broker password>"}
      }
    }

Each terminal has its own MAC key (so one terminal's key cannot forge another's messages)
and its own broker account, named by its terminal id (the broker's ACL gives an account
only its own topics). The host has one broker account; it holds every terminal's MAC key.

Two ways to make keys:

- ``generate``: from the operating system's CSPRNG (``secrets``), for ``possim keys``.
- ``derive``: from a scenario run's seed, so a run with the same seed is byte-identical
  (MACs included). Such keys are as public as the seed: good for simulations, never for a
  broker anyone else can reach.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from possim.protocol.mac import ALGORITHMS, DEFAULT_ALGORITHM, MacKey, compute

FORMAT = "possim-keys/1"
HOST_USERNAME = "possim-host"
KEY_BYTES = 16
#: Terminal ids that are safe as broker usernames and MQTT topic levels (no /, +, #, spaces).
TID_PATTERN = re.compile(r"[0-9A-Za-z_-]{8}")
_DERIVE_LABEL = b"possim scenario keys v1"


class KeyFileError(ValueError):
    """A key file that cannot be used; ``str()`` is one line naming the file and the problem."""


@dataclass(frozen=True, slots=True)
class TerminalSecrets:
    """What one terminal holds: its MAC key and its broker password."""

    tid: str
    mac_key: MacKey
    password: str


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The contents of a key file."""

    algorithm: str
    host_username: str
    host_password: str
    terminals: Mapping[str, TerminalSecrets]

    def mac_keys(self) -> dict[str, MacKey]:
        """Every terminal's MAC key by terminal id: what the host passes to ``codec.decode``."""
        return {tid: t.mac_key for tid, t in self.terminals.items()}

    def mac_key(self, tid: str) -> MacKey:
        """One terminal's MAC key: what that terminal passes to ``codec.encode``/``decode``."""
        try:
            return self.terminals[tid].mac_key
        except KeyError:
            raise KeyFileError(f"no key for terminal {tid!r} (known: {', '.join(sorted(self.terminals))})") from None

    def accounts(self) -> dict[str, str]:
        """Broker accounts, username -> password: the host's and one per terminal."""
        return {self.host_username: self.host_password, **{tid: t.password for tid, t in self.terminals.items()}}

    def password_of(self, username: str) -> str | None:
        """The broker password of ``username``: a terminal's, the host's, or a host shard's (the host's)."""
        if username in {host_account(self.host_username, k, HOST_SHARDS) for k in range(HOST_SHARDS)}:
            return self.host_password
        return self.accounts().get(username)

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "algorithm": self.algorithm,
            "host": {"username": self.host_username, "password": self.host_password},
            "terminals": {tid: {"mac_key": t.mac_key.secret.hex(), "password": t.password}
                          for tid, t in sorted(self.terminals.items())},
        }
        return json.dumps(doc, indent=2) + "\n"

    def summary(self) -> list[str]:
        """One line per account without secrets: key check values let two sides compare keys."""
        lines = [f"host account {self.host_username}, MAC algorithm {self.algorithm}"]
        lines += [f"terminal {tid}: key check value {check_value(t.mac_key)}"
                  for tid, t in sorted(self.terminals.items())]
        return lines


def check_value(key: MacKey) -> str:
    """A key check value (first 3 bytes of the MAC of a zero block), as terminals print them."""
    return compute(key, bytes(8)).hex().upper()[:6]


def default_tids(count: int) -> list[str]:
    """``POS00001`` ... ``POS{count:05d}``, the ids scenarios and the CLI use by default."""
    return [f"POS{i:05d}" for i in range(1, count + 1)]


def generate(tids: Iterable[str], algorithm: str = DEFAULT_ALGORITHM, host_username: str = HOST_USERNAME) -> KeyRing:
    """Fresh keys and passwords from the CSPRNG."""
    return _ring(tids, algorithm, host_username, lambda _tid: secrets.token_bytes(KEY_BYTES),
                 lambda _who: secrets.token_urlsafe(24))


def derive(seed: int, tids: Iterable[str], algorithm: str = DEFAULT_ALGORITHM,
           host_username: str = HOST_USERNAME) -> KeyRing:
    """Keys and passwords that depend only on ``seed`` and the ids (HMAC-SHA256 of both)."""

    def prf(*parts: str) -> bytes:
        return hmac.new(_DERIVE_LABEL, "\0".join((str(seed), *parts)).encode(), hashlib.sha256).digest()

    return _ring(tids, algorithm, host_username, lambda tid: prf("mac", tid)[:KEY_BYTES],
                 lambda who: prf("password", who).hex()[:32])


def _ring(tids: Iterable[str], algorithm: str, host_username: str, key_for: Any, password_for: Any) -> KeyRing:
    tids = list(tids)
    _check_ids(tids, host_username)
    if algorithm not in ALGORITHMS:
        raise KeyFileError(f"unknown MAC algorithm {algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})")
    terminals = {tid: TerminalSecrets(tid, MacKey(algorithm, key_for(tid)), password_for(tid)) for tid in tids}
    return KeyRing(algorithm, host_username, password_for(host_username), terminals)


def _check_ids(tids: list[str], host_username: str) -> None:
    if not tids:
        raise KeyFileError("no terminal ids given")
    bad = [t for t in tids if not TID_PATTERN.fullmatch(t)]
    if bad:
        raise KeyFileError(f"terminal id {bad[0]!r} must be 8 letters, digits, '-' or '_'")
    if len(set(tids)) != len(tids):
        raise KeyFileError("terminal ids must be unique")
    if not host_username or not re.fullmatch(r"[0-9A-Za-z_-]+", host_username) or host_username in tids:
        raise KeyFileError(f"host username {host_username!r} must be letters, digits, '-' or '_' and no terminal id")


# -- files ------------------------------------------------------------------------------------

def write(path: Path, ring: KeyRing, force: bool = False) -> Path:
    """Write ``ring`` to ``path`` with mode 0600, atomically; an existing file needs ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise KeyFileError(f"{path}: already exists (use --force to replace it)")
    if not path.parent.is_dir():
        raise KeyFileError(f"{path}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".possim-keys-", dir=path.parent)  # mkstemp creates it 0600
    except OSError as exc:  # the temporary name means nothing to the user: name the file asked for
        raise KeyFileError(f"{path}: cannot write in folder {path.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(ring.to_json())
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(0o600)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise KeyFileError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def create_key_file(path: Path, tids: Iterable[str], algorithm: str = DEFAULT_ALGORITHM,
                    host_username: str = HOST_USERNAME, force: bool = False) -> KeyRing:
    """What ``possim keys`` does: fresh keys for ``tids`` written to ``path`` (0600)."""
    ring = generate(tids, algorithm, host_username)
    write(path, ring, force)
    return ring


def create_or_load(path: Path, tids: Iterable[str]) -> tuple[KeyRing, bool]:
    """The key file at ``path``, made with fresh keys for ``tids`` when missing; (ring, created).

    The file appears whole or not at all (written aside, then hard-linked into place), so two
    commands started at once never both create it nor read a half-written one: the second
    reads the first one's file.
    """
    path = Path(path)
    if path.exists():
        return load(path), False
    ring = generate(tids)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    write(aside, ring)
    try:
        os.link(aside, path)
    except FileExistsError:
        return load(path), False
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror or exc}") from None
    finally:
        aside.unlink(missing_ok=True)
    return ring, True


def add_terminals(path: Path, tids: Iterable[str]) -> KeyRing:
    """Add fresh keys for ``tids`` to the key file at ``path``, keeping every key it holds."""
    ring = load(path)
    new = [t for t in tids if t not in ring.terminals]
    if not new:
        return ring
    extra = generate(new, ring.algorithm, ring.host_username)
    merged = KeyRing(ring.algorithm, ring.host_username, ring.host_password,
                     {**ring.terminals, **extra.terminals})
    _check_ids(list(merged.terminals), merged.host_username)
    write(path, merged, force=True)
    return merged


#: Host shards a secured broker has accounts for: as many as ``possim terminal --shards`` allows.
HOST_SHARDS = 64


def host_account(host_username: str, shard: int = 0, shards: int = 1) -> str:
    """The broker account of host shard ``shard`` of ``shards``: the host's own when unsharded.

    A secured broker makes every client id its account's name, so two shards logged in as one
    account would throw each other off; each shard has its own account, with the host's password.
    """
    return host_username if shards == 1 else f"{host_username}-s{shard}"


def permission_warning(path: Path) -> str | None:
    """One line if others than the owner may read the key file (the CLI may print it)."""
    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path}: readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
    return None


def load(path: Path) -> KeyRing:
    """Read a key file; any problem raises ``KeyFileError`` with one line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file (create one with: possim keys)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read: {exc}") from None
    try:
        return parse(text)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def parse(text: str) -> KeyRing:
    """A key file's text to a ``KeyRing``; ``KeyFileError`` (without the path) on any problem."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"not a possim key file (expected \"format\": \"{FORMAT}\")")
    algorithm = _str(doc, "algorithm")
    if algorithm not in ALGORITHMS:
        raise KeyFileError(f"unknown MAC algorithm {algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})")
    host = _dict(doc, "host")
    username, password = _str(host, "username", "host."), _str(host, "password", "host.")
    terminals = {tid: _terminal(tid, entry, algorithm) for tid, entry in _dict(doc, "terminals").items()}
    _check_ids(list(terminals), username)
    return KeyRing(algorithm, username, password, terminals)


def _terminal(tid: str, entry: Any, algorithm: str) -> TerminalSecrets:
    where = f"terminals.{tid}."
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where[:-1]} must be an object")
    hex_key, password = _str(entry, "mac_key", where), _str(entry, "password", where)
    try:
        key = MacKey(algorithm, bytes.fromhex(hex_key))
    except ValueError as exc:
        raise KeyFileError(f"{where}mac_key: {exc}") from None
    return TerminalSecrets(tid, key, password)


def _dict(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise KeyFileError(f"missing or invalid \"{name}\" (an object)")
    return value


def _str(doc: dict[str, Any], name: str, where: str = "") -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        raise KeyFileError(f"missing or invalid \"{where}{name}\" (a non-empty string without spaces)")
    return value

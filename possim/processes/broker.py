"""Start and stop a real Mosquitto broker on loopback with possim's own configuration.

Mosquitto started as root drops to user ``mosquitto`` after reading its config and then
cannot read files in a root-only folder, so the state folder is made world-readable and,
when running as root, the config says ``user root``.

Two modes:

- anonymous (this class's default): anyone on loopback may publish and subscribe anything.
  A lab broker for scenario runs, ``possim load`` and tests, where nothing is secret;
  ``possim broker`` runs one only when told ``--insecure``.
- secured (``accounts``): anonymous clients are refused, every client logs in, and an ACL
  gives each terminal (username = its terminal id) only its own two topics: it may publish
  to ``possim/v1/term/{tid}/req`` and read ``possim/v1/term/{tid}/resp``, nothing else (so
  no ``#``, no other terminal's requests or responses; with host shards, its request topic
  under ``possim/v1/shard/{k}/``). The host account reads every
  request topic and writes every response topic. The broker enforces this itself, so a
  terminal that is taken over still cannot forge another terminal's traffic nor read its
  card numbers. The password file is hashed by ``mosquitto_passwd -U`` (PBKDF2-SHA512),
  mode 0600; both files live in the state folder and are rewritten on every start.
  Every client id is its account's name (``use_username_as_clientid``): a terminal account
  can neither take over the acquirer's session nor another terminal's, whatever client id it
  asks for. The host has one account per shard (``possim.processes.keys.host_account``), all with the
  host's password, so host shards never take over each other's session.

TLS on the listener is an option (``tls=TlsFiles(certfile, keyfile, cafile)``): PEM files,
TLS 1.2 or newer; with ``cafile`` clients must present a certificate signed by it. The
files must be readable by the broker (root here, see above). Clients then connect with a
TLS context trusting the broker's certificate; possim's own ``mqtt://`` URLs stay plain.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from possim.processes.keys import HOST_SHARDS, HOST_USERNAME, host_account
from possim.protocol.mqtt import ROOT


class BrokerError(RuntimeError):
    """Mosquitto could not be started (not installed, port busy, bad config)."""


def find_mosquitto() -> str:
    path = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if path is None:
        raise BrokerError("mosquitto is not installed (make test installs it: apt-get install mosquitto)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise ``BrokerError`` if something already listens on ``host:port``.

    ``SO_REUSEADDR`` as Mosquitto sets it: a port left in TIME_WAIT by a stopped broker is
    free for a restart, a port with a listener is not.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(f"port {port} on {host} is already in use") from None
            raise BrokerError(f"cannot listen on port {port} on {host}: {exc.strerror or exc}") from None


def find_mosquitto_passwd() -> str:
    path = shutil.which("mosquitto_passwd") or next(
        (p for p in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd") if Path(p).exists()), None)
    if path is None:
        raise BrokerError("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    return path


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a TLS listener: the broker's certificate and key, and optionally a CA for client certificates."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None

    def config_lines(self) -> str:
        for path in (self.certfile, self.keyfile, self.cafile):
            if path is not None and not Path(path).is_file():
                raise BrokerError(f"TLS file {path} does not exist")
        lines = [f"certfile {self.certfile}", f"keyfile {self.keyfile}", "tls_version tlsv1.2"]
        if self.cafile is not None:
            lines += [f"cafile {self.cafile}", "require_certificate true"]
        return "\n".join(lines)


def host_accounts(host_username: str = HOST_USERNAME) -> list[str]:
    """The host's account and one per host shard (``possim acquirer --shard k/K``)."""
    return [host_username, *(host_account(host_username, k, HOST_SHARDS) for k in range(HOST_SHARDS))]


def acl_text(host_username: str = HOST_USERNAME) -> str:
    """The ACL: each account its own topics by username (= terminal id); the host every terminal's."""
    term = f"{ROOT}/term"
    lines = [
        "# possim broker ACL (written by possim; rewritten on every start).",
        "# Patterns apply to every account; %u is the username, which for a terminal is its id.",
        f"pattern write {term}/%u/req",
        f"pattern write {ROOT}/shard/+/term/%u/req",
        f"pattern read {term}/%u/resp",
        "",
        "# The host reads every request and answers every terminal; host shard k reads its shard's requests.",
        f"user {host_username}", f"topic read {term}/+/req", f"topic write {term}/+/resp", "",
    ]
    for k in range(HOST_SHARDS):
        lines += [f"user {host_account(host_username, k, HOST_SHARDS)}", f"topic read {ROOT}/shard/{k}/term/+/req",
                  f"topic write {term}/+/resp", ""]
    return "\n".join(lines)


def write_password_file(path: Path, accounts: Mapping[str, str]) -> None:
    """``user:password`` lines hashed in place by ``mosquitto_passwd -U``; mode 0600 from the start."""
    for user, password in accounts.items():
        if not user or ":" in user or any(c.isspace() for c in user + password) or not password.isprintable():
            raise BrokerError(f"broker account {user!r}: names and passwords must be printable, without spaces or ':'")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{user}:{password}\n" for user, password in accounts.items())
    path.chmod(0o600)
    done = subprocess.run([find_mosquitto_passwd(), "-U", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        path.unlink(missing_ok=True)  # never leave clear-text passwords behind
        raise BrokerError(f"mosquitto_passwd -U failed: {(done.stderr or done.stdout).strip()}")


def persistence_lines(state_dir: Path, persistent: bool = True) -> str:
    """Persistent sessions survive a broker restart (SIGTERM saves them, and a save every second
    bounds what a SIGKILL loses). A broker that lives only as long as one run (``possim load``'s
    private broker, the bench's) keeps nothing: each save writes and fsyncs every session and
    queued message from Mosquitto's one thread, which stalls every client meanwhile (seconds
    when the disk is busy)."""
    if not persistent:
        return "# Nothing outlives this broker: no saves (each one would stall every client).\npersistence false"
    return ("# Persistent sessions survive a broker restart (SIGTERM saves them).\n"
            f"persistence true\npersistence_location {state_dir}/\nautosave_interval 1")


def render_config(port: int, state_dir: Path, security: str = "allow_anonymous true", tls: str = "",
                  bind: str = "127.0.0.1", persistent: bool = True) -> str:
    template = resources.files("possim").joinpath("data/mosquitto.conf").read_text(encoding="utf-8")
    user = "user root" if os.geteuid() == 0 else ""
    return template.format(port=port, dir=state_dir, user=user, security=security, tls=tls, bind=bind,
                           persistence=persistence_lines(state_dir, persistent))


class Broker:
    """One Mosquitto process; ``restart()`` keeps its persistent state (sessions, queued messages).

    ``accounts`` (username -> password, e.g. ``KeyRing.accounts()``) switches to the secured
    mode: anonymous clients refused, a password file and the ACL in the state folder.
    ``host_username`` names the account with the host's rights; every other account is a
    terminal named by its terminal id. ``persistent=False``: a broker for one run only, which
    keeps and saves nothing (a restart loses every session).
    """

    def __init__(self, port: int | None = None, state_dir: Path | None = None, log_path: Path | None = None,
                 accounts: Mapping[str, str] | None = None, host_username: str = HOST_USERNAME,
                 tls: TlsFiles | None = None, persistent: bool = True) -> None:
        self.port = port or free_port()
        self._owns_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="possim-broker-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        self.config = self.state_dir / "mosquitto.conf"
        self.password_file = self.state_dir / "passwd"
        self.acl_file = self.state_dir / "acl"
        self.secured = accounts is not None
        security = "allow_anonymous true"
        if accounts is not None:
            if host_username not in accounts:
                raise BrokerError(f"no password for the host account {host_username!r}")
            shards = dict.fromkeys(host_accounts(host_username), accounts[host_username])
            write_password_file(self.password_file, {**shards, **accounts})
            self.acl_file.write_text(acl_text(host_username), encoding="utf-8")
            self.acl_file.chmod(0o644)
            security = (f"allow_anonymous false\npassword_file {self.password_file}\nacl_file {self.acl_file}\n"
                        "# A client id is its account's name: nobody takes over another account's session.\n"
                        "use_username_as_clientid true")
        self.tls = tls
        tls_lines = tls.config_lines() if tls is not None else ""
        self.config.write_text(render_config(self.port, self.state_dir, security, tls_lines,
                                                     persistent=persistent), encoding="utf-8")
        self.config.chmod(0o644)
        self.log_path = log_path or self.state_dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Broker:
        """Start Mosquitto and wait until it listens; ``BrokerError`` if it cannot.

        The port is tried first: on a port another process listens on, Mosquitto would exit
        while the readiness probe below connected to that other process and took it for ours.
        """
        port_free(self.port)
        with Path(self.log_path).open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.005)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout:g}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        """Stop for good; remove the state folder if this broker made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

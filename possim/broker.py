"""Start and stop a real Mosquitto broker on loopback with possim's own configuration.

Mosquitto started as root drops to user ``mosquitto`` after reading its config and then
cannot read files in a root-only folder, so the state folder is made world-readable and,
when running as root, the config says ``user root``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path


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


def render_config(port: int, state_dir: Path) -> str:
    template = resources.files("possim").joinpath("data/mosquitto.conf").read_text(encoding="utf-8")
    user = "user root" if os.geteuid() == 0 else ""
    return template.format(port=port, dir=state_dir, user=user)


class Broker:
    """One Mosquitto process; ``restart()`` keeps its persistent state (sessions, queued messages)."""

    def __init__(self, port: int | None = None, state_dir: Path | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self._owns_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="possim-broker-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        self.config = self.state_dir / "mosquitto.conf"
        self.config.write_text(render_config(self.port, self.state_dir), encoding="utf-8")
        self.config.chmod(0o644)
        self.log_path = log_path or self.state_dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Broker:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {self._log_tail()}")
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

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

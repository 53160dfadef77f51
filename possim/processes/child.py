"""A possim child process whose stderr goes to a log file, waited for by the lines it logs.

``possim chaos`` and the suite's process tests start terminals, acquirers and proxies the same
way: stderr (structlog JSON lines) appended to a log file, each start remembered by the offset
it began at, and "ready" meaning a line such as ``mqtt_connected`` written by *this* start. A
process is acted on only after it said it is ready, never after a guessed delay: on a busy
machine a Python process may take seconds to connect and subscribe.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
#: ``python -m possim``: the same interpreter, so a child runs the possim its parent imported.
POSSIM = (sys.executable, "-m", "possim")


class NotReadyError(RuntimeError):
    """A child ended, or a wait ran out, before the line waited for; ``str()`` says which and why."""


def poll_until(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.02) -> T:
    """``probe()`` every ``every`` seconds until it returns something other than None or False.

    ``probe`` may raise to stop early (a process that died); after ``timeout`` seconds: NotReadyError.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise NotReadyError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class LoggedProcess:
    """One command, started (and restarted) with stderr appended to ``log``; each wait reads only its own start."""

    def __init__(self, name: str, argv: list[str], log: Path, *, capture_stdout: bool = False) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []  # the exit code of every start killed with kill()
        self._stdout = subprocess.PIPE if capture_stdout else subprocess.DEVNULL
        self._offset = 0

    def start(self) -> LoggedProcess:
        self._close_pipe()
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as sink:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.argv, stdout=self._stdout, stderr=sink)
        return self

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of the current start (other lines, such as "acquirer stopped", are skipped)."""
        return json_lines(self.log, self._offset)

    def wait_event(self, event: str, timeout: float = 60.0, **fields: object) -> dict[str, Any]:
        """The first log line of this start with ``event`` and ``fields``; NotReadyError if the process ends first."""

        def found() -> dict[str, Any] | None:
            for e in self.events():
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise NotReadyError(f"{self.name} exited with {code} before logging {event} {fields} "
                               f"(log: {self.log}):\n{self.tail()}")
            return None

        return poll_until(found, timeout, f"{self.name} to log {event} {fields} (log: {self.log})")

    def logged(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> int | None:
        """SIGKILL (the process gets no chance to clean up anything) if it runs, and reap it; its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.exits.append(self.proc.wait(30))
        self._close_pipe()
        return self.proc.returncode

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it will not go. Safe to call on a process that already ended."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_pipe()
        return self.proc.returncode

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def json_lines(log: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON objects logged to ``log`` from byte ``offset`` on (other lines and one still being written skipped)."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being written
    return found

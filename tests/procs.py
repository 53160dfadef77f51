"""Real possim processes for tests: started, waited for by their log lines, killed, always reaped.

Every process writes its structlog JSON lines on stderr into a log file; a test waits for a
line (a readiness signal such as ``acquirer_ready``, or a protocol event such as the
terminal's ``msg_sent`` of a 0200) by reading that file, never by sleeping for a guessed time.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
POSSIM = [sys.executable, "-m", "possim"]


class Proc:
    """One ``possim`` command; each start appends to the same log file, each wait reads only its own start."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, [*POSSIM, *args], log
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> Proc:
        self._close_pipe()
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as sink:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=sink)
        return self

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of the current start (other lines, such as "acquirer stopped", are skipped)."""
        with self.log.open("rb") as f:
            f.seek(self._offset)
            text = f.read().decode("utf-8", "replace")
        found = []
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line still being written
        return found

    def wait_event(self, event: str, timeout: float = 60.0, **fields: object) -> dict[str, Any]:
        """The first log line of this start with ``event`` and ``fields``; fails if the process ends first."""

        def found() -> dict[str, Any] | None:
            for e in self.events():
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before logging {event} "
                                     f"{fields}:\n{self.tail()}")
            return None

        return wait_for(found, timeout, f"{self.name} to log {event} {fields}")

    def logged(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> int:
        """SIGKILL: the process gets no chance to clean up anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(30)
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

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

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for a process that ends by itself; its exit code and stdout."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not finish within {timeout:g}s:\n{self.tail()}") from None
        return self.proc.returncode, out.decode()


@contextmanager
def fleet() -> Iterator[Callable[[str, list[str], Path], Proc]]:
    """A factory of processes that are all stopped and reaped on the way out, whatever happened."""
    made: list[Proc] = []

    def make(name: str, args: list[str], log: Path) -> Proc:
        made.append(Proc(name, args, log))
        return made[-1]

    try:
        yield make
    finally:
        for p in reversed(made):
            p.stop()


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.02) -> T:
    """Poll ``probe`` every ``every`` seconds until it returns something other than None (or
    False); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows from a SQLite file another process may be writing (waits out its write lock)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(sql, args).fetchall()


def check(journal: Path, ledger: Path) -> tuple[int, dict[str, Any], str]:
    """``possim check --json``: exit code, summary, stderr."""
    out = subprocess.run([*POSSIM, "check", "--journal", str(journal), "--ledger", str(ledger), "--json"],
                         capture_output=True, text=True, timeout=60)
    summary = json.loads(out.stdout) if out.stdout.strip() else {}
    return out.returncode, summary, out.stderr

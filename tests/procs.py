"""possim as child processes in tests: start, wait for a log line that says it is ready, stop.

A process is acted on (signalled, published to) only after it said it is ready, never after
a fixed delay: on a busy machine a Python process may take seconds to install its signal
handlers or subscribe. Every process started here is stopped and reaped by its owner, and its
pipes are read to the end, so no transport, pipe or zombie outlives a test.

Two ways to run one: under asyncio with stderr read line by line (``start``, ``run``,
``running``: Possim), or synchronously with stderr appended to a log file that is read for
structlog events (``fleet``, ``Proc``: possim.processes.child's LoggedProcess, as ``possim chaos`` uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from possim.processes.child import POSSIM, LoggedProcess, NotReadyError, poll_until

T = TypeVar("T")
# Generous bounds on a test that would otherwise hang: a cold interpreter on two busy cores is
# slow, and a bound costs nothing when the process is quicker. None is a wait for something.
READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 60.0
RUN_TIMEOUT = 180.0


def event_of(line: str) -> dict[str, object] | None:
    """The structlog JSON object on this stderr line, or None for a plain line."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_event(name: str, **fields: object) -> Callable[[str], bool]:
    """A line predicate: the JSON log line of event ``name`` with these field values."""

    def match(line: str) -> bool:
        data = event_of(line)
        return data is not None and data.get("event") == name and all(data.get(k) == v for k, v in fields.items())

    return match


class Possim:
    """One running possim process whose stderr is read, line by line, by a background task."""

    def __init__(self, proc: asyncio.subprocess.Process, args: tuple[str, ...]) -> None:
        self.proc, self.args = proc, args
        self.lines: list[str] = []
        self._new_line = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name=f"stderr of {args[0]}")

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            async with self._new_line:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._new_line.notify_all()
        async with self._new_line:  # end of file: wake waiters so they can report it
            self._new_line.notify_all()

    async def wait_for_line(self, predicate: Callable[[str], bool], what: str) -> str:
        """The first stderr line (from the start) matching ``predicate``; fails with every line seen."""

        def found() -> str | None:
            return next((line for line in self.lines if predicate(line)), None)

        try:
            async with asyncio.timeout(READY_TIMEOUT), self._new_line:
                while (line := found()) is None:
                    if self._reader.done():
                        break
                    await self._new_line.wait()
        except TimeoutError:
            line = None
        if line is None:
            state = "stderr closed" if self._reader.done() else f"no match in {READY_TIMEOUT:g}s"
            raise AssertionError(f"{' '.join(self.args)}: waiting for {what}: {state}; stderr so far:\n{self.log}")
        return line

    async def ready(self, event: str = "mqtt_connected", **fields: object) -> None:
        """Wait for the JSON log event that says this process can be used (by default: connected and subscribed)."""
        await self.wait_for_line(is_event(event, **fields), f"event {event!r}")

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` (once, if still running), then reap the process and read its stderr to the end.

        ``os.kill`` rather than ``Process.send_signal``: the latter polls (and so reaps) a child
        that just exited, behind the child watcher's back, which then reports exit code 255.
        """
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
        return await self.wait()

    async def wait(self) -> int:
        """The exit code; a process still running after ``EXIT_TIMEOUT`` is killed and the test fails."""
        try:
            async with asyncio.timeout(EXIT_TIMEOUT):
                code = await self.proc.wait()
        except TimeoutError:
            await self.kill_group()
            message = f"{' '.join(self.args)} did not exit in {EXIT_TIMEOUT:g}s; stderr:\n{self.log}"
            raise AssertionError(message) from None
        await self._reader
        return code

    async def kill_group(self) -> None:
        """Last resort: SIGKILL the process group this process leads (its children too), reap it, drain its pipe.

        The group id stays reserved while any member lives, so this reaches only what the test started.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        await self._reader


@dataclass(frozen=True, slots=True)
class Finished:
    """A possim process run to its end."""

    returncode: int
    stdout: str
    stderr: str


async def start(*args: str) -> Possim:
    """Start ``possim ARGS`` with stderr piped, in a process group of its own (so teardown can reap its children)."""
    proc = await asyncio.create_subprocess_exec(*POSSIM, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE, start_new_session=True)
    return Possim(proc, args)


async def run(*args: str) -> Finished:
    """Run ``possim ARGS`` to the end; a run still going after ``RUN_TIMEOUT`` is killed and the test fails."""
    proc = await asyncio.create_subprocess_exec(*POSSIM, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.communicate()
        raise AssertionError(f"possim {' '.join(args)} did not finish in {RUN_TIMEOUT:g}s") from None
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


@contextlib.asynccontextmanager
async def running(*args: str) -> AsyncIterator[Possim]:
    """``possim ARGS`` for the duration of the block; whatever happens, it is gone afterwards.

    The test stops it itself (and checks the exit code) when that matters; if the test failed
    first, the process gets SIGTERM, then SIGKILL to its whole group if it does not exit.
    """
    process = await start(*args)
    try:
        yield process
    finally:
        if process.proc.returncode is None:
            with contextlib.suppress(AssertionError):
                await process.stop()
        await process.kill_group()  # also a child left behind, such as mosquitto under `possim broker`


# --- processes run synchronously, stderr into a log file (possim.processes.child, shared with ``possim chaos``) ---


class Proc(LoggedProcess):
    """One ``possim`` command; each start appends to the same log file, each wait reads only its own start.

    possim.processes.child's waits raise NotReadyError; here they fail the test (AssertionError) with the log's tail.
    """

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        super().__init__(name, [*POSSIM, *args], log, capture_stdout=True)

    def start(self) -> Proc:
        super().start()
        return self

    def wait_event(self, event: str, timeout: float = 60.0, **fields: object) -> dict[str, Any]:
        try:
            return super().wait_event(event, timeout, **fields)
        except NotReadyError as exc:
            raise AssertionError(str(exc)) from None

    def kill(self) -> int:
        code = super().kill()
        assert code is not None, f"{self.name} was never started"
        return code

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for a process that ends by itself; its exit code and stdout."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not finish within {timeout:g}s:\n{self.tail()}") from None
        return self.proc.returncode, out.decode()


@contextlib.contextmanager
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
    False); fail the test after ``timeout``."""
    try:
        return poll_until(probe, timeout, what, every)
    except NotReadyError as exc:
        raise AssertionError(str(exc)) from None


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows from a SQLite file another process may be writing (waits out its write lock)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(sql, args).fetchall()


def check(journal: Path, ledger: Path) -> tuple[int, dict[str, Any], str]:
    """``possim check --json``: exit code, summary, stderr."""
    out = subprocess.run([*POSSIM, "check", "--journal", str(journal), "--ledger", str(ledger), "--json"],
                         capture_output=True, text=True, timeout=60)
    summary = json.loads(out.stdout) if out.stdout.strip() else {}
    return out.returncode, summary, out.stderr

"""The TCP transport: ISO 8583 frames with a 2-byte length header over a socket.

The host listens; each terminal keeps one connection open, reconnecting with backoff if it
drops, and keeps an outbox so nothing sent while disconnected is lost. The host answers a
terminal on the connection its requests came from (learned from field 41).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable, Mapping

from protocol import codec
from protocol.errors import ProtocolError
from protocol.framing import Deframer, frame


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TcpHost:
    """The listening side; ``on_message(bytes)`` gets every request, ``send`` routes replies by terminal id."""

    def __init__(self, on_message: Callable[[bytes], None], emit: Callable[..., None] | None = None) -> None:
        self.on_message = on_message
        self.emit = emit or (lambda *a, **k: None)
        self.writers: dict[str, asyncio.StreamWriter] = {}
        self.server: asyncio.Server | None = None
        self.received = self.sent = 0
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, close every connection and let each handler finish on its own."""
        if self.server is None:
            return
        self.server.close()
        for writer in list(self.writers.values()):
            writer.close()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2.0)
        with contextlib.suppress(Exception):
            await self.server.wait_closed()

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        writer = self.writers.get(str((meta or {}).get("tid")))
        if writer is None or writer.is_closing():
            self.emit("tcp_no_route", tid=(meta or {}).get("tid"))
            return
        writer.write(frame(data))
        self.sent += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _nodelay(writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        deframer = Deframer()
        try:
            while chunk := await reader.read(65536):
                for data in deframer.feed(chunk):
                    self.received += 1
                    with contextlib.suppress(ProtocolError):
                        self.writers[codec.decode(data).tid] = writer
                    self.on_message(data)
        except (ConnectionError, ProtocolError) as exc:
            self.emit("tcp_connection_dropped", reason=str(exc))
        finally:
            writer.close()


class TcpTerminalLink:
    """The terminal's connection: ``send(bytes)`` never blocks or fails; answers go to ``on_message``."""

    def __init__(self, host: str, port: int, on_message: Callable[[bytes], None],
                 emit: Callable[..., None] | None = None) -> None:
        self.host, self.port, self.on_message = host, port, on_message
        self.emit = emit or (lambda *a, **k: None)
        self.outbox: deque[bytes] = deque()
        self.connected = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = self.received = 0

    async def start(self, timeout: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run(), name="tcp-terminal")
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer:
            self._writer.close()

    @property
    def idle(self) -> bool:
        return not self.outbox

    def send(self, data: bytes) -> None:
        self.outbox.append(data)
        self._flush()

    def _flush(self) -> None:
        while self.outbox and self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame(self.outbox.popleft()))
            self.sent += 1

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                continue
            _nodelay(writer)
            self._writer, backoff = writer, 0.05
            self.connected.set()
            self._flush()
            deframer = Deframer()
            try:
                while chunk := await reader.read(65536):
                    for data in deframer.feed(chunk):
                        self.received += 1
                        self.on_message(data)
            except (ConnectionError, ProtocolError) as exc:
                self.emit("tcp_connection_dropped", reason=str(exc))
            self.connected.clear()
            self._writer = None
            writer.close()

"""The TCP transport: ISO 8583 frames with a 2-byte length header over a socket.

The framing follows the endpoint's wire dialect (``Endpoint.dialect``, ``protocol.dialects``):
``iso`` frames are a 2-byte length and the message; ``cup`` frames carry a 5-byte TPDU and a
6-byte header after the length (``framing.CupFraming``), and the host answers each connection
with the TPDU of its requests, addresses swapped (``framing.answer_framing``).

The host listens; each terminal keeps one connection open, reconnecting with backoff if it
drops, and keeps an outbox so nothing sent while disconnected is lost.

Identity: a connection belongs to the terminal of its first authenticated *fresh* request (the
host's reply says so: ``meta["authenticated"]`` and ``meta["fresh"]``) and is never rebound. A
replay of a request the host already answered (a duplicate key) proves only that someone once
saw the terminal's bytes: its answer goes back on the connection it came from, but it binds
nothing and never moves the terminal's latest connection (``writers``). Every later request on it
arrives with that terminal id as its ``Origin``, so the host refuses one naming another
terminal in field 41. A reply goes back on the connection its request came from; only when
that one is gone (the terminal reconnected) does it go to the terminal's latest bound
connection. A frame naming a terminal never redirects that terminal's replies by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from possim.protocol import dialects
from possim.protocol.errors import ProtocolError
from possim.protocol.events import TcpConnectionDropped, TcpNoRoute
from possim.protocol.framing import Framing, LengthFraming, answer_framing
from possim.protocol.ports import TraceSink
from possim.protocol.transports import Endpoint, Origin, TransportError


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Connection(asyncio.Protocol):
    """One connection to the host. Frames are handed on inside ``data_received``, so the host's
    answer is written in the very loop iteration its request was read in (a stream reader task
    would add a wake-up per read)."""

    def __init__(self, host: TcpHost) -> None:
        self.host = host
        self.deframer = host.framing.deframer()
        self.origin = Origin(None, self)
        self.transport: asyncio.Transport | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        _nodelay(transport)
        self.transport = transport
        self.host.connections.add(self)

    def data_received(self, data: bytes) -> None:
        host = self.host
        try:
            for message in self.deframer.feed(data):
                host.received += 1
                host.on_message(message, self.origin)
        except ProtocolError as exc:
            host.emit(TcpConnectionDropped(str(exc)))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.host.emit(TcpConnectionDropped(str(exc)))
        self.host.connections.discard(self)
        if not self.gone.done():
            self.gone.set_result(None)

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpHost:
    """The listening side; ``on_message(bytes, origin)`` gets every request, ``send`` answers on its connection."""

    def __init__(self, on_message: Callable[[bytes, Origin], None], emit: Callable[..., None] | None = None,
                 framing: Framing | None = None) -> None:
        self.on_message = on_message
        self.emit = emit or (lambda *a, **k: None)
        self.framing: Framing = framing or LengthFraming()
        #: Each terminal's latest bound connection.
        self.writers: dict[str, _Connection] = {}
        self.connections: set[_Connection] = set()
        self.server: asyncio.Server | None = None
        self.received = self.sent = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, close every connection and wait (briefly) until each is gone."""
        if self.server is None:
            return
        self.server.close()
        open_ones = list(self.connections)
        for conn in open_ones:
            conn.close()
        if open_ones:
            await asyncio.wait([c.gone for c in open_ones], timeout=2.0)
        with contextlib.suppress(Exception):
            await self.server.wait_closed()

    @property
    def idle(self) -> bool:
        """Writes are buffered by the event loop; nothing waits in possim's own queue."""
        return True

    async def close(self) -> None:
        await self.stop()

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.deliver(data, meta)

    def deliver(self, data: bytes, meta: Mapping[str, object] | None = None) -> bool:
        """``send``, saying whether the answer was written to an open connection (False: no route,
        ``tcp_no_route``: the terminal's connection is gone, e.g. the terminal was killed)."""
        meta = meta or {}
        tid = str(meta.get("tid"))
        conn = self._route(tid, meta.get("origin"), bool(meta.get("authenticated", True)),
                           bool(meta.get("fresh", False)))
        if conn is None or conn.is_closing():
            self.emit(TcpNoRoute(None if meta.get("tid") is None else str(meta.get("tid"))))
            return False
        conn.write(answer_framing(conn.deframer, self.framing).frame(data))
        self.sent += 1
        return True

    def _route(self, tid: str, origin: object, authenticated: bool, fresh: bool) -> _Connection | None:
        """The request's own connection (binding it to ``tid`` on its first authenticated reply to a
        fresh request); else, for an authenticated reply only, the terminal's latest bound connection."""
        if isinstance(origin, Origin) and isinstance(origin.route, _Connection):
            conn = origin.route
            if authenticated and fresh and origin.tid is None:
                origin.tid = tid  # bound for good: never rebound
                self.writers[tid] = conn
            if origin.tid in (None, tid) and not conn.is_closing():
                return conn
            if not authenticated:
                return None
        return self.writers.get(tid) if authenticated else None


class _LinkProtocol(asyncio.Protocol):
    """The terminal's side of one connection: answers are handed on inside ``data_received``."""

    def __init__(self, link: TcpTerminalLink) -> None:
        self.link = link
        self.deframer = link.framing.deframer()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        _nodelay(transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        link = self.link
        try:
            for message in self.deframer.feed(data):
                link.received += 1
                link.on_message(message)
        except ProtocolError as exc:
            link.emit(TcpConnectionDropped(str(exc)))
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.link.emit(TcpConnectionDropped(str(exc)))
        if not self.lost.done():
            self.lost.set_result(None)


class TcpTerminalLink:
    """The terminal's connection: ``send(bytes)`` never blocks or fails; answers go to ``on_message``.

    While connected, ``send`` writes at once (TCP_NODELAY, no drain: a request is a few hundred
    bytes); while disconnected, requests wait in ``outbox`` and go out on the next connection.
    """

    def __init__(self, host: str, port: int, on_message: Callable[[bytes], None],
                 emit: Callable[..., None] | None = None, framing: Framing | None = None) -> None:
        self.host, self.port, self.on_message = host, port, on_message
        self.framing: Framing = framing or LengthFraming()
        self.emit = emit or (lambda *a, **k: None)
        self.outbox: deque[bytes] = deque()
        self.connected = asyncio.Event()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = self.received = 0

    #: Seconds ``start`` waits for the first connection.
    connect_timeout = 5.0

    async def start(self) -> None:
        """Connect for the first time; a host that cannot be reached raises ``TransportError``."""
        self._task = asyncio.create_task(self._run(), name="tcp-terminal")
        try:
            await asyncio.wait_for(self.connected.wait(), self.connect_timeout)
        except TimeoutError:
            await self.stop()
            raise TransportError(f"cannot reach the host at tcp://{self.host}:{self.port}") from None

    async def close(self) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._transport:
            self._transport.close()

    @property
    def idle(self) -> bool:
        return not self.outbox and self.connected.is_set()

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        transport = self._transport
        if not self.outbox and transport is not None and not transport.is_closing():
            transport.write(self.framing.frame(data))
            self.sent += 1
            return
        self.outbox.append(data)
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        while self.outbox and transport is not None and not transport.is_closing():
            transport.write(self.framing.frame(self.outbox.popleft()))
            self.sent += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while True:
            try:
                transport, protocol = await loop.create_connection(lambda: _LinkProtocol(self), self.host, self.port)
            except OSError:
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                continue
            self._transport, backoff = transport, 0.05
            self.connected.set()
            self._flush()
            try:
                await protocol.lost
            finally:
                self.connected.clear()
                self._transport = None
                transport.close()


def parse_address(url: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (or ``HOST:PORT``) as (host, port); a bad one raises ``TransportError``."""
    text = url if "://" in url else f"tcp://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TransportError(f"bad TCP address {url!r}: {exc}") from None
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise TransportError(f"bad TCP address {url!r}: expected tcp://HOST:PORT")
    return parts.hostname, port


class Wire:
    """ISO 8583 over TCP: the host listens on ``Endpoint.url``; terminals connect to it.

    In a one-process run the host listens on a free loopback port and the terminals connect
    to the port it got. Frames follow ``Endpoint.dialect``: terminals frame with the dialect's
    ``framing``, the host with its ``host_framing``.
    """

    name = "tcp"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.host, self.port = parse_address(endpoint.url or "tcp://127.0.0.1:0")
        try:
            self.dialect = dialects.get(endpoint.dialect)
        except ValueError as exc:
            raise TransportError(str(exc)) from None

    async def open_host(self, on_request: Callable[[bytes, Origin], None], emit: TraceSink) -> TcpHost:
        server = TcpHost(on_request, emit, self.dialect.host_framing)
        try:
            self.port = await server.start(self.host, self.port)
        except OSError as exc:
            raise TransportError(f"cannot listen on tcp://{self.host}:{self.port}: {exc.strerror or exc}") from None
        return server

    async def open_terminal(self, tid: str, on_response: Callable[[bytes], None], emit: TraceSink
                            ) -> TcpTerminalLink:
        link = TcpTerminalLink(self.host, self.port, on_response, emit, self.dialect.framing)
        await link.start()
        return link

    def describe(self) -> dict[str, object]:
        """The port, and the dialect when it is not the default (ISO traces stay as they were)."""
        if self.dialect.name == dialects.DEFAULT:
            return {"port": self.port}
        return {"port": self.port, "dialect": self.dialect.name}

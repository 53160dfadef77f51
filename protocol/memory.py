"""The in-memory transport: hands bytes straight to the receiving side.

On its own it is a perfect wire; wrapped in the fault layer it becomes the lossy,
latent link of the virtual-time simulator. ``Wire`` offers the same ends as MQTT and TCP,
so a real-time run (and a load run) can use memory too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from possim.protocol.ports import TraceSink
from possim.protocol.transports import Endpoint, Origin

#: The name this transport is registered under (``possim.protocol.transports``); the virtual-time
#: runs, which always go over this wire, record it as their transport.
NAME = "memory"


@dataclass(frozen=True, slots=True)
class MemoryTransport:
    deliver: Callable[[bytes], None]

    def send(self, data: bytes) -> None:
        self.deliver(data)


@dataclass(slots=True)
class _End:
    """One end of the in-memory wire; ``peer`` is called with every message sent."""

    peer: Callable[[bytes, Mapping[str, object] | None], None]
    sent: int = 0
    received: int = 0
    idle: bool = True

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.sent += 1
        self.peer(data, meta)

    async def close(self) -> None:
        """Nothing to release: an in-memory end holds no socket."""


@dataclass(slots=True)
class Wire:
    """Host and terminals in one process: replies are routed to terminals by their id."""

    endpoint: Endpoint
    name: str = NAME
    _host: Callable[[bytes, Origin], None] | None = None
    _terminals: dict[str, Callable[[bytes], None]] = field(default_factory=dict)

    async def open_host(self, on_request: Callable[[bytes, Origin], None], emit: TraceSink) -> _End:
        self._host = on_request
        return _End(self._to_terminal)

    async def open_terminal(self, tid: str, on_response: Callable[[bytes], None], emit: TraceSink) -> _End:
        self._terminals[tid] = on_response
        return _End(self._to_host)

    def describe(self) -> dict[str, object]:
        return {}

    def _to_host(self, data: bytes, _meta: Mapping[str, object] | None) -> None:
        assert self._host is not None, "open_host before terminals send"
        self._host(data, Origin())  # one process: the wire vouches for nobody, the MAC does

    def _to_terminal(self, data: bytes, meta: Mapping[str, object] | None) -> None:
        deliver = self._terminals.get(str((meta or {}).get("tid")))
        if deliver is not None:
            deliver(data)

"""The ports both sides of the wire use: what a driver needs from the world around it.

The terminal's and the host's drivers, the fault layer and every transport meet here and
nowhere else, so ``pos_sim`` and ``acquirer_sim`` never import each other. Each port is a
small ``Protocol``: the virtual clock and the asyncio loop are both a ``Scheduler``; the
fault layer, the in-memory wire, MQTT and TCP are all a ``Link`` or a ``Transport``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from possim.protocol.events import Event


class Cancellable(Protocol):
    """A scheduled callback that can still be called off (a timer)."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A clock that can run a callback later: virtual time in memory, the event loop otherwise."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...


class Transport(Protocol):
    """The one thing the fault layer needs from a wire: hand bytes to the peer."""

    def send(self, data: bytes) -> None: ...


class Link(Protocol):
    """A driver's way out: bytes plus what they are (``tid``, ``stan``, ``mti``) for routing and logs."""

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None: ...


@runtime_checkable
class DeliveringLink(Link, Protocol):
    """A link that can tell whether it took the bytes: a route to the terminal existed (an open TCP
    connection) or the publish was handed to the broker client. The host records it per answer."""

    def deliver(self, data: bytes, meta: Mapping[str, object] | None = None) -> bool: ...


class TraceSink(Protocol):
    """Where transports report what happened to their connections: a typed event
    (``protocol.events``), as the drivers and the fault layer report theirs."""

    def __call__(self, event: Event, /) -> None: ...

"""Transports: one small protocol, one registry line each.

A transport carries the ISO 8583 bytes between terminals and the host. Whatever it is (a
function call in memory, an MQTT broker, a TCP socket), the runner sees the same two ends:

- the host end: every request arrives as ``on_request(data, origin)``, where ``origin`` (an
  ``Origin``) is what the transport knows of the sender: the terminal id it vouches for (the
  id in the MQTT topic, which the broker's ACL reserves to that terminal's account; the id a
  TCP connection was bound to by its first authenticated fresh message), or ``None``. The host
  compares it with field 41. ``send(data, meta)`` routes a reply to the terminal named in
  ``meta["tid"]``; ``meta["origin"]`` is the request's origin (a transport answers there and
  nowhere else), ``meta["authenticated"]`` says whether the request proved its sender and
  ``meta["fresh"]`` whether the host acted on it for the first time (a TCP connection is bound
  to ``meta["tid"]`` by the first reply that is both; a replay of an answered request binds nothing);
- a terminal end: ``send(data)`` hands a request to the host.

Both ends never block and never fail on ``send`` (they queue while disconnected), say when
they are ``idle`` (connected, nothing queued) and count what they ``sent`` and ``received``,
so a one-process run knows when every message has arrived. Adding a transport means one
module with a ``Wire`` class and one line in ``WIRES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from possim.protocol.ports import TraceSink

#: name -> module holding its ``Wire`` class (imported on first use: MQTT pulls in aiomqtt).
WIRES: dict[str, str] = {
    "memory": "possim.protocol.memory",
    "mqtt": "possim.protocol.mqtt",
    "tcp": "possim.protocol.tcp",
}
NAMES: tuple[str, ...] = tuple(WIRES)


class TransportError(Exception):
    """The transport cannot be used (bad address, unreachable peer); ``str()`` is one line for the user."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a wire meets its peer, and how.

    ``url``: ``mqtt://HOST:PORT`` (the broker) or ``tcp://HOST:PORT`` (the host listens there,
    terminals connect there; port 0 lets the host pick one in a one-process run).
    ``client_id``: the MQTT client id of a long-lived process (a restart resumes its session).
    ``force_redelivery``: MQTT only, the host withholds its first N acknowledgements (tests).
    ``username``/``password``: MQTT only, the broker account (``possim keys`` makes them).
    ``tls_ca``: MQTT only, connect with TLS and trust this CA file; ``tls_cert``/``tls_key``: a
    client certificate for brokers that require one.
    ``shard``/``shards``: host shard ``shard`` of ``shards`` (:mod:`protocol.shards`): over MQTT a
    host subscribes to its shard's requests only and a terminal publishes to its shard's topic.
    ``dialect``: the wire dialect (:mod:`protocol.dialects`, ``iso`` or ``cup``), which sets the
    TCP framing (``cup``: length, TPDU and header); MQTT and memory carry the message bytes as they are.
    """

    url: str | None = None
    qos: int = 1
    client_id: str | None = None
    force_redelivery: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    shard: int = 0
    shards: int = 1
    dialect: str = "iso"


@dataclass(eq=False, slots=True)
class Origin:
    """Who a transport says sent a request.

    ``tid``: the terminal id the transport vouches for, or ``None`` when it vouches for none
    (in memory; a TCP connection before its first authenticated message). ``route`` is the
    transport's own handle for answering there (a TCP connection); the host never reads it.
    """

    tid: str | None = None
    route: object = None


class HostEnd(Protocol):
    """The acquirer's side: every request arrives through ``on_request``; replies go by terminal id."""

    sent: int
    received: int

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None: ...

    @property
    def idle(self) -> bool: ...

    async def close(self) -> None: ...


class TerminalEnd(Protocol):
    """One terminal's side: requests go out with ``send``; answers arrive through ``on_response``."""

    sent: int
    received: int

    def send(self, data: bytes) -> None: ...

    @property
    def idle(self) -> bool: ...

    async def close(self) -> None: ...


class Wire(Protocol):
    """A transport: opens the host's end and terminals' ends."""

    name: str

    async def open_host(self, on_request: Callable[[bytes, Origin], None], emit: TraceSink) -> HostEnd: ...

    async def open_terminal(self, tid: str, on_response: Callable[[bytes], None], emit: TraceSink) -> TerminalEnd: ...

    def describe(self) -> dict[str, object]:
        """What a trace records about this wire (broker, port, QoS)."""
        ...


def open_wire(name: str, endpoint: Endpoint | None = None) -> Wire:
    """The wire called ``name``; an unknown name raises ``TransportError``."""
    if name not in WIRES:
        raise TransportError(f"unknown transport {name!r} (choose from {', '.join(NAMES)})")
    module = importlib.import_module(WIRES[name])
    wire: Wire = module.Wire(endpoint or Endpoint())
    return wire

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
module with a ``Wire`` class and one ``REGISTRY.register(Transport(...))`` line here (or in the
module that adds it). The ``Transport`` entry says what the commands need to know about the wire
(virtual time or a real loop, the URL scheme, a broker or a host address, backup lines, separate
processes, its words for people): every command asks the registry and branches on those, never
on a transport's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from possim.protocol.ports import TraceSink
from possim.protocol.registry import Registry


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


def N_(text: str) -> str:  # noqa: N802 - the gettext convention: marked for the catalogue, translated by the view
    return text


@dataclass(frozen=True, slots=True)
class Transport:
    """One transport as the commands see it: what its wire can do, and where its ``Wire`` class lives.

    A light entry: the module is imported when a wire is opened, not when the CLI starts (MQTT pulls
    in aiomqtt). The commands read these facts instead of knowing names:

    ``virtual_time``: host and terminals run in one process in virtual time (``possim run`` simulates;
    no real loop, no address); ``scheme``: the URL scheme of its addresses (``for_url`` picks the wire
    by it); ``broker``: its peer is a message broker named with ``--broker`` (same for host and
    terminals; a one-process run without one starts a private Mosquitto; a load run shares broker
    clients); otherwise a real-loop wire with a scheme reaches the host itself at an address
    (``--listen``/``--connect``, default ``default_url``; a load can ``--connect`` a third-party host);
    ``failover``: a terminal may be given several host addresses (backup lines); ``processes``:
    host and terminals can be separate processes (``possim acquirer``/``terminal``/``settle``);
    ``words``: how a run view names it, ``load_words``: how a load view names it (``None``: the name
    in capitals, as protocols are written) — English, marked for the catalogue.
    """

    name: str
    module: str
    words: str
    load_words: str | None = None
    virtual_time: bool = False
    scheme: str | None = None
    broker: bool = False
    default_url: str | None = None
    failover: bool = False
    processes: bool = False
    attribute: str = "Wire"

    def open(self, endpoint: Endpoint | None = None) -> Wire:
        """A new wire of this transport; a bad address raises ``TransportError``."""
        cls = getattr(importlib.import_module(self.module), self.attribute)
        wire: Wire = cls(endpoint or Endpoint())
        return wire

    @property
    def dials(self) -> bool:
        """Reaches an ISO 8583 host at an address of its own (not through a broker, not in memory)."""
        return not self.virtual_time and not self.broker and self.scheme is not None


#: Every transport, the first the default of ``possim run`` and ``possim load``.
REGISTRY: Registry[Transport] = Registry("transport", lambda t: t.name)
REGISTRY.register(Transport("memory", "possim.protocol.memory", N_("in memory (virtual time)"),
                            N_("in-process memory"), virtual_time=True))
REGISTRY.register(Transport("mqtt", "possim.protocol.mqtt", N_("over MQTT"), scheme="mqtt", broker=True,
                            processes=True))
REGISTRY.register(Transport("tcp", "possim.protocol.tcp", N_("over TCP"), scheme="tcp",
                            default_url="tcp://127.0.0.1:8583", failover=True, processes=True))


def get(name: str) -> Transport:
    """The transport called ``name``; anything else raises ``TransportError`` naming the choices."""
    try:
        return REGISTRY.get(name)
    except ValueError as exc:
        raise TransportError(str(exc)) from None


def names() -> tuple[str, ...]:
    """Every transport's name, asked when needed (a transport registered later is included)."""
    return REGISTRY.names()


def default() -> Transport:
    """The first transport registered: what a one-process run uses unless told otherwise."""
    return REGISTRY.values()[0]


def for_url(url: str) -> Transport:
    """The transport whose addresses look like ``url`` (its scheme); ``TransportError`` for others."""
    scheme = urlsplit(url).scheme
    for t in REGISTRY.values():
        if t.scheme is not None and t.scheme == scheme:
            return t
    known = ", ".join(f"{t.scheme}://" for t in REGISTRY.values() if t.scheme)
    raise TransportError(f"{url!r}: no transport takes this address (choose from {known})")


def open_wire(name: str, endpoint: Endpoint | None = None) -> Wire:
    """The wire called ``name``; an unknown name raises ``TransportError``."""
    return get(name).open(endpoint)


def open_url(url: str, endpoint: Endpoint | None = None) -> Wire:
    """The wire ``url`` names by its scheme, at that address (``endpoint`` gives the rest)."""
    from dataclasses import replace

    return for_url(url).open(replace(endpoint or Endpoint(), url=url))

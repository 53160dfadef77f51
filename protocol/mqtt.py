"""The MQTT transport (aiomqtt 2.x over Mosquitto): a thin adapter that stays connected.

Topic layout (``possim/v1`` is the root)::

    possim/v1/term/{tid}/req    terminal -> host   (the host subscribes to possim/v1/term/+/req)
    possim/v1/term/{tid}/resp   host -> terminal   (each terminal subscribes to its own)

Payloads are the ISO 8583 bytes, unchanged. Messages are never retained (a retained
response would be replayed to a rebooted terminal).

Identity: the host hands each request to its handler with an ``Origin`` naming the terminal
id of the topic it came on. A secured broker (``possim broker --keys``) lets each terminal
account publish only on its own request topic, so the topic's id is the account's, and the
host refuses a request whose field 41 names another terminal. Accounts (``username`` and
``password``) and TLS (``tls_ca``, optional client ``tls_cert``/``tls_key``) come from the
``Endpoint``.

What this module takes care of, because aiomqtt 2.x and Mosquitto do not:
- TCP_NODELAY on every client socket (else QoS 1 request/response costs ~88 ms);
- reconnection with backoff (aiomqtt does not reconnect by itself), resubscribing each time;
- a persistent session (MQTT 5 Clean Start = 0 and a session expiry interval; the default
  starts clean on every connect), so QoS 1 messages queued while offline are delivered;
- an outbox: a publish made while disconnected, or whose QoS 1 PUBACK never came, is sent
  again after reconnecting (a real duplicate the host's idempotency absorbs).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.ports import TraceSink
from protocol.shards import request_filter
from protocol.shards import request_topic as shard_request_topic
from protocol.transports import Endpoint, Origin, TransportError

ROOT = "possim/v1"
ALL_REQUESTS = f"{ROOT}/term/+/req"
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def requests_topic(tid: str) -> str:
    return f"{ROOT}/term/{tid}/req"


def responses_topic(tid: str) -> str:
    return f"{ROOT}/term/{tid}/resp"


def topic_tid(topic: str) -> str | None:
    """The terminal id of a request topic (``possim/v1/term/{tid}/req``); ``None`` for any other topic."""
    parts = topic.split("/")
    if len(parts) == 7 and parts[2] == "shard":  # a host shard's topic: possim/v1/shard/{k}/term/{tid}/req
        parts = parts[:2] + parts[4:]
    if len(parts) == 5 and f"{parts[0]}/{parts[1]}" == ROOT and parts[2] == "term" and parts[4] == "req":
        return parts[3]
    return None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://host:port`` (port defaults to 1883)."""
        try:
            parts = urlsplit(url)
            port = parts.port or 1883
        except ValueError as exc:
            raise TransportError(f"bad broker URL {url!r}: {exc}") from None
        if parts.scheme != "mqtt" or not parts.hostname or parts.path not in ("", "/"):
            raise TransportError(f"bad broker URL {url!r}: expected mqtt://HOST:PORT")
        return cls(parts.hostname, port)


class MqttEndpoint:
    """One MQTT client kept connected by a background task; ``publish`` never blocks or fails."""

    def __init__(self, address: BrokerAddress, identifier: str, subscriptions: list[str],
                 on_message: Callable[[str, bytes], None], qos: int = 1, emit: Callable[..., None] | None = None,
                 session_expiry: int = 86_400, username: str | None = None, password: str | None = None,
                 tls: aiomqtt.TLSParameters | None = None) -> None:
        self.address, self.identifier, self.subscriptions = address, identifier, subscriptions
        self.on_message, self.qos = on_message, qos
        self.emit = emit or (lambda *a, **k: None)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho has no annotations
        props.SessionExpiryInterval = session_expiry
        self.client = aiomqtt.Client(address.host, address.port, identifier=identifier,
                                     protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
                                     socket_options=NODELAY, keepalive=10, timeout=5, username=username,
                                     password=password, tls_params=tls)
        self.client.pending_calls_threshold = 10**9
        self.outbox: deque[tuple[str, bytes]] = deque()
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.published = self.received = 0
        self.hold_acks = 0
        self._stopping = False
        # Acknowledge a QoS 1 message only once it has been handled (for the host: committed
        # to the ledger). paho's default acknowledges on arrival, before aiomqtt even queues
        # it, so a crash in between would lose a request the broker thinks was delivered.
        self.client._client.manual_ack_set(True)

    async def start(self, connect_within: float = 5.0) -> None:
        """Connect for the first time; an unreachable broker raises ``TransportError``."""
        self._tasks = [asyncio.create_task(self._connection_loop(), name=f"mqtt[{self.identifier}].conn"),
                       asyncio.create_task(self._sender(), name=f"mqtt[{self.identifier}].send")]
        try:
            await asyncio.wait_for(self.connected.wait(), connect_within)
        except TimeoutError:
            await self.stop()
            raise TransportError(f"cannot reach MQTT broker at mqtt://{self.address.host}:{self.address.port}"
                                 ) from None

    def publish(self, topic: str, payload: bytes) -> None:
        self.outbox.append((topic, payload))
        self._wake.set()

    @property
    def idle(self) -> bool:
        return not self.outbox

    async def stop(self) -> None:
        """Stop for good. The flag matters: aiomqtt's exit may turn the cancellation into an
        ``MqttError``, which the connection loop would otherwise take for a lost link and redo."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10.0)
        for task in self._tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved, so a task that ended with an error is not reported later

    def force_reconnect(self) -> None:
        """Drop the TCP connection (a network cut); the loop reconnects and resumes the session."""
        sock = self.client._client.socket()
        if isinstance(sock, socket.socket):  # paho types it as a SocketLike; plain and TLS sockets are both sockets
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def socket_nodelay(self) -> int:
        sock = self.client._client.socket()
        return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) if isinstance(sock, socket.socket) else -1

    async def _connection_loop(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                async with self.client:
                    for topic in self.subscriptions:
                        await self.client.subscribe(topic, qos=self.qos)
                    self.connected.set()
                    self._wake.set()
                    self.emit("mqtt_connected", client=self.identifier)
                    backoff = 0.05
                    async for message in self.client.messages:
                        self._deliver(message)
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    return
                if self.connected.is_set():  # a first connection that fails is reported by start()
                    self.emit("mqtt_disconnected", client=self.identifier, reason=str(exc))
                self.connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    def _deliver(self, message: aiomqtt.Message) -> None:
        self.received += 1
        payload = message.payload
        data = payload if isinstance(payload, bytes) else bytes(str(payload), "utf-8")
        if self.hold_acks:
            self.hold_acks -= 1  # no PUBACK: the broker redelivers this after the next reconnect
            self.on_message(str(message.topic), data)
            self.force_reconnect()
            return
        try:
            self.on_message(str(message.topic), data)
        except Exception as exc:  # a handler's bug must not end the connection loop (a silent wedge)
            self.emit("mqtt_handler_failed", client=self.identifier, topic=str(message.topic),
                      error=f"{type(exc).__name__}: {exc}")
        if message.qos > 0:
            self.client._client.ack(message.mid, message.qos)

    async def _sender(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self.outbox:
                await self.connected.wait()
                topic, payload = self.outbox[0]
                try:
                    await self.client.publish(topic, payload, qos=self.qos)
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.05)  # kept at the head of the outbox: sent again once reconnected
                    continue
                self.outbox.popleft()
                self.published += 1


class _HostEnd:
    """The acquirer's end: one subscription to every terminal's requests; replies by terminal id."""

    def __init__(self, endpoint: MqttEndpoint) -> None:
        self.endpoint = endpoint

    @property
    def sent(self) -> int:
        return self.endpoint.published

    @property
    def received(self) -> int:
        return self.endpoint.received

    @property
    def idle(self) -> bool:
        return self.endpoint.idle and self.endpoint.connected.is_set()

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.endpoint.publish(responses_topic(str((meta or {})["tid"])), data)

    async def close(self) -> None:
        await self.endpoint.stop()


class _TerminalEnd(_HostEnd):
    """A terminal's end: publishes to its own request topic, subscribed to its own response topic."""

    def __init__(self, endpoint: MqttEndpoint, tid: str) -> None:
        super().__init__(endpoint)
        self.topic = requests_topic(tid)

    def to_shard(self, shards: int) -> _TerminalEnd:
        """Publish to the request topic of the host shard that owns this terminal (K > 1)."""
        self.topic = shard_request_topic(self.topic.split("/")[3], shards)
        return self

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.endpoint.publish(self.topic, data)


class Wire:
    """MQTT through one broker: ``Endpoint.url`` is ``mqtt://HOST:PORT``.

    A long-lived process passes its fixed ``client_id`` (a restart resumes its session and
    gets what was queued meanwhile); a one-process run gets fresh ids, so runs never share
    a session.
    """

    name = "mqtt"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.address = BrokerAddress.parse(endpoint.url or "mqtt://127.0.0.1:1883")
        self._run = uuid.uuid4().hex[:8]

    async def open_host(self, on_request: Callable[[bytes, Origin], None], emit: TraceSink) -> _HostEnd:
        client_id = self.endpoint.client_id or f"possim-acquirer-{self._run}"
        ep = MqttEndpoint(self.address, client_id, [request_filter(self.endpoint.shard, self.endpoint.shards)],
                          lambda t, d: on_request(d, Origin(topic_tid(t))), self.endpoint.qos, emit, **self._account())
        ep.hold_acks = self.endpoint.force_redelivery
        await ep.start()
        return _HostEnd(ep)

    async def open_terminal(self, tid: str, on_response: Callable[[bytes], None], emit: TraceSink) -> _TerminalEnd:
        client_id = self.endpoint.client_id or f"possim-terminal-{tid.strip()}-{self._run}"
        ep = MqttEndpoint(self.address, client_id, [responses_topic(tid)], lambda _t, d: on_response(d),
                          self.endpoint.qos, emit, **self._account())
        await ep.start()
        return _TerminalEnd(ep, tid).to_shard(self.endpoint.shards)

    def _account(self) -> dict[str, Any]:
        """Username, password and TLS settings of the ``Endpoint`` as ``MqttEndpoint`` takes them."""
        e = self.endpoint
        tls = None
        if e.tls_ca is not None:
            tls = aiomqtt.TLSParameters(ca_certs=e.tls_ca, certfile=e.tls_cert, keyfile=e.tls_key)
        return {"username": e.username, "password": e.password, "tls": tls}

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"broker": f"{self.address.host}:{self.address.port}", "qos": self.endpoint.qos}
        if self.endpoint.username:
            out["username"] = self.endpoint.username
        if self.endpoint.tls_ca:
            out["tls"] = True
        return out

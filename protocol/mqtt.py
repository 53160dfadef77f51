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
- an outbox: a publish made while disconnected is sent after reconnecting; a QoS 1 publish
  whose PUBACK never came is sent again by paho (DUP set: a real duplicate the host's
  idempotency absorbs);
- speed: while connected, a publish is written in the same loop iteration and a message that
  arrives is handled as soon as paho has read it, with no task or queue in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from possim.protocol.events import MqttConnected, MqttDisconnected, MqttHandlerFailed, MqttPublishFailed
from possim.protocol.ports import TraceSink
from possim.protocol.shards import request_filter
from possim.protocol.shards import request_topic as shard_request_topic
from possim.protocol.transports import Endpoint, Origin, TransportError

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
    """One MQTT client kept connected by a background task; ``publish`` never blocks or fails.

    While connected, a publish goes straight to paho and onto the socket in the same loop
    iteration, and a message that arrives is handled as soon as paho's read returns:
    no sender task, no queue between paho and the handler (a request/response round trip took
    about 17 loop iterations through aiomqtt's message queue and an outbox task). aiomqtt still
    owns the connection (connect, subscribe, disconnect, the socket's reader and writer).

    Nothing is lost on the way: a publish made while disconnected waits in ``outbox`` and goes
    out after reconnecting; a QoS 1 publish handed to paho stays in ``unacked`` until its PUBACK
    comes, and paho sends it again (DUP) after a reconnect if the PUBACK did not.
    """

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
        #: Publishes not handed to paho yet (made while disconnected), in order.
        self.outbox: deque[tuple[str, bytes]] = deque()
        #: QoS 1 publishes handed to paho, by message id, until their PUBACK.
        self.unacked: dict[int, tuple[str, bytes]] = {}
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = self.received = 0
        self.hold_acks = 0
        self._stopping = self._started = False
        self._inbox: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._inline = self._write_wanted = self._write_scheduled = False
        paho = self.client._client
        # Acknowledge a QoS 1 message only once it has been handled (for the host: committed
        # to the ledger). paho's default acknowledges on arrival, before aiomqtt even queues
        # it, so a crash in between would lose a request the broker thinks was delivered.
        paho.manual_ack_set(True)
        register, on_publish = paho.on_socket_register_write, paho.on_publish
        assert register is not None and on_publish is not None  # aiomqtt sets both
        self._register_write: Callable[..., None] = register  # aiomqtt's: a writer callback on the loop
        self._aiomqtt_on_publish: Callable[..., None] = on_publish
        paho.on_message = self._arrived
        paho.on_publish = self._acked
        paho.on_socket_register_write = self._want_write
        self._reading = False
        self._paho_read = paho.loop_read
        paho.loop_read = self._read  # type: ignore[method-assign]  # aiomqtt's reader callback calls this

    async def start(self, connect_within: float = 5.0) -> None:
        """Connect for the first time; an unreachable broker raises ``TransportError``."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._task = asyncio.create_task(self._connection_loop(), name=f"mqtt[{self.identifier}].conn")
        try:
            await asyncio.wait_for(self.connected.wait(), connect_within)
        except TimeoutError:
            await self.stop()
            raise TransportError(f"cannot reach MQTT broker at mqtt://{self.address.host}:{self.address.port}"
                                 ) from None
        # What the broker kept for this session may have arrived already: it is handled once the
        # caller has set itself up (the rest of its step), never before ``start`` returns.
        self._started = True
        if self._inbox and self._ready():
            self._loop.call_soon(self._drain)

    def publish(self, topic: str, payload: bytes) -> None:
        """Send now when connected with nothing waiting ahead; else queue for the reconnect."""
        if self.outbox or not self.connected.is_set():
            self.outbox.append((topic, payload))
            return
        if not self._send(topic, payload):
            self.outbox.append((topic, payload))

    @property
    def idle(self) -> bool:
        return not self.outbox and not self.unacked

    async def stop(self) -> None:
        """Stop for good. The flag matters: aiomqtt's exit may turn the cancellation into an
        ``MqttError``, which the connection loop would otherwise take for a lost link and redo."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task], timeout=10.0)
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
                    self.emit(MqttConnected(self.identifier))
                    backoff = 0.05
                    self._flush_outbox()
                    if self._inbox and self._ready():  # what the broker sent as the session resumed
                        self._drain()
                    async for _ in self.client.messages:  # none come this way (see _arrived): waits for a disconnect
                        pass
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    return
                if self.connected.is_set():  # a first connection that fails is reported by start()
                    self.emit(MqttDisconnected(self.identifier, str(exc)))
                self.connected.clear()
                # Unhandled QoS 1 messages were never acknowledged: the broker sends them again on
                # the next connection (under new message ids), so these copies are dropped.
                self._inbox = [m for m in self._inbox if m.qos == 0]
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)

    def _flush_outbox(self) -> None:
        while self.outbox and self.connected.is_set():
            topic, payload = self.outbox[0]
            if not self._send(topic, payload):
                return
            self.outbox.popleft()

    def _send(self, topic: str, payload: bytes) -> bool:
        """Hand one message to paho, written at once when possible; False if paho did not take it.

        A QoS 1 message paho took is paho's to deliver (it keeps it across reconnects until
        its PUBACK), so it is tracked in ``unacked`` whatever the return code says.
        """
        paho = self.client._client
        inline = self._loop is not None and not paho._in_callback_mutex.locked()
        self._inline = inline
        try:
            info = paho.publish(topic, payload, self.qos)
        except (ValueError, RuntimeError) as exc:
            self.emit(MqttPublishFailed(self.identifier, topic, str(exc)))
            return True  # a bad topic or payload never gets better: dropped, said so
        finally:
            self._inline = False
        if self.qos > 0:
            self.unacked[info.mid] = (topic, payload)
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        else:
            self.published += 1
        if inline and self._write_wanted:
            self._write_now()
        return True

    def _acked(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        """paho's ``on_publish``: a QoS 1 PUBACK came (QoS 0: the message was written)."""
        if self.unacked.pop(mid, None) is not None:
            self.published += 1
        self._aiomqtt_on_publish(client, userdata, mid, *rest)

    def _arrived(self, _client: Any, _userdata: Any, message: Any) -> None:
        """paho's ``on_message``, called inside its read (and its callback lock): handled right
        after the read returns (``_read``), or in the next loop iteration if paho read elsewhere."""
        if not self._inbox and self._ready() and not self._reading:
            assert self._loop is not None
            self._loop.call_soon(self._drain)
        self._inbox.append(message)

    def _read(self, max_packets: int = 1) -> Any:
        """paho's ``loop_read`` as aiomqtt's reader callback calls it, then what it read is handled,
        outside paho's callback lock, so the answers are written in this same loop iteration."""
        self._reading = True
        try:
            rc = self._paho_read(max_packets)
        finally:
            self._reading = False
        if self._inbox and self._ready():
            self._drain()
        return rc

    def _ready(self) -> bool:
        """Messages are handled only once the caller has the endpoint (``start`` returned) and the
        connection is complete (subscribed): a handler may publish, or drop the link (``hold_acks``)."""
        return self._started and self.connected.is_set()

    def _drain(self) -> None:
        """Handle what arrived in one read. When that is several messages (many terminals), every
        socket written to meanwhile is corked until all are handled, so their answers leave in
        a few segments instead of one per message."""
        inbox, self._inbox = self._inbox, []
        if len(inbox) == 1 or _corked is not None:
            for message in inbox:
                self._deliver(message)
            return
        _begin_batch()
        try:
            for message in inbox:
                self._deliver(message)
        finally:
            _end_batch()

    def _deliver(self, message: Any) -> None:
        self.received += 1
        payload = message.payload
        data = payload if isinstance(payload, bytes) else bytes(payload)
        topic = message.topic
        if self.hold_acks:
            self.hold_acks -= 1  # no PUBACK: the broker redelivers this after the next reconnect
            self.on_message(topic, data)
            self.force_reconnect()
            return
        try:
            self.on_message(topic, data)
        except Exception as exc:  # a handler's bug must not end the connection loop (a silent wedge)
            self.emit(MqttHandlerFailed(self.identifier, topic, f"{type(exc).__name__}: {exc}"))
        if message.qos > 0:
            paho = self.client._client
            self._inline = True
            try:
                paho.ack(message.mid, message.qos)
            finally:
                self._inline = False
            if self._write_wanted:
                self._write_now()

    def _want_write(self, client: Any, userdata: Any, sock: Any) -> None:
        """paho's ``on_socket_register_write``: it has bytes to send.

        Inside ``_send`` or an acknowledgement they are written right there; inside one of
        paho's own callbacks (where writing would take its callback lock again) at the end of
        this loop iteration's callbacks; from another thread (the connect) by aiomqtt's writer.
        """
        if threading.get_ident() != self._thread or self._loop is None:
            self._register_write(client, userdata, sock)
        elif self._inline:
            self._write_wanted = True
        elif not self._write_scheduled:
            self._write_scheduled = True
            self._loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        """Write what paho has queued; what the socket does not take now goes to aiomqtt's writer callback."""
        self._write_wanted = self._write_scheduled = False
        paho = self.client._client
        sock = paho.socket()
        if sock is None:
            return
        if _corked is not None and self not in _corked and isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                _corked.append(self)
        paho.loop_write()
        if paho.want_write():  # paho believes a writer is registered (it called us): register one
            sock = paho.socket()
            if sock is not None:
                self._register_write(paho, None, sock)


#: Endpoints whose socket is corked while a batch of arrivals is handled (``None``: no batch).
_corked: list[MqttEndpoint] | None = None


def _begin_batch() -> None:
    global _corked  # noqa: PLW0603  # one batch at a time on the one event loop thread
    _corked = []


def _end_batch() -> None:
    """Uncork every socket written to during the batch: what they hold leaves now."""
    global _corked
    corked, _corked = _corked or [], None
    for ep in corked:
        sock = ep.client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


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

    def deliver(self, data: bytes, meta: Mapping[str, object] | None = None) -> bool:
        """``send``: published to the terminal's response topic (the broker keeps it for the terminal's
        session), so always handed over."""
        self.send(data, meta)
        return True

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

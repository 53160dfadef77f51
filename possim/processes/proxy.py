"""A fault proxy that knows ISO 8583: between someone's own terminal and host, over TCP.

Byte-level proxies (Toxiproxy and the like) can delay or cut a stream, but cannot say "lose
the first 0210". This one deframes every message in both directions with the profile's
framing (``iso``: 2-byte length; ``cup``: length, TPDU and header), reads its MTI, terminal id
and STAN with possim's codec, and lets possim's own fault layer (``protocol.faults``:
``FaultDecider``, one seeded RNG) decide its fate by business meaning: drop, delay or duplicate
the nth message of an MTI in a direction, random loss, latency, duplication and reordering per
direction, partitions by time since the proxy started. A frame it cannot decode is forwarded
untouched (no fault applies to it) and logged.

Forwarded frames are the bytes that arrived, framing included: the proxy never re-encodes,
so a TPDU or a MAC reaches the other side as it was sent.

Everything is recorded in possim's trace format (``protocol.events``): a ``proxy_run`` header,
``msg_sent`` when a side's message reaches the proxy, ``net_*`` for what the fault layer did to
it, ``msg_received`` (with the bytes) when the proxy hands it to the other side, and on exit a
``run_finished`` with the verdict from the wire (``wire_verdict``), which is computed from the
recorded events alone, so ``possim replay`` reads the trace and judges it again.

Counting: one ``FaultDecider`` serves every connection, so "the first 0210" is the first the
proxy sees, whichever terminal connection it travels on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.faults import Direction, FaultDecider, FaultPlan, Partition, Rule
from possim.protocol.framing import Deframer, frame
from possim.protocol.messages import Message
from possim.protocol.profiles import get_profile
from possim.protocol.tcp import parse_address
from possim.protocol.transports import TransportError
from possim.running.trace import Trace
from possim.scenario import FaultModel, LatencyModel, LinkModel, PartitionModel

Side = Literal["terminal", "host"]
#: Requests whose answer carries the money, and their answers.
FINANCIAL = frozenset({M.AUTH, M.PURCHASE})
FINANCIAL_ANSWERS = frozenset({M.AUTH_RESPONSE, M.PURCHASE_RESPONSE})
REVERSALS = frozenset({M.REVERSAL, M.REVERSAL_REPEAT, "0420", "0421"})
READ_SIZE = 65536


class ProxyError(Exception):
    """A fault file or an address the proxy cannot use; ``str()`` is one line for the user."""


# -- the fault file ---------------------------------------------------------------------------


class _QuietLink(LinkModel):
    """A direction of the proxy: a scenario's keys, but no latency unless the file asks for it
    (the proxy sits on a real network, which brings its own)."""

    latency: LatencyModel = LatencyModel()


class _Strict(BaseModel):
    """As a scenario's tables: unknown keys, inf and nan refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _ProxyNetwork(_Strict):
    to_host: _QuietLink = _QuietLink()
    to_terminal: _QuietLink = _QuietLink()


class FaultFile(_Strict):
    """``[[faults]]``, ``[[partitions]]`` and ``[network.to_host]`` / ``[network.to_terminal]``, as in a scenario."""

    faults: tuple[FaultModel, ...] = ()
    partitions: tuple[PartitionModel, ...] = ()
    network: _ProxyNetwork = _ProxyNetwork()

    def plan(self) -> FaultPlan:
        return FaultPlan(
            to_host=self.network.to_host.build(), to_terminal=self.network.to_terminal.build(),
            rules=tuple(Rule(f.action, f.direction, f.mti, f.nth, f.delay) for f in self.faults),
            partitions=tuple(Partition(p.start, p.end, p.direction) for p in self.partitions))


def load_faults(path: str | Path) -> tuple[FaultPlan, dict[str, Any]]:
    """The fault plan of a TOML file and its content (for the trace); every problem is one ``ProxyError`` line."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProxyError(f"{path}: no such fault file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProxyError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProxyError(f"{path}: not valid TOML: {exc}") from None
    try:
        model = FaultFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise ProxyError(f"{path}: {where}: {err['msg'].removeprefix('Value error, ')}{more}") from None
    return model.plan(), raw


def address(url: str, option: str, allow_remote: bool) -> tuple[str, int]:
    """``tcp://HOST:PORT`` of ``option``; a host that is not loopback only with ``allow_remote``."""
    try:
        host, port = parse_address(url)
    except TransportError as exc:
        raise ProxyError(f"{option}: {exc}") from None
    if not allow_remote and not is_loopback(host):
        raise ProxyError(f"{option} {url}: not a loopback address; add --allow-remote to proxy a real network")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


# -- one message on the wire ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wire:
    """What the proxy read of a message: the codec's ``Message`` and the bytes it decoded."""

    msg: Message
    data: bytes

    def keys(self) -> dict[str, Any]:
        return {"tid": self.msg.tid, "stan": self.msg.stan, "rrn": self.msg.rrn or None}


def read_message(body: bytes, profile: str) -> Wire | None:
    """The message inside one frame's body (after the length), or None when it cannot be decoded.

    The profile's framing takes the body apart (for CUP: TPDU and header), the codec decodes it
    without keys: the proxy never holds a MAC key, so it checks no MAC.
    """
    dialect = get_profile(profile).wire
    try:
        messages = dialect.framing.deframer().feed(frame(body))
        if len(messages) != 1:
            return None
        return Wire(dialect.decode(messages[0], None), messages[0])
    except (ProtocolError, ValueError):
        return None


# -- the proxy ----------------------------------------------------------------------------------


@dataclass
class Proxy:
    """Listens for terminals; gives each connection its own connection to the upstream host."""

    upstream: tuple[str, int]
    plan: FaultPlan
    seed: int
    profile: str = "iso"
    log: Callable[..., None] = field(default=lambda *a, **k: None)
    max_messages: int | None = None

    def __post_init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.trace = Trace(lambda: self.loop.time() - self.started)
        self.decider = FaultDecider(self.plan, random.Random(self.seed))
        self.done = asyncio.Event()
        self.messages = 0
        self.sessions: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int, faults: Mapping[str, Any]) -> int:
        """Listen on ``host:port`` (0: a free port); the port listened on."""
        self.server = await asyncio.start_server(self._accept, host, port)
        port = int(self.server.sockets[0].getsockname()[1])
        up_host, up_port = self.upstream
        self.trace.emit(ev.ProxyRun(f"tcp://{host}:{port}", f"tcp://{up_host}:{up_port}", self.profile,
                                    self.seed, dict(faults)))
        return port

    async def stop(self) -> None:
        """Stop listening and close every connection pair."""
        if self.server is not None:
            self.server.close()
        for task in list(self.sessions):
            task.cancel()
        for task in list(self.sessions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    def finish(self) -> WireVerdict:
        """The verdict from the wire, recorded as the trace's last event."""
        verdict = wire_verdict(self.trace.records)
        self.trace.emit(ev.RunFinished(quiescent=True, summary=verdict.summary()))
        return verdict

    async def _accept(self, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        try:
            await self._session(down_reader, down_writer)
        finally:
            self.sessions.discard(task)
            down_writer.close()

    async def _session(self, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        """One terminal connection and its own upstream connection, until either side closes."""
        peer = down_writer.get_extra_info("peername")
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            self._dropped(f"upstream tcp://{self.upstream[0]}:{self.upstream[1]} unreachable: {exc.strerror or exc}")
            return
        self.log("proxy_connection_opened", peer=str(peer))
        pumps = [asyncio.create_task(self._pump(down_reader, up_writer, "to_host")),
                 asyncio.create_task(self._pump(up_reader, down_writer, "to_terminal"))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
            up_writer.close()
            self.log("proxy_connection_closed", peer=str(peer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction) -> None:
        deframer = Deframer()
        while chunk := await reader.read(READ_SIZE):
            try:
                bodies = deframer.feed(chunk)
            except ProtocolError as exc:  # the stream cannot be reframed: both connections go
                self._dropped(f"{direction.replace('_', ' ')}: {exc}")
                return
            for body in bodies:
                self.forward(body, direction, writer)

    def forward(self, body: bytes, direction: Direction, writer: asyncio.StreamWriter) -> None:
        """One message: read it, let the fault layer decide, trace, and write each surviving copy."""
        sender: Side = "terminal" if direction == "to_host" else "host"
        receiver: Side = "host" if sender == "terminal" else "terminal"
        wire = read_message(body, self.profile)
        self.messages += 1
        if wire is None:
            reason = f"cannot decode as {self.profile} ISO 8583; forwarded untouched"
            self.trace.emit(ev.MalformedFrame(receiver, reason))
            self.trace.emit(ev.MsgReceived(receiver, "????", malformed=True, data=body.hex()))
            self._write(writer, body)
        else:
            self._decide(wire, body, direction, sender, receiver, writer)
        if self.max_messages is not None and self.messages >= self.max_messages:
            self.done.set()

    def _decide(self, wire: Wire, body: bytes, direction: Direction, sender: Side, receiver: Side,
                writer: asyncio.StreamWriter) -> None:
        msg, keys = wire.msg, wire.keys()
        self.trace.emit(ev.MsgSent(sender, msg.tid, msg.stan, msg.mti, rrn=keys["rrn"]))
        decision = self.decider.decide(direction, msg.mti, self.loop.time() - self.started)
        if not decision.delays:
            self.trace.emit(ev.NetDropped(direction, msg.mti, decision.nth, decision.reason, **keys))
            return
        if decision.reason != "deliver":
            self.trace.emit(ev.NET_EVENTS[decision.reason](direction, msg.mti, decision.nth, decision.reason, **keys,
                                                           delays=tuple(round(d, 6) for d in decision.delays)))

        def deliver() -> None:
            if self._write(writer, body):
                self.trace.emit(ev.MsgReceived(receiver, msg.mti, msg.tid, msg.stan, keys["rrn"], data=wire.data.hex()))

        for delay in decision.delays:
            if delay <= 0:
                deliver()
            else:
                self.loop.call_later(delay, deliver)

    def _write(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        if writer.is_closing():
            self.log("proxy_copy_undeliverable", reason="connection closed")
            return False
        writer.write(frame(body))
        return True

    def _dropped(self, reason: str) -> None:
        self.trace.emit(ev.TcpConnectionDropped(reason))


# -- the verdict from the wire ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireVerdict:
    """What the wire alone says of a proxied run.

    - ``answers_lost``: answers to 0100/0200 the proxy dropped after their request reached the host;
    - ``reversals``: reversals the terminal sent (repeats of one reversal count once);
    - ``sales_at_risk``: requests the host answered, whose answer never reached the terminal and
      that no reversal reaching the host named (field 90, else its own STAN): the money may have
      moved while the terminal believes it did not.
    """

    messages: int
    answers_lost: int
    reversals: int
    sales_at_risk: tuple[tuple[str, str], ...]
    malformed: int

    def summary(self) -> dict[str, Any]:
        return {"messages": self.messages, "answers_lost": self.answers_lost, "reversals": self.reversals,
                "sales_at_risk": len(self.sales_at_risk), "malformed": self.malformed,
                "at_risk": [{"tid": tid, "stan": stan} for tid, stan in self.sales_at_risk]}


def wire_verdict(records: Iterable[ev.Stamped]) -> WireVerdict:
    """Judge a proxy trace from its events only (so a replay of the file judges it the same)."""
    reached: set[tuple[str, str]] = set()
    answered: dict[tuple[str, str], None] = {}
    got: set[tuple[str, str]] = set()
    reversed_: set[tuple[str, str]] = set()
    reversals: set[tuple[str, str]] = set()
    messages = lost = malformed = 0
    for stamped in records:
        e = stamped.event
        match e:
            case ev.MsgSent():
                messages += 1
                key = (e.tid, e.stan)
                if e.side == "host" and e.mti in FINANCIAL_ANSWERS:
                    answered[key] = None
                elif e.side == "terminal" and e.mti in REVERSALS:
                    reversals.add(key)
            case ev.MsgReceived(malformed=True):
                messages += 1
                malformed += 1
            case ev.MsgReceived(tid=str(tid), stan=str(stan)):
                if e.side == "terminal" and e.mti in FINANCIAL_ANSWERS:
                    got.add((tid, stan))
                elif e.side == "host" and e.mti in FINANCIAL:
                    reached.add((tid, stan))
                elif e.side == "host" and e.mti in REVERSALS:
                    reversed_.add((tid, _original_stan(e.data) or stan))
            case ev.NetDropped(dir="to_terminal", tid=str(tid), stan=str(stan)) if e.mti in FINANCIAL_ANSWERS:
                lost += (tid, stan) in reached
    at_risk = tuple(k for k in answered if k not in got and k not in reversed_)
    return WireVerdict(messages, lost, len(reversals), at_risk, malformed)


def _original_stan(data: str | None) -> str | None:
    """Field 90's STAN of a recorded reversal (which sale it names), if its bytes say (either dialect)."""
    if not data:
        return None
    try:
        msg = codec.decode(bytes.fromhex(data))
    except (ProtocolError, ValueError):
        return None
    return msg.original.stan if msg.original is not None else None


def is_proxy_trace(records: Iterable[ev.Stamped]) -> bool:
    """Whether a trace was recorded by ``possim proxy`` (it opens with ``proxy_run``)."""
    return any(isinstance(s.event, ev.ProxyRun) for s in records)

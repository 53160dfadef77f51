"""Executes the host's actions: replies go through the link after their processing delay;
under the CUP profile the issuer's answer comes back to the host after its delay.

Every arrival is traced with its bytes, so a recorded run can drive this driver again.
``origin`` is what the transport says about who sent the bytes (``protocol.transports.Origin``):
its terminal id goes to the host, which binds identity; the origin itself rides along with the
reply (``meta["origin"]``), so the transport answers only where the request came from, and so
does whether the request was fresh (``meta["fresh"]``: a replay of an answered request binds nothing).

An answer to a financial original goes through ``deliver`` when the link can tell whether it took
the bytes (``DeliveringLink``: TCP, MQTT); the host records the outcome in its ledger, so a check
can judge a sale whose journal was lost by whether its answer ever left. Links that cannot tell
(the in-memory wire of simulations) record nothing. An answer whose sale an earlier life of the
terminal booked is not sent at all (``AcquirerHost.withheld``): it is recorded as not delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

from possim.acquirer_sim.host import AcquirerHost, AwaitIssuer, Crashed, HostAction, Reply
from possim.protocol import codec
from possim.protocol.events import Event, HostRestarted, MsgReceived, MsgSent
from possim.protocol.ports import DeliveringLink, Link, Scheduler
from possim.protocol.transports import Origin

A = TypeVar("A")


def _discard(_event: Event) -> None:
    """The emit of a driver whose run records no events."""


class ServerDriver(Generic[A]):
    """What the card host's driver and the wallet gateway's driver do alike, so each keeps only
    what differs: trace every arrival with its bytes (a recorded run can drive the driver again),
    hand it to the sans-IO machine with the terminal id the transport vouches for, count the
    answers still to send, and address each answer to where its request came from.

    ``emit`` None: the run records no events, so arrivals and sends are not even described.
    """

    def __init__(self, link: Link, scheduler: Scheduler, emit: Callable[[Event], None] | None) -> None:
        self.link = link
        self.scheduler = scheduler
        self.emit: Callable[[Event], None] = emit or _discard
        self.tracing = emit is not None
        self.pending = 0  # answers not yet sent

    def receive(self, data: bytes, origin: Origin | None = None) -> None:
        """``origin``: who the transport says sent the bytes (its ``tid``) and where (a TCP connection),
        so the answer goes back there."""
        if self.tracing:
            self.emit(MsgReceived("host", **self._wire_fields(data), data=data.hex()))
        sender = origin.tid if origin is not None else None
        self._execute(self._decide(self.scheduler.now(), data, sender), origin)

    def _answer_later(self, delay: float, send: Callable[[], None]) -> None:
        """An answer leaves after its delay; until then the run is not quiet."""
        self.pending += 1
        self.scheduler.call_later(delay, send)

    @staticmethod
    def _meta(tid: str, stan: str, mti: str, authenticated: bool, fresh: bool,
              origin: Origin | None) -> dict[str, object]:
        """What the transport needs to route an answer (``protocol.transports``): the origin rides along."""
        meta: dict[str, object] = {"tid": tid, "stan": stan, "mti": mti, "authenticated": authenticated,
                                   "fresh": fresh}
        if origin is not None:
            meta["origin"] = origin
        return meta

    def _wire_fields(self, data: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def _decide(self, now: float, data: bytes, sender: str | None) -> list[A]:
        raise NotImplementedError

    def _execute(self, actions: list[A], origin: Origin | None) -> None:
        raise NotImplementedError


class HostDriver(ServerDriver[HostAction]):
    def __init__(self, host: AcquirerHost, link: Link, scheduler: Scheduler,
                 emit: Callable[[Event], None] | None) -> None:
        super().__init__(link, scheduler, emit)
        self.host = host
        self.delivering = link if isinstance(link, DeliveringLink) else None

    def _wire_fields(self, data: bytes) -> dict[str, Any]:
        return codec.wire_fields(data)

    def _decide(self, now: float, data: bytes, sender: str | None) -> list[HostAction]:
        return self.host.receive(now, data, sender)

    def _execute(self, actions: list[HostAction], origin: Origin | None) -> None:
        for action in actions:
            if isinstance(action, AwaitIssuer):
                self._answer_later(action.delay, partial(self._issuer_answers, action, origin))
            elif isinstance(action, Reply):
                self._answer_later(action.delay, partial(self._send, action, origin))
            elif isinstance(action, Crashed):
                self.scheduler.call_later(action.until - self.scheduler.now(),
                                          lambda: self.emit(HostRestarted()))
            else:
                self.emit(action)

    def _issuer_answers(self, waiting: AwaitIssuer, origin: Origin | None) -> None:
        self.pending -= 1
        self._execute(self.host.issuer_answered(self.scheduler.now(), waiting.key), origin)

    def _send(self, reply: Reply, origin: Origin | None) -> None:
        self.pending -= 1
        withheld = self.host.withheld(reply)
        if withheld is not None:
            self.emit(withheld)
            if reply.answers is not None and self.delivering is not None:
                self.host.delivered(self.scheduler.now(), reply.answers, False)
            return
        if self.tracing:
            self.emit(MsgSent("host", reply.tid, reply.stan, reply.mti, rrn=reply.rrn or None))
        meta = self._meta(reply.tid, reply.stan, reply.mti, reply.authenticated, reply.fresh, origin)
        if reply.rrn:
            meta["rrn"] = reply.rrn
        if reply.answers is None or self.delivering is None:
            self.link.send(reply.data, meta)
            return
        handed = self.delivering.deliver(reply.data, meta)
        self.host.delivered(self.scheduler.now(), reply.answers, handed)

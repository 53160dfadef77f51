"""Executes the host's actions: replies go through the link after their processing delay;
under the CUP profile the issuer's answer comes back to the host after its delay.

Every arrival is traced with its bytes, so a recorded run can drive this driver again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from acquirer_sim.host import AcquirerHost, AwaitIssuer, Crashed, HostAction, Reply
from protocol import codec
from protocol.events import Event, HostRestarted, MsgReceived, MsgSent
from protocol.ports import Link, Scheduler


class HostDriver:
    def __init__(self, host: AcquirerHost, link: Link, scheduler: Scheduler, emit: Callable[[Event], None]) -> None:
        self.host = host
        self.link = link
        self.scheduler = scheduler
        self.emit = emit
        self.pending = 0

    def receive(self, data: bytes) -> None:
        wire: dict[str, Any] = codec.wire_fields(data)
        self.emit(MsgReceived("host", **wire, data=data.hex()))
        self._execute(self.host.receive(self.scheduler.now(), data))

    def _execute(self, actions: list[HostAction]) -> None:
        for action in actions:
            if isinstance(action, AwaitIssuer):
                self.pending += 1
                self.scheduler.call_later(action.delay, partial(self._issuer_answers, action))
            elif isinstance(action, Reply):
                self.pending += 1
                self.scheduler.call_later(action.delay, partial(self._send, action))
            elif isinstance(action, Crashed):
                self.scheduler.call_later(action.until - self.scheduler.now(),
                                          lambda: self.emit(HostRestarted()))
            else:
                self.emit(action)

    def _issuer_answers(self, waiting: AwaitIssuer) -> None:
        self.pending -= 1
        self._execute(self.host.issuer_answered(self.scheduler.now(), waiting.key))

    def _send(self, reply: Reply) -> None:
        self.pending -= 1
        self.emit(MsgSent("host", reply.tid, reply.stan, reply.mti, rrn=reply.rrn or None))
        meta = {"tid": reply.tid, "stan": reply.stan, "mti": reply.mti}
        if reply.rrn:
            meta["rrn"] = reply.rrn
        self.link.send(reply.data, meta)

"""Executes the host's actions: replies go through the link after their processing delay."""

from __future__ import annotations

from collections.abc import Callable

from acquirer_sim.host import AcquirerHost, Crashed, Notice, Reply
from protocol import codec
from protocol.ports import Link, Scheduler


class HostDriver:
    def __init__(self, host: AcquirerHost, link: Link, scheduler: Scheduler, emit: Callable[..., None],
                 record_bytes: bool = False) -> None:
        self.host = host
        self.link = link
        self.scheduler = scheduler
        self.emit = emit
        self.record_bytes = record_bytes
        self.pending = 0

    def receive(self, data: bytes) -> None:
        extra = {"data": data.hex()} if self.record_bytes else {}
        self.emit("msg_received", side="host", **codec.wire_fields(data), **extra)
        for action in self.host.receive(self.scheduler.now(), data):
            if isinstance(action, Reply):
                self.pending += 1
                self.scheduler.call_later(action.delay, lambda a=action: self._send(a))
            elif isinstance(action, Crashed):
                self.scheduler.call_later(action.until - self.scheduler.now(),
                                          lambda: self.emit("host_restarted", side="host"))
            elif isinstance(action, Notice):
                self.emit(action.event, side="host", **action.fields)

    def _send(self, reply: Reply) -> None:
        self.pending -= 1
        meta = {"tid": reply.tid, "stan": reply.stan, "mti": reply.mti}
        if reply.rrn:
            meta["rrn"] = reply.rrn
        self.emit("msg_sent", side="host", **meta)
        self.link.send(reply.data, meta)

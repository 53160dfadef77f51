"""Executes the wallet gateway's actions: answers after their delay, the customer's phone, auto-close.

Every arrival is traced with its bytes (as the card host's driver does), so a recorded run
can drive this driver again. ``origin`` is what the transport says about who sent the bytes
(``protocol.transports.Origin``): its terminal id goes to the gateway, which refuses a request
naming another terminal; the origin itself rides along with the answer (``meta["origin"]``),
so the transport answers only where the request came from.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from possim.acquirer_sim.driver import ServerDriver
from possim.acquirer_sim.wallet import GatewayAction, Wake, WalletGateway, WalletReply
from possim.protocol import wallet as W
from possim.protocol.events import Event, MsgSent, WalletGatewayWake
from possim.protocol.ports import Link, Scheduler
from possim.protocol.transports import Origin


class WalletGatewayDriver(ServerDriver[GatewayAction]):
    """The wallet gateway's driver: the shared server work (``ServerDriver``), plus the customer's
    phone and the auto-close of orders (``Wake``), traced so a replay can wake the gateway again."""

    def __init__(self, gateway: WalletGateway, link: Link, scheduler: Scheduler,
                 emit: Callable[[Event], None]) -> None:
        super().__init__(link, scheduler, emit)
        self.gateway = gateway
        self.wakes = 0  # customer confirmations and auto-closes still to come

    def _wire_fields(self, data: bytes) -> dict[str, Any]:
        return W.wire_fields(data)

    def _decide(self, now: float, data: bytes, sender: str | None) -> list[GatewayAction]:
        return self.gateway.receive(now, data, sender)

    def _execute(self, actions: list[GatewayAction], origin: Origin | None = None) -> None:
        for action in actions:
            if isinstance(action, WalletReply):
                self._answer_later(action.delay, partial(self._send, action, origin))
            elif isinstance(action, Wake):
                self.wakes += 1
                self.scheduler.call_later(action.at - self.scheduler.now(), partial(self._wake, action))
            else:
                self.emit(action)

    def _wake(self, wake: Wake) -> None:
        self.wakes -= 1
        self.wake(wake.what, wake.key)

    def wake(self, what: str, key: tuple[str, str]) -> None:
        """The customer confirms (``what = confirm``) or the order's time is up: traced for replay."""
        now = self.scheduler.now()
        self.emit(WalletGatewayWake(*key, what=what))
        if what == "confirm":
            self._execute(self.gateway.customer_confirms(now, key))
        else:
            self._execute(self.gateway.expire(now, key))

    def _send(self, reply: WalletReply, origin: Origin | None = None) -> None:
        self.pending -= 1
        self.emit(MsgSent("host", reply.tid, reply.order, reply.mti))
        # Only the answer to a request whose sign proved its sender binds a TCP connection to its tid
        # (the gateway keeps no per-request replay record: every authenticated answer counts as fresh).
        self.link.send(reply.data, self._meta(reply.tid, reply.order, reply.mti, reply.authenticated,
                                              reply.authenticated, origin))

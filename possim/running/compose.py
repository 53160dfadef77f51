"""How a terminal, a host and a fault layer are assembled, written once.

The one-terminal rig (``possim.running.rig``), the fleet (``possim.fleets.fleet``, and through it
``possim load``) and replay (``possim.running.replay``) each keep their own schedule and judging,
but build their parts here: a change to how a terminal or a host is put together (its keys, its
ledger, the fault layer in front of its wire) then means the same in every kind of run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost
from possim.acquirer_sim.ledger import Ledger
from possim.pos_sim.actions import Outcome
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.driver import TerminalDriver
from possim.pos_sim.journal import Journal
from possim.pos_sim.terminal import Terminal
from possim.protocol.events import Event
from possim.protocol.faults import FaultDecider, FaultPlan, FaultyLink
from possim.protocol.mac import MacKey
from possim.protocol.memory import MemoryTransport
from possim.protocol.ports import Link, Scheduler, Transport
from possim.running.wallet_rig import WalletSide
from possim.scenario import Scenario

Emit = Callable[[Event], None]


class Deferred:
    """A transport whose target is attached once the other side exists (the sides refer to each other)."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target: Transport | None = None

    def send(self, data: bytes) -> None:
        assert self.target is not None
        self.target.send(data)


def new_terminal(config: TerminalConfig, keys: Mapping[str, MacKey] | None) -> Terminal:
    """A terminal state machine holding its own MAC key from the run's keys (``None``: no MACs)."""
    return Terminal(config, keys.get(config.tid) if keys is not None else None)


def build_terminal(config: TerminalConfig, keys: Mapping[str, MacKey] | None, link: Link, scheduler: Scheduler,
                   journal: Journal, emit: Emit | None,
                   on_outcome: Callable[[Outcome], None] | None = None) -> TerminalDriver:
    """A terminal behind its driver: its requests leave through ``link``, its facts go to ``journal``."""
    return TerminalDriver(new_terminal(config, keys), link, scheduler, journal, emit, on_outcome)


def build_host(config: HostConfig, rng: random.Random, keys: Mapping[str, MacKey] | None = None,
               ledger_path: str | Path = ":memory:") -> tuple[Ledger, AcquirerHost]:
    """An acquirer over its own ledger, which starts every card at the host's default balance."""
    ledger = Ledger(ledger_path, default_balance=config.default_balance)
    return ledger, AcquirerHost(config, ledger, rng, keys)


def build_wallet(scenario: Scenario, config: TerminalConfig, scheduler: Scheduler, journal: Journal, ledger: Ledger,
                 default_balance: int, emit: Emit, to_host: Link, rng: random.Random,
                 keys: Mapping[str, MacKey] | None, nonces: random.Random | None = None) -> WalletSide:
    """The terminal's wallet side (QR terminal, gateway, customers) over the card side's journal and
    ledger databases, with the card terminal's id, policy, clock epoch and life number."""
    return WalletSide(scenario, config.policy, scheduler, journal.conn, journal.durable, ledger.conn, config.tid,
                      config.epoch, emit, to_host, rng, default_balance, keys, nonces, config.life)


class FaultLayer:
    """Both directions of one terminal's wire behind one decider (its own nth-message counts).

    ``to_host`` sends into ``outbound``, whose target the caller attaches (a memory transport, a
    real one); ``to_terminal`` exists once ``deliver_to`` names who receives the replies.
    """

    __slots__ = ("_emit", "_scheduler", "decider", "outbound", "to_host", "to_terminal")

    def __init__(self, plan: FaultPlan, rng: random.Random, scheduler: Scheduler, emit: Emit) -> None:
        self._scheduler, self._emit = scheduler, emit
        self.decider = FaultDecider(plan, rng)
        self.outbound = Deferred()
        self.to_host = FaultyLink("to_host", self.outbound, self.decider, scheduler, emit)

    def deliver_to(self, receive: Callable[[bytes], None]) -> FaultyLink:
        """The terminal's side of the replies: faulted, then handed to ``receive`` in this process."""
        self.to_terminal = FaultyLink("to_terminal", MemoryTransport(receive), self.decider, self._scheduler,
                                      self._emit)
        return self.to_terminal

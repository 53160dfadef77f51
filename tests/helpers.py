"""Test helpers: a terminal and a host joined by a perfect wire, pumped by hand (no asyncio)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost, Reply
from possim.acquirer_sim.ledger import Ledger
from possim.pos_sim.actions import Action, Send
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.terminal import PaymentRequest, Terminal


def purchase(txn_id: int = 1, amount: int = 2500, kind: str = "purchase") -> PaymentRequest:
    return PaymentRequest(txn_id=txn_id, intent=f"basket-{txn_id}", kind=kind, amount=amount,  # type: ignore[arg-type]
                          pan="4000000000000002")


def sends(actions: list[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def new_host(**config: object) -> AcquirerHost:
    cfg = HostConfig(**config)  # type: ignore[arg-type]
    return AcquirerHost(cfg, Ledger(default_balance=cfg.default_balance), random.Random(0))


def new_terminal(policy: str = "reversal", **config: object) -> Terminal:
    return Terminal(TerminalConfig(policy=policy, **config))  # type: ignore[arg-type]


def replies(actions: Sequence[object]) -> list[Reply]:
    return [a for a in actions if isinstance(a, Reply)]

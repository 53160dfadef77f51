"""The fault layer: decides, per message, whether it is lost, late, duplicated or reordered.

It wraps any transport that can ``send(bytes)`` and schedules the surviving copies with
a scheduler (the virtual clock in memory, the asyncio loop for MQTT/TCP), so a scenario's
faults mean the same on every transport. All randomness comes from one ``random.Random``.
Targeted rules and partitions are deterministic and take precedence over random faults.

Forgeries (``Forgery``) are the attacker's faults: messages nobody honest sent, built from
what an eavesdropper sniffed (card and wallet frames alike) and injected into the same links
at a point in the run. This module only describes them; ``possim.fuzzing.forgery`` builds and injects them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from possim.protocol.events import NET_EVENTS, Event, NetDropped
from possim.protocol.latency import ZERO, Latency
from possim.protocol.ports import Scheduler, Transport
from possim.protocol.wallet import peek_kind

Direction = Literal["to_host", "to_terminal"]
DIRECTIONS: tuple[Direction, ...] = ("to_host", "to_terminal")
Action = Literal["drop", "delay", "duplicate"]
ForgeryKind = Literal["reversal", "approval", "query", "wallet_cancel", "wallet_refund", "wallet_query",
                      "wallet_pay", "wallet_replay", "wallet_amount"]
#: The forgeries aimed at the wallet gateway (``protocol.wallet`` frames), in shrinking order.
WALLET_FORGERY_KINDS: tuple[ForgeryKind, ...] = ("wallet_cancel", "wallet_refund", "wallet_query", "wallet_pay",
                                                  "wallet_replay", "wallet_amount")
#: How a forgery is signed: no MAC field at all, or a MAC under a key that is not the terminal's.
ForgedMac = Literal["wrong", "none"]


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """Random faults of one direction."""

    loss: float = 0.0
    latency: Latency = ZERO
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window: float = 1.0


@dataclass(frozen=True, slots=True)
class Rule:
    """Drop, delay or duplicate the ``nth`` message (1-based) of ``mti`` going ``direction``."""

    action: Action
    direction: Direction
    mti: str
    nth: int = 1
    delay: float = 0.0

    def describe(self) -> str:
        what = {"drop": "lose", "delay": f"delay by {self.delay:g}s", "duplicate": "duplicate"}[self.action]
        return f"{what} {_ordinal(self.nth)} {self.mti} {self.direction.replace('_', ' ')}"


@dataclass(frozen=True, slots=True)
class Partition:
    """No message crosses ``direction`` ('both' for a full partition) from ``start`` to ``end``."""

    start: float
    end: float
    direction: Direction | Literal["both"] = "both"

    def blocks(self, direction: Direction, now: float) -> bool:
        return self.start <= now < self.end and self.direction in ("both", direction)


@dataclass(frozen=True, slots=True)
class Forgery:
    """At ``at`` seconds an attacker injects a forged ``kind`` aimed at the ``target``-th sale.

    - ``reversal``: a 0400 to the host naming the sniffed sale in field 90, with field 4 =
      ``amount`` (minor units; ``None``: the sniffed amount), as if the terminal sent it;
    - ``approval``: a 0210/0110 code 00 to the terminal answering the sniffed sale;
    - ``query``: ``count`` 0600s to the host for the keys the terminal will use next (its next
      STANs with the field 7 of the target sale's scheduled time), so a NOT_FOUND would close them.

    Wallet forgeries go to the wallet gateway; ``target`` counts the wallet orders the attacker saw:

    - ``wallet_cancel``, ``wallet_refund``, ``wallet_query``: a cancel, a full refund or a query of
      the ``target``-th order, naming the victim terminal (an order number not seen yet is guessed);
    - ``wallet_pay``: a pay for a terminal the gateway has no key for, with the ``target``-th
      customer's payment code;
    - ``wallet_replay``: the ``target``-th wallet request the terminal sent, replayed byte for byte
      (its genuine ``sign`` included);
    - ``wallet_amount``: the ``target``-th wallet pay with another amount (``amount``; ``None``:
      twice the original) and the original ``sign``.

    ``mac``: the attacker lacks the terminal's key, so the forgery has no MAC or a wrong one (a
    replay and an altered amount carry the genuine one they copied).
    """

    at: float
    kind: ForgeryKind
    target: int = 1
    mac: ForgedMac = "wrong"
    amount: int | None = None
    count: int = 1

    def describe(self) -> str:
        if self.kind == "wallet_replay":
            return f"replay of wallet request {self.target} at {self.at:g}s (its genuine sign)"
        if self.kind == "wallet_amount":
            return f"wallet pay {self.target} with another amount at {self.at:g}s (the original sign)"
        signed = "without a MAC" if self.mac == "none" else "with a wrong MAC"
        if self.kind == "wallet_pay":
            return f"forged wallet pay for an unknown terminal at {self.at:g}s ({signed})"
        if self.kind in WALLET_FORGERY_KINDS:
            what = self.kind.removeprefix("wallet_")
            return f"forged wallet {what} of order {self.target} at {self.at:g}s ({signed})"
        return f"forged {self.kind} for sale {self.target} at {self.at:g}s ({signed})"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Everything the network does to messages in one run, and what an attacker injects."""

    to_host: LinkFaults = LinkFaults()
    to_terminal: LinkFaults = LinkFaults()
    rules: tuple[Rule, ...] = ()
    partitions: tuple[Partition, ...] = ()
    forgeries: tuple[Forgery, ...] = ()

    def link(self, direction: Direction) -> LinkFaults:
        return self.to_host if direction == "to_host" else self.to_terminal


@dataclass(frozen=True, slots=True)
class Decision:
    """The fate of one message: one delay per delivered copy (empty = lost), and why."""

    delays: tuple[float, ...]
    reason: str
    nth: int


class FaultDecider:
    """Pure decisions: counts messages per (direction, MTI) and draws from the shared RNG."""

    def __init__(self, plan: FaultPlan, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self.counts: Counter[tuple[str, str]] = Counter()

    def decide(self, direction: Direction, mti: str, now: float) -> Decision:
        counts, plan = self.counts, self.plan
        nth = counts[(direction, mti)] = counts[(direction, mti)] + 1
        if plan.partitions and any(p.blocks(direction, now) for p in plan.partitions):
            return Decision((), "partition", nth)
        faults = plan.to_host if direction == "to_host" else plan.to_terminal
        base = faults.latency.sample(self.rng)
        for rule in plan.rules:
            if rule.direction == direction and rule.mti == mti and rule.nth == nth:
                return _apply_rule(rule, base, nth)
        if faults.loss and self.rng.random() < faults.loss:
            return Decision((), "loss", nth)
        reason = "deliver"
        if faults.reorder and self.rng.random() < faults.reorder:
            base += self.rng.uniform(0.0, faults.reorder_window)
            reason = "reorder"
        if faults.duplicate and self.rng.random() < faults.duplicate:
            return Decision((base, base + faults.latency.sample(self.rng)), "duplicate", nth)
        return Decision((base,), reason, nth)


def _apply_rule(rule: Rule, base: float, nth: int) -> Decision:
    if rule.action == "drop":
        return Decision((), "rule_drop", nth)
    if rule.action == "delay":
        return Decision((base + rule.delay,), "rule_delay", nth)
    return Decision((base, base + rule.delay), "rule_duplicate", nth)


@dataclass
class FaultyLink:
    """One direction of a transport with the fault layer in front of it."""

    direction: Direction
    inner: Transport
    decider: FaultDecider
    scheduler: Scheduler
    trace: Callable[[Event], None]
    in_flight: int = field(default=0)

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        """Decide this message's fate, trace it, and schedule each surviving copy."""
        mti = peek_kind(data)  # the MTI of a card frame, the kind of a wallet frame (QR_PAY...)
        decision = self.decider.decide(self.direction, mti, self.scheduler.now())
        if not decision.delays:
            self.trace(NetDropped(self.direction, mti, decision.nth, decision.reason, **_keys(meta or {})))
            return
        if decision.reason != "deliver":  # the sender's keys are traced only for a fault (most messages have none)
            self.trace(NET_EVENTS[decision.reason](self.direction, mti, decision.nth, decision.reason,
                                                   **_keys(meta or {}),
                                                   delays=tuple(round(d, 6) for d in decision.delays)))
        for delay in decision.delays:
            self.in_flight += 1
            self.scheduler.call_later(delay, lambda: self._deliver(data))

    def _deliver(self, data: bytes) -> None:
        self.in_flight -= 1
        self.inner.send(data)


def _keys(meta: Mapping[str, object]) -> dict[str, Any]:
    """What the sender said the message is (``tid``, ``stan``, ``txn``, ``rrn``), for the trace."""
    return {k: meta[k] for k in ("tid", "stan", "txn", "rrn") if meta.get(k) is not None}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"

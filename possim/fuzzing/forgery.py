"""The attacker of a run: sniffs the terminal's requests and injects forged messages.

A forgery (``protocol.faults.Forgery``) is built as a real attacker would build it: from the
fields of a sale it saw on the wire (card number, amount, STAN, field 7), naming the victim
terminal in field 41, but without the terminal's MAC key. So it carries no MAC or a MAC under
the attacker's own key; in a run without MACs (``mac = false``) it carries none and nobody
can tell it from the real thing. It enters the same links (and fault layer) as honest traffic:
reversals and queries towards the host, approvals towards the terminal.

Wallet forgeries are built the same way from the wallet requests the attacker read: a cancel,
refund or query of the victim's order (the order number it saw, or a guess), a pay for a
terminal the gateway has no key for, a genuine signed request replayed byte for byte, and a pay
with its amount changed under its original ``sign``. They reach the gateway through the link
and fault layer every wallet request takes, arriving with whatever origin the transport vouches
for (in one process: none; the ``sign`` has to prove the sender).

Everything is deterministic: forgeries happen at their scheduled times, and the attacker's
key is derived from the run's seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from possim.protocol import codec
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol import wallet as W
from possim.protocol.errors import ProtocolError
from possim.protocol.faults import Forgery
from possim.protocol.mac import DEFAULT_ALGORITHM, MacKey
from possim.protocol.messages import Key, Message, OriginalData
from possim.protocol.ports import Link, Scheduler

#: The attacker's STANs: far from the terminal's, so its answers are never taken for the terminal's own.
ATTACKER_STAN = 900_000
#: The RRN of a forged approval (the attacker cannot know the host's): how a trace tells it apart.
FORGED_RRN = "666666666666"
#: The terminal id of a forged wallet pay: one the gateway holds no key for.
GHOST_TID = "GHOST001"
#: The random part of a guessed wallet order number (the attacker cannot know the terminal's).
GUESSED_NONCE = "GUESSED000"


def attacker_key(seed: int) -> MacKey:
    """A key the attacker owns (its own terminal's, say): a MAC under it proves nothing about the victim."""
    return MacKey(DEFAULT_ALGORITHM, hashlib.sha256(f"possim attacker {seed}".encode()).digest()[:16])


@dataclass
class Forger:
    """Taps the terminal's outgoing requests (``tap``) and injects the scheduled forgeries."""

    forgeries: tuple[Forgery, ...]
    to_host: Link
    to_terminal: Link
    scheduler: Scheduler
    emit: Callable[[ev.Event], None]
    seed: int
    macs_on: bool
    epoch: datetime
    #: Scheduled time of each sale by transaction id (for predicting field 7 of a future sale).
    plan_times: Mapping[int, float] = field(default_factory=dict)
    sniffed: list[Message] = field(default_factory=list)
    #: Keys of ``sniffed``: a repeat is recognised in constant time (a scan made long runs quadratic).
    _sniffed_keys: set[Key] = field(default_factory=set)
    #: Every distinct wallet request the terminal sent, as read on the wire (bytes, signs and all).
    wallet_sniffed: list[tuple[W.WalletRequest, bytes]] = field(default_factory=list)
    #: The first pay of each wallet order seen, in order: what a forgery's ``target`` counts.
    wallet_orders: list[tuple[W.WalletRequest, bytes]] = field(default_factory=list)
    _wallet_seen: set[bytes] = field(default_factory=set)
    pending: int = 0
    _stan: int = ATTACKER_STAN

    def tap(self, inner: Link) -> Link:
        """A link that hands every request to ``inner`` after the attacker has read it."""
        return _Tap(inner, self)

    def observe(self, data: bytes) -> None:
        if W.is_wallet(data):
            self._observe_wallet(data)
            return
        try:
            msg = codec.decode(data)
        except ProtocolError:
            return
        if msg.mti in (M.PURCHASE, M.AUTH) and msg.key() not in self._sniffed_keys:
            self._sniffed_keys.add(msg.key())
            self.sniffed.append(msg)

    def _observe_wallet(self, data: bytes) -> None:
        if data in self._wallet_seen:
            return
        try:
            msg = W.decode(data)  # read, not verified: the attacker has no key
        except ProtocolError:
            return
        if not isinstance(msg, W.WalletRequest):
            return
        self._wallet_seen.add(data)
        self.wallet_sniffed.append((msg, data))
        if msg.kind == "pay" and all(m.out_trade_no != msg.out_trade_no for m, _ in self.wallet_orders):
            self.wallet_orders.append((msg, data))

    def schedule(self) -> None:
        for forgery in self.forgeries:
            self.pending += 1
            self.scheduler.call_later(forgery.at - self.scheduler.now(), partial(self._inject, forgery))

    def _inject(self, forgery: Forgery) -> None:
        self.pending -= 1
        if forgery.kind.startswith("wallet_"):
            self._inject_wallet(forgery)
            return
        if forgery.kind == "query":
            for msg in self._queries(forgery):
                self._send(forgery, msg, "to_host")
            return
        if len(self.sniffed) < forgery.target:
            self.emit(ev.ForgeryMissed(forgery.kind, forgery.target))
            return
        sale = self.sniffed[forgery.target - 1]
        if forgery.kind == "reversal":
            self._send(forgery, self._reversal(forgery, sale), "to_host")
        else:
            self._send(forgery, sale.response("00", rrn=FORGED_RRN, auth_code="F0RGED"), "to_terminal")

    def _reversal(self, forgery: Forgery, sale: Message) -> Message:
        amount = sale.amount if forgery.amount is None else forgery.amount
        return Message(mti=M.REVERSAL, stan=self._next_stan(), transmission=self._clock(), tid=sale.tid,
                       mid=sale.mid, pan=sale.pan, processing_code="000000", amount=amount, currency=sale.currency,
                       original=OriginalData(sale.mti, sale.stan, sale.transmission))

    def _queries(self, forgery: Forgery) -> list[Message]:
        """0600s for the keys the terminal will use next: its next STANs, the target sale's scheduled field 7."""
        last = self.sniffed[-1] if self.sniffed else None
        tid = last.tid if last else None
        at = self.plan_times.get(forgery.target)
        if tid is None or at is None or last is None:
            self.emit(ev.ForgeryMissed(forgery.kind, forgery.target))
            return []
        transmission = (self.epoch + timedelta(seconds=at)).strftime("%m%d%H%M%S")
        first = int(last.stan)
        return [Message(mti=M.STATUS_QUERY, stan=self._next_stan(), transmission=self._clock(), tid=tid,
                        mid=last.mid, processing_code="970000", currency=last.currency,
                        original=OriginalData(M.PURCHASE, f"{(first + k) % 999_999 or 1:06d}", transmission))
                for k in range(1, forgery.count + 1)]

    def _inject_wallet(self, forgery: Forgery) -> None:
        """Build the wallet forgery from what was sniffed and send it towards the gateway."""
        built = self._wallet_frame(forgery)
        if built is None:
            self.emit(ev.ForgeryMissed(forgery.kind, forgery.target))
            return
        msg, data, mac = built
        self.emit(ev.ForgeryInjected("to_host", forgery.kind, msg.wire_kind, msg.tid, msg.out_trade_no,
                                     forgery.target, mac))
        self.to_host.send(data, {"tid": msg.tid, "stan": msg.out_trade_no, "mti": msg.wire_kind})

    def _wallet_frame(self, forgery: Forgery) -> tuple[W.WalletRequest, bytes, str] | None:
        """The forged request, its bytes and how they are signed; ``None`` when there is nothing to aim at."""
        if forgery.kind in ("wallet_replay", "wallet_amount"):
            return self._copied(forgery)
        return self._forged(forgery)

    def _copied(self, forgery: Forgery) -> tuple[W.WalletRequest, bytes, str] | None:
        """A request the terminal sent, replayed as it was or with another amount under its genuine ``sign``."""
        seen = self.wallet_sniffed if forgery.kind == "wallet_replay" else self.wallet_orders
        if len(seen) < forgery.target:
            return None
        msg, data = seen[forgery.target - 1]
        mac = "copied" if self.macs_on else "off"
        if forgery.kind == "wallet_replay":
            return msg, data, mac
        amount = forgery.amount if forgery.amount is not None else 2 * (msg.amount or 1)
        body = json.loads(data) | {"total_amount": f"{amount // 100}.{amount % 100:02d}"}
        altered = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")
        return replace(msg, amount=amount), altered, mac

    def _forged(self, forgery: Forgery) -> tuple[W.WalletRequest, bytes, str] | None:
        """A request built by the attacker, naming the victim's order (or an unknown terminal), without its key."""
        victim = self._victim_order(forgery.target)
        if victim is None:
            return None
        request_id = f"{victim.out_trade_no}-F{self._next_stan()}"
        if forgery.kind == "wallet_pay":
            msg = W.WalletRequest(kind="pay", tid=GHOST_TID, out_trade_no=f"GHOST{self._next_stan()}",
                                  request_id=request_id, provider=victim.provider,
                                  auth_code=victim.auth_code or f"28{forgery.target:016d}",
                                  amount=victim.amount or 100)
        else:
            kind: W.RequestKind = forgery.kind.removeprefix("wallet_")  # type: ignore[assignment]
            msg = W.WalletRequest(kind=kind, tid=victim.tid, out_trade_no=victim.out_trade_no,
                                  request_id=request_id, provider=victim.provider,
                                  amount=(victim.amount or 100) if kind == "refund" else None)
        mac = "off" if not self.macs_on else forgery.mac
        return msg, W.encode(msg, attacker_key(self.seed) if mac == "wrong" else None), mac

    def _victim_order(self, n: int) -> W.WalletRequest | None:
        """The ``n``-th wallet pay seen, else a guess at the victim terminal's ``n``-th order number
        (its id from any request seen; ``None`` when nothing was seen at all)."""
        if len(self.wallet_orders) >= n:
            return self.wallet_orders[n - 1][0]
        tid = self.wallet_sniffed[-1][0].tid if self.wallet_sniffed else (
            self.sniffed[-1].tid if self.sniffed else None)
        if tid is None:
            return None
        plain = "".join(c if c.isalnum() else "0" for c in tid)
        return W.WalletRequest(kind="pay", tid=tid, out_trade_no=f"{self.epoch:%Y%m%d}{plain}{n:06d}{GUESSED_NONCE}",
                               request_id="guess")

    def _send(self, forgery: Forgery, msg: Message, direction: str) -> None:
        mac = "off" if not self.macs_on else forgery.mac
        key = attacker_key(self.seed) if mac == "wrong" else None
        self.emit(ev.ForgeryInjected(direction, forgery.kind, msg.mti, msg.tid, msg.stan, forgery.target, mac))
        link = self.to_host if direction == "to_host" else self.to_terminal
        link.send(codec.encode(msg, key), {"tid": msg.tid, "stan": msg.stan, "mti": msg.mti})

    def _next_stan(self) -> str:
        self._stan += 1
        return f"{self._stan % 1_000_000:06d}"

    def _clock(self) -> str:
        return (self.epoch + timedelta(seconds=self.scheduler.now())).strftime("%m%d%H%M%S")


@dataclass
class _Tap:
    inner: Link
    forger: Forger

    def send(self, data: bytes, meta: Mapping[str, object] | None = None) -> None:
        self.forger.observe(data)
        self.inner.send(data, meta)

"""Magic amounts: the cents of a sale's amount pick how the host behaves towards it.

Terminal developers know the trick from acquirer sandboxes: ring up 12.01 and the host loses its
answer, 12.05 and it declines. ``TABLE`` is the one place the mapping is written; ``possim
acquirer --magic-table`` prints it and docs/certify.md shows it. A scenario's ``[[host.behaviours]]``
picks the same behaviours by exact amount, terminal id or card number (``BehaviourRule``).

``MagicHost`` is the acquirer host with a per-request hook: it reuses every rule of
``AcquirerHost`` (ledger, idempotency, MACs) and changes only what a behaviour names, in three
narrow places: the issuer's decision (declines, issuer time-out), the answer to an original
(lost, late, twice, wrong MAC, crash after commit) and the answers to a reversal or status query
of a magic original (first reversal refused, queries answered IN_PROGRESS). Other amounts behave
normally. It can also ``record`` every frame it receives, in order: what ``possim certify`` grades.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from possim.acquirer_sim.config import BehaviourRule, HostConfig
from possim.acquirer_sim.host import AcquirerHost, Crashed, HostAction, Reply
from possim.protocol import codec, dialects
from possim.protocol import events as ev
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Key, Message

if TYPE_CHECKING:
    from possim.acquirer_sim.ledger import Ledger


def N_(text: str) -> str:  # noqa: N802 - gettext's "mark, translate later"
    """Mark ``text`` for the zh catalogue; the views translate it. As ``possim.i18n.N_``, which the
    sans-IO core may not import (it reaches nothing of the orchestration layer)."""
    return text


@dataclass(frozen=True, slots=True)
class Magic:
    """One row of the magic table: the cents, the behaviour's name and what it does (English; the
    zh catalogue has its translation)."""

    cents: int
    name: str
    does: str


TABLE: tuple[Magic, ...] = (
    Magic(1, "answer-lost", N_("approved and debited; the answer is lost (a completion advice: its first answer)")),
    Magic(2, "answer-late", N_("approved and debited; answered 45 s late")),
    Magic(3, "crash-after-commit", N_("debited, then the host crashes before answering and stays down 90 s")),
    Magic(5, "decline-05", N_("declined 05 (do not honour)")),
    Magic(6, "query-in-progress", N_("approved and debited, the answer is lost; the first three status queries "
                                     "are answered IN_PROGRESS")),
    Magic(22, "answer-twice", N_("approved and debited; the answer is sent twice")),
    Magic(25, "reversal-refused-once", N_("approved and debited, the answer is lost; the first reversal is "
                                          "refused 05, later ones accepted")),
    Magic(51, "decline-51", N_("declined 51 (not sufficient funds)")),
    Magic(55, "decline-55", N_("declined 55 (wrong PIN)")),
    Magic(63, "wrong-mac", N_("approved and debited; the answer carries a wrong MAC (needs --keys)")),
    Magic(91, "issuer-timeout", N_("the issuer does not answer: 91 (iso) or 98 (cup), nothing debited")),
)
#: Every behaviour by name, for scenario files and the certification plan.
BY_NAME: Mapping[str, Magic] = {m.name: m for m in TABLE}
BY_CENTS: Mapping[int, Magic] = {m.cents: m for m in TABLE}
NAMES: tuple[str, ...] = tuple(BY_NAME)
#: Behaviours whose original's answer never reaches the terminal (so the terminal must recover).
_LOST = frozenset({"answer-lost", "query-in-progress", "reversal-refused-once"})
_DECLINES = {"decline-05": "05", "decline-51": "51", "decline-55": "55"}
#: How many status queries ``query-in-progress`` answers IN_PROGRESS.
IN_PROGRESS_ANSWERS = 3
LATE_AFTER, DOWN_FOR = 45.0, 90.0


def table_rows(translate: Callable[[str], str] = str) -> list[tuple[str, str, str]]:
    """The table as printed: (cents, behaviour, what the host does), ``translate``d (``i18n.Tr``)."""
    return [(f".{m.cents:02d}", m.name, translate(m.does)) for m in TABLE]


def spoil_mac(data: bytes, dialect: str) -> bytes:
    """The frame with its MAC's last digit changed and still well formed: hex text where the dialect
    sends it so (``iso``), else binary (``cup``). Only the MAC is wrong, so only a MAC check can refuse it."""
    if dialects.get(dialect).mac_is_hex:
        return data[:-1] + (b"1" if data[-1:] == b"0" else b"0")
    return data[:-1] + bytes([data[-1] ^ 1])


class MagicHost(AcquirerHost):
    """``AcquirerHost`` with behaviours chosen per request (see the module docstring).

    ``magic``: choose by the amount's cents (``TABLE``); ``config.behaviours`` (a scenario's rules)
    are checked first. ``record(now, data)`` gets every frame received, before anything else.
    ``on_behaviour(name, tid, stan)`` is told each time a behaviour acts (the acquirer logs it).
    """

    def __init__(self, config: HostConfig, ledger: Ledger, rng: random.Random,
                 keys: Mapping[str, MacKey] | None = None, *, magic: bool = True,
                 late_after: float = LATE_AFTER, down_for: float = DOWN_FOR,
                 record: Callable[[float, bytes], None] | None = None,
                 on_behaviour: Callable[[str, str, str], None] | None = None,
                 undecided: Callable[[], bool] | None = None) -> None:
        super().__init__(config, ledger, rng, keys)
        self.magic, self.late_after, self.down_for = magic, late_after, down_for
        self.record, self.on_behaviour = record, on_behaviour
        #: While it says so, every status query about a booked original is answered IN_PROGRESS (the
        #: issuer has not decided): a terminal that asks before it reverses must still reverse.
        self.undecided = undecided
        self._decisions: dict[tuple[str, int], str] = {}  # (card, amount) -> decline behaviour pending
        self._answers: dict[tuple[str, str, str], str] = {}  # (tid, stan, response MTI) -> behaviour
        self._refused: set[Key] = set()
        self._advices_lost: set[Key] = set()
        self._queries: Counter[Key] = Counter()

    def choose(self, tid: str, pan: str | None, amount: int | None) -> str | None:
        """The behaviour for a sale: the first scenario rule that matches, else its cents (with ``magic``)."""
        for rule in self.config.behaviours:
            if rule.matches(tid, pan, amount):
                return rule.behaviour
        if self.magic and amount is not None and (row := BY_CENTS.get(amount % 100)) is not None:
            return row.name
        return None

    def receive(self, now: float, data: bytes, sender: str | None = None) -> list[HostAction]:
        if self.record is not None:
            self.record(now, data)
        msg = self._readable(now, data)
        if msg is not None:
            early = self._before(now, msg)
            if early is not None:
                return early
        return self._shape(now, super().receive(now, data, sender))

    def issuer_answered(self, now: float, key: Key) -> list[HostAction]:
        return self._shape(now, super().issuer_answered(now, key))

    def _readable(self, now: float, data: bytes) -> Message | None:
        """The request, when the host is up and it passes the MAC check (else the host's own rules answer)."""
        if now < self.down_until:
            return None
        try:
            msg = codec.decode(data, self.checking_keys(data))  # a CUP life's working MAK after its sign-on
        except ProtocolError:
            return None
        return msg if msg.mti in M.REQUESTS else None

    def _before(self, now: float, msg: Message) -> list[HostAction] | None:
        """Note an original's behaviour; answer a reversal or query of a magic original here.

        A request the host refuses for its life (rule 8: not from the id's current life) is left to
        that rule: its 77 is no answer of a magic original, so no behaviour touches it."""
        current = self._current_life(msg.tid) if msg.mti != M.SIGN_ON else None
        if current is not None and msg.life != current:
            return None
        if msg.mti in (M.PURCHASE, M.AUTH) and msg.original is None:
            behaviour = self.choose(msg.tid, msg.pan, msg.amount)
            if behaviour in _DECLINES or behaviour == "issuer-timeout":
                self._decisions[(msg.pan or "", msg.amount or 0)] = behaviour
            elif behaviour is not None:
                self._answers[(msg.tid, msg.stan, M.response_to(msg.mti))] = behaviour
            return None
        if msg.mti in (M.ADVICE, M.ADVICE_REPEAT) and msg.original is not None:
            self._advice_hook(msg)
            return None
        if msg.mti in (M.REVERSAL, M.REVERSAL_REPEAT):
            return self._reversal_hook(msg)
        if msg.mti == M.STATUS_QUERY and msg.original is not None:
            return self._query_hook(msg)
        return None

    def _original_behaviour(self, key: Key) -> str | None:
        orig = self.ledger.find(key)
        return None if orig is None else self.choose(key[0], orig.pan, orig.amount)

    def _reversal_hook(self, msg: Message) -> list[HostAction] | None:
        key = msg.original.key(msg.tid) if msg.original is not None else msg.key()
        if key in self._refused or self._original_behaviour(key) != "reversal-refused-once":
            return None
        self._refused.add(key)
        self._told("reversal-refused-once", msg)
        return [ev.ReversalRefused(msg.tid, msg.stan, msg.mti, rc="05"), self._reply(msg, "05")]

    def _advice_hook(self, msg: Message) -> None:
        """A completion advice (0220) of a magic amount whose answer is to be lost: its first answer is
        lost (the terminal must store and forward it); the repeats are answered."""
        assert msg.original is not None
        key = msg.original.key(msg.tid)
        if key in self._advices_lost or self.choose(msg.tid, msg.pan, msg.amount) not in _LOST:
            return
        self._advices_lost.add(key)
        self._answers[(msg.tid, msg.stan, M.response_to(msg.mti))] = "answer-lost"

    def _query_hook(self, msg: Message) -> list[HostAction] | None:
        assert msg.original is not None
        key = msg.original.key(msg.tid)
        if self.undecided is not None and self.undecided() and self.ledger.find(key) is not None:
            return self._in_progress(msg, key)
        if self._queries[key] >= IN_PROGRESS_ANSWERS or self._original_behaviour(key) != "query-in-progress":
            return None
        return self._in_progress(msg, key)

    def _in_progress(self, msg: Message, key: Key) -> list[HostAction]:
        self._queries[key] += 1
        self._told("query-in-progress", msg)
        return [ev.StatusAnswered(msg.tid, msg.stan, msg.mti, status="IN_PROGRESS", orig_stan=key[1]),
                self._reply(msg, "00", status="IN_PROGRESS")]

    def _decide(self, now: float, pan: str, amount: int, available: int | None = None) -> str:
        behaviour = self._decisions.pop((pan, amount), None)
        if behaviour == "issuer-timeout":
            return self.profile.issuer_timeout_code
        if behaviour is not None:
            return _DECLINES[behaviour]
        return super()._decide(now, pan, amount, available)

    def _shape(self, now: float, actions: list[HostAction]) -> list[HostAction]:
        """The answers to magic originals, changed as their behaviour says."""
        out: list[HostAction] = []
        for action in actions:
            behaviour = self._answers.pop((action.tid, action.stan, action.mti), None) \
                if isinstance(action, Reply) else None
            if behaviour is None:
                out.append(action)
                continue
            assert isinstance(action, Reply)
            self._note(behaviour, action.tid, action.stan)
            out.extend(self._changed(now, behaviour, action))
        return out

    def _changed(self, now: float, behaviour: str, reply: Reply) -> list[HostAction]:
        if behaviour in _LOST:
            return []
        if behaviour == "answer-late":
            return [replace(reply, delay=reply.delay + self.late_after)]
        if behaviour == "answer-twice":
            return [reply, replace(reply, delay=reply.delay + 0.05)]
        if behaviour == "wrong-mac" and self.keys is not None:
            # an answer the terminal must discard is no answer delivered: no delivery is recorded
            return [replace(reply, data=spoil_mac(reply.data, self.profile.dialect), answers=None)]
        if behaviour == "crash-after-commit":
            self.down_until = now + self.down_for
            return [ev.HostCrashed(reply.tid, reply.stan, reply.mti, until=self.down_until), Crashed(self.down_until)]
        return [reply]

    def _told(self, behaviour: str, msg: Message) -> None:
        self._note(behaviour, msg.tid, msg.stan)

    def _note(self, behaviour: str, tid: str, stan: str) -> None:
        if self.on_behaviour is not None:
            self.on_behaviour(behaviour, tid, stan)


__all__ = ["BY_CENTS", "BY_NAME", "NAMES", "TABLE", "BehaviourRule", "Magic", "MagicHost", "spoil_mac", "table_rows"]

"""``possim conform``: grade an ISO 8583 host under test from its answers alone.

A host that says 00 is only half the story of a timeout: what matters is how it answers the
messages a terminal sends when it no longer knows what happened (a repeat, a reversal that
overtook its original, a late original, a status query in flight). Each rule below is one
case: a short script of crafted terminal messages (``Send``, ``Await``, ``Balance`` steps, as
data) and a grader that reads only what was recorded: the messages sent, the answers received
and, where the user gives a ``--balance-command``, the card's balance between steps.

Three layers, so each can be tested alone:

- ``CASES``: the cases as data (id, rule, one-line description, steps, grader);
- ``run_case``: the driver, the only part with I/O: one TCP connection per case in the
  profile's framing, every wait bounded by the per-case timeout, everything recorded;
- the graders: pure functions of a ``Record`` and a ``Profile``, returning a ``Verdict``.

Each case has its own card number and fresh STANs, so cases do not depend on one another,
and a host's state from an earlier run (keys are terminal, STAN and field 7) cannot answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from possim.acquirer_sim.magic import spoil_mac
from possim.i18n import N_
from possim.protocol import codec, dialects
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData
from possim.protocol.profiles import get_profile

PASS, FAIL, NOT_RUN = "pass", "fail", "not run"
DEFAULT_TID = "CONFORM1"
DEFAULT_MID = "CONFORM00000001"
DEFAULT_TIMEOUT = 3.0
#: Every sale's amount (minor units); a host's test accounts must hold a few of them.
AMOUNT = 1234


class ConformError(Exception):
    """Bad input or a host that cannot be reached at all: one line, exit code 2."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What the answers of a profile's host must say, where profiles differ.

    ``unknown_reversal``: the answers to a reversal of an original the host never saw (ISO 25;
    a CUP host may also take it as done, 00, as long as it keeps the tombstone).
    ``amount_mismatch``: the answers to a reversal of another amount (None: any refusal).
    ``duplicate``: besides the stored answer, what a repeated original may get (CUP: 94).
    """

    name: str
    dialect: str
    currency: str
    unknown_reversal: frozenset[str]
    amount_mismatch: frozenset[str] | None
    security: frozenset[str]
    duplicate: frozenset[str]
    pan_prefix: str


def _expect(name: str, unknown_reversal: frozenset[str], amount_mismatch: frozenset[str] | None,
            security: frozenset[str], duplicate: frozenset[str], pan_prefix: str) -> Profile:
    """What a host of profile ``name`` may answer, in the profile's dialect and currency."""
    scheme = get_profile(name)
    return Profile(name, scheme.dialect, scheme.currency, unknown_reversal, amount_mismatch, security, duplicate,
                   pan_prefix)


PROFILES: dict[str, Profile] = {
    "iso": _expect("iso", frozenset({"25"}), frozenset({"13"}), frozenset({codec.SECURITY_VIOLATION}), frozenset(),
                   "49"),
    "cup": _expect("cup", frozenset({"25", "00"}), None, frozenset({codec.SECURITY_VIOLATION, "A0"}), frozenset({"94"}),
                   "62"),
}


# -- building the messages of a case ------------------------------------------------------------

def luhn_pan(body: str) -> str:
    """``body`` with its Luhn check digit appended (hosts refuse a card number that fails it)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


@dataclass
class Builder:
    """What a case's steps build their messages from: the terminal, the case's card, fresh STANs.

    ``sent`` holds the messages already sent, by step name, so a reversal or query can name them.
    """

    profile: Profile
    tid: str
    pan: str
    stans: Iterator[int]
    clock: Callable[[], datetime]
    sent: dict[str, Message] = field(default_factory=dict)

    def stan(self) -> str:
        return f"{next(self.stans):06d}"

    def now(self) -> str:
        return self.clock().strftime("%m%d%H%M%S")

    def sale(self, stan: str | None = None, transmission: str | None = None, amount: int = AMOUNT) -> Message:
        """Fields 13 and 12 are cut from the transmission time: under CUP, which sends no field 7, they carry it."""
        sent_at = transmission or self.now()
        return Message(mti=M.PURCHASE, stan=stan or self.stan(), transmission=sent_at,
                       tid=self.tid, mid=DEFAULT_MID, pan=self.pan, processing_code="000000", amount=amount,
                       local_time=sent_at[4:], local_date=sent_at[:4], currency=self.profile.currency)

    def reversal_of(self, name: str, amount: int | None = None) -> Message:
        """ISO: a new STAN naming the original in field 90; CUP: a copy of it (same STAN and field 7),
        reason 98 (no answer) in field 39, as CUP terminals send."""
        orig = self.sent[name]
        money = orig.amount if amount is None else amount
        scheme = get_profile(self.profile.name)
        if scheme.reversal_copies_original:
            return replace(orig, mti=M.REVERSAL, amount=money, response_code=scheme.reason_no_answer)
        return Message(mti=M.REVERSAL, stan=self.stan(), transmission=self.now(), tid=self.tid, mid=DEFAULT_MID,
                       pan=orig.pan, processing_code="000000", amount=money, currency=orig.currency,
                       original=OriginalData(orig.mti, orig.stan, orig.transmission))

    def query_of(self, name: str) -> Message:
        orig = self.sent[name]
        return Message(mti=M.STATUS_QUERY, stan=self.stan(), transmission=self.now(), tid=self.tid, mid=DEFAULT_MID,
                       processing_code="970000", original=OriginalData(orig.mti, orig.stan, orig.transmission))

    def unsent_sale(self) -> Message:
        """An original that is not sent (yet): what a reversal of an unknown original names."""
        return self.sale()


@dataclass(frozen=True, slots=True)
class Send:
    """Send one message; ``wait``: wait for its answer before the next step (else ``Await`` it later).

    ``mac``: ``ok`` (with the key when the run has keys), ``missing`` or ``wrong``.
    """

    name: str
    build: Callable[[Builder], Message]
    wait: bool = True
    mac: str = "ok"


@dataclass(frozen=True, slots=True)
class Await:
    name: str


@dataclass(frozen=True, slots=True)
class Remember:
    """Keep a message under a name without sending it (an original a reversal overtakes)."""

    name: str
    build: Callable[[Builder], Message]


@dataclass(frozen=True, slots=True)
class Balance:
    """Read the card's balance with ``--balance-command`` (nothing without one)."""

    name: str


Step = Send | Await | Remember | Balance


# -- what a case recorded, and what the graders read ---------------------------------------------

@dataclass(frozen=True, slots=True)
class Wire:
    """One message on the wire, as the report shows it."""

    direction: str  # sent | received
    at: float
    step: str | None
    mti: str
    fields: dict[str, str]
    data: str  # hex
    note: str | None = None


@dataclass
class Record:
    """Everything a case saw: its grader reads nothing else."""

    sent: dict[str, Message] = field(default_factory=dict)
    answers: dict[str, Message | None] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # step -> why its answer is unusable
    #: Steps answered without a MAC at all (a host need not, and should not, sign its answer to a
    #: request whose MAC it could not verify: see ``grade_mac``).
    unsigned: set[str] = field(default_factory=set)
    balances: dict[str, Decimal] = field(default_factory=dict)
    wire: list[Wire] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT

    def answer(self, name: str) -> Message | None:
        return self.answers.get(name)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str
    evidence: str

    @property
    def passed(self) -> bool:
        return self.status == PASS


def _fail(evidence: str) -> Verdict:
    return Verdict(FAIL, evidence)


def _ok(evidence: str) -> Verdict:
    return Verdict(PASS, evidence)


def _said(rec: Record, name: str) -> str:
    """One answer as evidence: ``0210 rc=00 rrn=... auth=...`` or why there is none."""
    msg = rec.answer(name)
    if msg is None:
        return rec.problems.get(name, f"no answer within {rec.timeout:g} s")
    parts = [msg.mti, f"rc={msg.response_code}"]
    for label, value in (("rrn", msg.rrn), ("auth", msg.auth_code), ("status", msg.status)):
        if value:
            parts.append(f"{label}={value.strip()}")
    return " ".join(parts)


def _missing(rec: Record, *names: str) -> Verdict | None:
    """A failed verdict when a needed answer is missing or unusable (no answer, wrong MAC)."""
    for name in names:
        if rec.answer(name) is None or name in rec.problems:
            return _fail(f"{name}: {_said(rec, name)}")
    return None


def _debited(rec: Record, before: str, after: str) -> Decimal | None:
    if before in rec.balances and after in rec.balances:
        return rec.balances[before] - rec.balances[after]
    return None


def _same_approval(a: Message, b: Message) -> bool:
    return (a.response_code, a.rrn, a.auth_code) == (b.response_code, b.rrn, b.auth_code)


# -- the graders: pure over a Record --------------------------------------------------------------

def grade_duplicate(rec: Record, profile: Profile) -> Verdict:
    if (bad := _missing(rec, "sale", "repeat")) is not None:
        return bad
    first, again = rec.answers["sale"], rec.answers["repeat"]
    assert first is not None and again is not None
    seen = f"sale: {_said(rec, 'sale')}; repeat: {_said(rec, 'repeat')}"
    if not first.approved:
        return _fail(f"the sale itself was not approved ({seen})")
    if not (_same_approval(first, again) or again.response_code in profile.duplicate):
        return _fail(f"the repeat got another answer ({seen})")
    debit = _debited(rec, "before", "after")
    sale = rec.sent["sale"].amount or 0
    if debit is not None and not _one_sale(debit, sale):
        return _fail(f"{seen}; balance went down by {debit}, one sale is {sale} minor units")
    return _ok(seen + ("" if debit is None else f"; debited once ({debit})"))


def _one_sale(debit: Decimal, minor: int) -> bool:
    """Whether a balance went down by one sale; balances may be printed in minor units (1234) or major (12.34)."""
    return debit == minor or debit * 100 == minor


def grade_unknown_reversal(rec: Record, profile: Profile) -> Verdict:
    if (bad := _missing(rec, "reversal", "late")) is not None:
        return bad
    rev, late = rec.answers["reversal"], rec.answers["late"]
    assert rev is not None and late is not None
    seen = f"reversal: {_said(rec, 'reversal')}; late original: {_said(rec, 'late')}"
    if rev.response_code not in profile.unknown_reversal:
        return _fail(f"reversal of an unknown original answered {rev.response_code}, expected "
                     f"{'/'.join(sorted(profile.unknown_reversal))} ({seen})")
    if late.approved:
        return _fail(f"the late original was approved after its reversal ({seen})")
    credit = _debited(rec, "before", "after")
    if credit is not None and credit != 0:
        return _fail(f"{seen}; balance changed by {-credit}")
    return _ok(seen)


def grade_overtaken(rec: Record, _profile: Profile) -> Verdict:
    if (bad := _missing(rec, "reversal", "original")) is not None:
        return bad
    late = rec.answers["original"]
    assert late is not None
    seen = f"reversal: {_said(rec, 'reversal')}; original: {_said(rec, 'original')}"
    if late.approved:
        return _fail(f"the original was approved after the reversal that overtook it ({seen})")
    return _ok(seen)


def grade_late_after_reversal(rec: Record, _profile: Profile) -> Verdict:
    if (bad := _missing(rec, "sale", "reversal", "late")) is not None:
        return bad
    sale, rev, late = rec.answers["sale"], rec.answers["reversal"], rec.answers["late"]
    assert sale is not None and rev is not None and late is not None
    seen = f"sale: {_said(rec, 'sale')}; reversal: {_said(rec, 'reversal')}; late: {_said(rec, 'late')}"
    if not sale.approved or not rev.approved:
        return _fail(f"the sale and its reversal must both be answered 00 first ({seen})")
    if late.approved and not _same_approval(sale, late):
        return _fail(f"the late original was approved again, as a new sale ({seen})")
    net = _debited(rec, "before", "after")
    if net is not None and net != 0:
        return _fail(f"{seen}; balance is {net} below where it started: debited again")
    how = "refused" if not late.approved else "the stored answer repeated, no new approval"
    return _ok(f"{seen} ({how}{'' if net is None else '; balance back where it started'})")


#: What a status answer may say while (or after) its original was answered ``rc``.
_CONSISTENT = {True: {"IN_PROGRESS", "APPROVED"}, False: {"IN_PROGRESS", "DECLINED", "NOT_FOUND"}}


def grade_query_in_flight(rec: Record, _profile: Profile) -> Verdict:
    if (bad := _missing(rec, "sale", "query")) is not None:
        return bad
    sale, query = rec.answers["sale"], rec.answers["query"]
    assert sale is not None and query is not None
    seen = f"sale: {_said(rec, 'sale')}; query: {_said(rec, 'query')}"
    if query.response_code != "00" or not query.status:
        return _fail(f"the status query got no status ({seen})")
    if query.status not in _CONSISTENT[sale.approved]:
        return _fail(f"the query said {query.status} but the sale was answered {sale.response_code} ({seen})")
    if query.status == "APPROVED" and query.rrn and sale.rrn and query.rrn != sale.rrn:
        return _fail(f"the query names another RRN than the sale's answer ({seen})")
    return _ok(seen)


def grade_amount_mismatch(rec: Record, profile: Profile) -> Verdict:
    if (bad := _missing(rec, "sale", "reversal")) is not None:
        return bad
    sale, rev = rec.answers["sale"], rec.answers["reversal"]
    assert sale is not None and rev is not None
    seen = f"sale: {_said(rec, 'sale')}; reversal of another amount: {_said(rec, 'reversal')}"
    if not sale.approved:
        return _fail(f"the sale itself was not approved ({seen})")
    expected = profile.amount_mismatch
    if rev.approved or (expected is not None and rev.response_code not in expected):
        want = "a refusal" if expected is None else "/".join(sorted(expected))
        return _fail(f"expected {want} ({seen})")
    return _ok(seen)


def grade_mac(rec: Record, profile: Profile) -> Verdict:
    """The answers to the sales with a bad MAC may carry no MAC: their fields are the sender's choice,
    so a host that MACs them signs a decline matching a sale in flight for anyone who asks."""
    signed = [name for name in ("wrong-mac", "missing-mac") if name not in rec.unsigned]
    if (bad := _missing(rec, *signed, "query")) is not None:
        return bad
    wrong, missing, query = rec.answers["wrong-mac"], rec.answers["missing-mac"], rec.answers["query"]
    assert wrong is not None and missing is not None and query is not None
    seen = f"wrong MAC: {_said(rec, 'wrong-mac')}; no MAC: {_said(rec, 'missing-mac')}; then query: " \
           f"{_said(rec, 'query')}"
    want = "/".join(sorted(profile.security))
    for label, msg in (("wrong MAC", wrong), ("missing MAC", missing)):
        if msg.response_code not in profile.security:
            return _fail(f"a sale with a {label} was answered {msg.response_code}, expected {want} ({seen})")
    if query.status == "APPROVED":
        return _fail(f"the sale with a bad MAC was booked ({seen})")
    return _ok(seen)


def grade_malformed(rec: Record, _profile: Profile) -> Verdict:
    if (bad := _missing(rec, "bad-date", "bad-card")) is not None:
        return bad
    seen = f"field 7 month 13: {_said(rec, 'bad-date')}; field 2 failing Luhn: {_said(rec, 'bad-card')}"
    for name in ("bad-date", "bad-card"):
        msg = rec.answers[name]
        assert msg is not None
        if msg.response_code != "30":
            return _fail(f"expected 30 (format error) for each ({seen})")
    return _ok(seen)


def grade_stan_wrap(rec: Record, _profile: Profile) -> Verdict:
    if (bad := _missing(rec, "stan-999999", "stan-000001")) is not None:
        return bad
    a, b = rec.answers["stan-999999"], rec.answers["stan-000001"]
    assert a is not None and b is not None
    seen = f"999999: {_said(rec, 'stan-999999')}; 000001: {_said(rec, 'stan-000001')}"
    if not (a.approved and b.approved):
        return _fail(f"both sales must be approved ({seen})")
    if a.rrn is not None and a.rrn == b.rrn:
        return _fail(f"both sales got the same RRN: one sale, not two ({seen})")
    return _ok(seen)


# -- the cases, as data ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Case:
    id: str
    rule: int
    title: str  # English; the zh catalogue has its translation
    steps: tuple[Step, ...]
    grade: Callable[[Record, Profile], Verdict]
    needs_keys: bool = False


def _bad_date(b: Builder) -> Message:
    """Month 13 in field 7; under CUP, which has no field 7, in field 13, where its date travels."""
    sale = b.sale()
    bad = "13" + sale.transmission[2:]
    if dialects.get(b.profile.dialect).sends_field_7:
        return replace(sale, transmission=bad)
    return replace(sale, transmission=bad, local_date=bad[:4])


def _bad_card(b: Builder) -> Message:
    good = b.sale()
    pan = good.pan or ""
    return replace(good, pan=pan[:-1] + str((int(pan[-1]) + 1) % 10))


CASES: tuple[Case, ...] = (
    Case("duplicate-original", 1, N_("a repeated 0200 (same STAN, field 7, amount, card) gets the same answer, "
                                     "one debit"),
         (Balance("before"), Send("sale", lambda b: b.sale()), Send("repeat", lambda b: b.sent["sale"]),
          Balance("after")), grade_duplicate),
    Case("reversal-unknown-original", 2, N_("a reversal of an unknown original is answered 25, the late original "
                                            "is refused"),
         (Balance("before"), Remember("original", lambda b: b.unsent_sale()),
          Send("reversal", lambda b: b.reversal_of("original")), Send("late", lambda b: b.sent["original"]),
          Balance("after")), grade_unknown_reversal),
    Case("reversal-overtakes-original", 3, N_("a reversal that overtakes its original: the original arriving "
                                              "right behind it is refused"),
         (Remember("original", lambda b: b.unsent_sale()),
          Send("reversal", lambda b: b.reversal_of("original"), wait=False),
          Send("original", lambda b: b.sent["original"], wait=False), Await("reversal"), Await("original")),
         grade_overtaken),
    Case("late-original-after-reversal", 4, N_("an original repeated after its reversal is not approved or "
                                               "debited again"),
         (Balance("before"), Send("sale", lambda b: b.sale()), Send("reversal", lambda b: b.reversal_of("sale")),
          Send("late", lambda b: b.sent["sale"]), Balance("after")), grade_late_after_reversal),
    Case("query-in-flight", 5, N_("a status query sent before the original's answer never contradicts that "
                                  "answer"),
         (Send("sale", lambda b: b.sale(), wait=False), Send("query", lambda b: b.query_of("sale"), wait=False),
          Await("sale"), Await("query")), grade_query_in_flight),
    Case("reversal-amount-mismatch", 6, N_("a reversal of another amount than its original's is answered 13"),
         (Send("sale", lambda b: b.sale()),
          Send("reversal", lambda b: b.reversal_of("sale", (b.sent["sale"].amount or 0) + 1))),
         grade_amount_mismatch),
    Case("mac-wrong-or-missing", 7, N_("a wrong MAC and a missing MAC are answered 63 and book nothing"),
         (Send("wrong-mac", lambda b: b.sale(), mac="wrong"), Send("missing-mac", lambda b: b.sale(), mac="missing"),
          Send("query", lambda b: b.query_of("wrong-mac"))), grade_mac, needs_keys=True),
    Case("malformed-field", 8, N_("a malformed field (field 7 month 13, field 2 failing Luhn) is answered 30"),
         (Send("bad-date", _bad_date), Send("bad-card", _bad_card)), grade_malformed),
    Case("stan-wrap", 9, N_("a STAN wrap (999999 then 000001): both approved as distinct sales"),
         (Send("stan-999999", lambda b: b.sale(stan="999999")),
          Send("stan-000001", lambda b: b.sale(stan="000001", transmission=_next_second(b)))), grade_stan_wrap),
)
#: Why a case did not run.
NO_KEYS = N_("needs --keys: without the terminal's MAC key nothing proves a MAC wrong")


def _next_second(b: Builder) -> str:
    return (b.clock() + timedelta(seconds=1)).strftime("%m%d%H%M%S")


# -- the driver: the only I/O -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    profile: Profile
    tid: str = DEFAULT_TID
    key: MacKey | None = None
    timeout: float = DEFAULT_TIMEOUT
    balance_command: str | None = None


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    verdict: Verdict
    record: Record

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.case.id, "rule": self.case.rule, "title": self.case.title,
                "verdict": self.verdict.status, "evidence": self.verdict.evidence,
                "messages": [_wire_dict(w) for w in self.record.wire]}


def _wire_dict(w: Wire) -> dict[str, Any]:
    doc: dict[str, Any] = {"direction": w.direction, "at": round(w.at, 4), "step": w.step, "mti": w.mti,
                           "fields": w.fields, "hex": w.data}
    if w.note:
        doc["note"] = w.note
    return doc


class _Session:
    """One case's TCP connection: frames out, frames in, each answer matched to its step."""

    def __init__(self, target: Target, rec: Record) -> None:
        self.target, self.rec = target, rec
        self.dialect = dialects.get(target.profile.dialect)
        self.deframer = self.dialect.framing.deframer()
        self.waiting: list[tuple[str, str, str]] = []  # (step, response MTI, STAN) not yet answered
        self.arrived = asyncio.Event()
        self.started = time.monotonic()
        self.closed: str | None = None

    async def open(self) -> None:
        t = self.target
        try:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(t.host, t.port), t.timeout)
        except (OSError, TimeoutError) as exc:
            raise ConformError(f"cannot connect to tcp://{t.host}:{t.port}: {_why(exc)}") from None
        self.task = asyncio.create_task(self._read())

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def send(self, name: str, msg: Message, mac: str) -> None:
        key = self.target.key if mac != "missing" else None
        data = self.dialect.encode(msg, key)
        if mac == "wrong":
            data = spoil_mac(data, self.dialect.name)
        self.rec.sent[name] = msg
        self.waiting.append((name, M.response_to(msg.mti), msg.stan))
        self.rec.wire.append(Wire("sent", self._now(), name, msg.mti, message_fields(msg, data, self.dialect.name),
                                  data.hex(), None if mac == "ok" else f"MAC {mac}"))
        self.writer.write(self.dialect.framing.frame(data))

    async def answer(self, name: str) -> None:
        """Wait (at most the case's timeout) until the answer to step ``name`` has arrived."""
        deadline = time.monotonic() + self.target.timeout
        while name not in self.rec.answers and self.closed is None:
            self.arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        if name not in self.rec.answers:
            self.rec.answers[name] = None
            if self.closed is not None:
                self.rec.problems[name] = self.closed

    def _now(self) -> float:
        return time.monotonic() - self.started

    async def _read(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                for frame in self.deframer.feed(chunk):
                    self._received(frame)
            self.closed = "the host closed the connection"
        except (OSError, ProtocolError) as exc:
            self.closed = f"connection dropped: {exc}"
        self.arrived.set()

    def _received(self, data: bytes) -> None:
        note = None
        try:
            msg = self.dialect.decode(data, self.target.key)
        except codec.MacError as exc:
            msg, note = exc.message, f"answer refused: {exc}"
            if isinstance(exc, codec.MacMissingError):
                unsigned = next((w[0] for w in self.waiting if w[1] == msg.mti and w[2] == msg.stan), None)
                if unsigned is not None:
                    self.rec.unsigned.add(unsigned)
        except ProtocolError as exc:
            self.rec.wire.append(Wire("received", self._now(), None, codec.peek_mti(data), {}, data.hex(),
                                      f"undecodable: {exc}"))
            return
        step = next((w for w in self.waiting if w[1] == msg.mti and w[2] == msg.stan), None)
        fields = message_fields(msg, data, self.dialect.name)
        self.rec.wire.append(Wire("received", self._now(), step[0] if step else None, msg.mti, fields,
                                  data.hex(), note if step else (note or "matches no request")))
        if step is None:
            return
        self.waiting.remove(step)
        self.rec.answers[step[0]] = msg
        if note is not None:
            self.rec.problems[step[0]] = note
        self.arrived.set()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer to the connection attempt"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def message_fields(msg: Message, data: bytes | None = None, dialect: str = dialects.DEFAULT) -> dict[str, str]:
    """The decoded fields by ISO 8583 number, for the report and the JSON.

    Under ``cup`` they are the fields the bytes carry (``cup.decode_fields``: no field 7, field 60
    and 61 instead of 90, the MAC in 64), so the report shows what a CUP host was sent, not
    possim's model of it; ``data`` is then required.
    """
    wire = dialects.get(dialect)
    if not wire.model_is_wire and data is not None:
        with contextlib.suppress(ProtocolError):  # bytes that do not decode: the model's fields, as for ISO
            return {number: str(value) for number, value in wire.raw_fields(data).items() if number != "t"}
    pairs = (("2", msg.pan), ("3", msg.processing_code), ("4", None if msg.amount is None else f"{msg.amount:012d}"),
             ("7", msg.transmission), ("11", msg.stan), ("12", msg.local_time), ("13", msg.local_date),
             ("37", msg.rrn), ("38", msg.auth_code), ("39", msg.response_code), ("41", msg.tid), ("42", msg.mid),
             ("48", msg.status), ("49", msg.currency))
    out = {number: value for number, value in pairs if value is not None}
    if msg.original is not None:
        o = msg.original
        out["90"] = f"{o.mti}{o.stan}{o.transmission}"
    return out


def read_balance(command: str, pan: str, timeout: float) -> Decimal:
    """The balance ``command`` prints for ``pan`` (its last number); a failing command raises ``ConformError``."""
    argv = [part.replace("{card}", pan) for part in shlex.split(command)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConformError(f"--balance-command: {exc}") from None
    numbers = re.findall(r"-?\d+(?:\.\d+)?", done.stdout)
    if done.returncode != 0 or not numbers:
        raise ConformError(f"--balance-command exited {done.returncode} and printed no balance: "
                           f"{(done.stderr or done.stdout).strip()[:200]!r}")
    try:
        return Decimal(numbers[-1])
    except InvalidOperation:
        raise ConformError(f"--balance-command printed {numbers[-1]!r}, not a number") from None


async def run_case(case: Case, target: Target, builder: Builder) -> CaseResult:
    """Drive one case on its own connection and grade what it recorded."""
    rec = Record(timeout=target.timeout)
    if case.needs_keys and target.key is None:
        return CaseResult(case, Verdict(NOT_RUN, NO_KEYS), rec)
    session = _Session(target, rec)
    try:
        await session.open()
    except ConformError as exc:  # the host answered the probe and has gone since: that is its verdict
        return CaseResult(case, _fail(str(exc)), rec)
    try:
        for step in case.steps:
            await _step(step, session, builder, target, rec)
    finally:
        await session.close()
    return CaseResult(case, case.grade(rec, target.profile), rec)


async def _step(step: Step, session: _Session, builder: Builder, target: Target, rec: Record) -> None:
    if isinstance(step, Remember):
        builder.sent[step.name] = step.build(builder)
    elif isinstance(step, Send):
        msg = step.build(builder)
        builder.sent[step.name] = msg
        session.send(step.name, msg, step.mac)
        if step.wait:
            await session.answer(step.name)
    elif isinstance(step, Await):
        await session.answer(step.name)
    elif target.balance_command is not None:
        rec.balances[step.name] = await asyncio.to_thread(read_balance, target.balance_command, builder.pan,
                                                          max(target.timeout, 10.0))


def _stans() -> Iterator[int]:
    """Fresh STANs for a run, from a random base far from 999999 and 000001 (the wrap case's own)."""
    base = random.SystemRandom().randrange(100_000, 900_000)
    return iter(range(base, 999_000))


async def run_all(target: Target, cases: tuple[Case, ...] = CASES,
                  on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Every case in turn, each with its own card number; the STANs of a run never repeat."""
    stans = _stans()
    run_id = random.SystemRandom().randrange(10**8)
    results = []
    for index, case in enumerate(cases):
        pan = luhn_pan(f"{target.profile.pan_prefix}{run_id:08d}{index:02d}0000"[:15])
        builder = Builder(target.profile, target.tid, pan, stans, _utc_now)
        result = await run_case(case, target, builder)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _utc_now() -> datetime:
    """The clock of a run: field 7 is UTC (ISO 8583 transmission date and time)."""
    return datetime.now(UTC)


async def probe(target: Target) -> None:
    """Connect once: an unreachable host is bad input (one line, exit 2), not nine failed cases."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), target.timeout)
    except (OSError, TimeoutError) as exc:
        raise ConformError(f"cannot connect to tcp://{target.host}:{target.port}: {_why(exc)}") from None
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()

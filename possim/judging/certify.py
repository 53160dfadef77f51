"""``possim certify``: possim is the acquirer, a terminal under test is graded from the wire.

The mirror image of ``possim conform``. A real acquirer (``MagicHost`` over TCP on loopback,
with a SQLite ledger) serves the terminal; the cases of a certification plan (data: a TOML file
per profile in ``possim/data/certify``, extendable with ``--plan FILE``) ring up magic amounts
(``acquirer_sim.magic``) that provoke the host behaviour a rule is about, and each rule is graded
from what arrived on the wire, in order, decoded, and from the ledger: never from the terminal's
own report.

Three layers, as in ``conform``: the plan (data), ``run_case`` (the I/O: the acquirer records,
a ``Terminal`` rings up the sales) and the checks, pure functions of a ``Seen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shlex
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.ledger import Ledger
from possim.acquirer_sim.magic import MagicHost
from possim.i18n import N_
from possim.judging.conform import FAIL, NOT_RUN, PASS, Verdict, Wire, message_fields
from possim.money.money import format_amount, parse_amount
from possim.processes.broker import free_port
from possim.protocol import codec, transports
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message
from possim.protocol.profiles import get_profile
from possim.protocol.transports import Endpoint, TransportError

PLAN_DIR = Path(__file__).parent.with_name("data") / "certify"
PROFILES = ("iso", "cup")
#: The terminal's response timeout the builtin terminal is given, and the late answer's margin past it.
DEFAULT_TIMEOUT, LATE_MARGIN = 1.5, 1.0
#: Longest a case may take (the terminal's whole run), and the quiet window that ends a case.
DEFAULT_CASE_TIMEOUT, QUIET = 60.0, 0.5
ORIGINALS = frozenset({M.PURCHASE, M.AUTH})
REVERSALS = frozenset({M.REVERSAL, M.REVERSAL_REPEAT, "0420", "0421"})
#: Ledger states after a reversal took effect (CUP: cancelled while the issuer was asked).
REVERSED = frozenset({"reversed", "released", "cancelled", "issuer_reversed"})
NO_KEYS = N_("needs MAC keys: run with --keys (the builtin terminal always has them)")
NO_AUTH = N_("needs a pre-authorization and its completion: only --builtin-terminal does them")
NO_SETTLE = N_("needs an end of day: only --builtin-terminal settles")
NO_RESTART = N_("needs a restart: --builtin-terminal, or --terminal-command with --restart-command")


class CertifyError(Exception):
    """Bad input (a plan, a command, a key file): one line, exit code 2."""


# -- the plan (data) ------------------------------------------------------------------------------

def _amount(text: str) -> str:
    if parse_amount(text) <= 0:
        raise ValueError(f"{text!r}: an amount is greater than zero")
    return text


Check = Literal["untouched", "reversed", "names-original", "repeats", "reversal-first", "restart-reversal-first",
                "settlement-totals", "advice-forwarded"]


class CaseModel(BaseModel):
    """One rule of a plan: the sales to ring up (magic amounts), and the check that grades it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")]
    rule: str
    reason: str
    sales: Annotated[tuple[Annotated[str, AfterValidator(_amount)], ...], Field(min_length=1, max_length=5)]
    check: Check
    needs_keys: bool = False
    #: Power loss: the terminal is killed once the first sale has arrived, then started again.
    restart: bool = False
    #: End of day after the sales: the terminal settles its batch (0500).
    settle: bool = False
    #: A pre-authorization of the first amount, completed (0220 advice) for this amount.
    completion: Annotated[str, AfterValidator(_amount)] | None = None
    #: How the acquirer answers a status query (0600) about the case's sales: with what it booked,
    #: or IN_PROGRESS every time (the issuer has not decided), so that a terminal that asks before
    #: it reverses (query-then-reversal) is still graded on the reversal it must fall back to.
    queries: Literal["answered", "in-progress"] = "answered"


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = ""
    cases: Annotated[tuple[CaseModel, ...], Field(min_length=1)]


def _read_plan(path: Path) -> PlanModel:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        return PlanModel.model_validate(doc)
    except OSError as exc:
        raise CertifyError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CertifyError(f"{path}: not TOML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CertifyError(f"{path}: {where}: {err['msg'].removeprefix('Value error, ')}") from None


def load_plan(profile: str, extra: Path | None = None) -> tuple[CaseModel, ...]:
    """The profile's shipped plan, then the cases of ``extra`` (a case id may appear once)."""
    cases = list(_read_plan(PLAN_DIR / f"{profile}.toml").cases)
    if extra is not None:
        cases += _read_plan(extra).cases
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise CertifyError(f"{extra}: case id {case.id!r} is already in the plan")
        seen.add(case.id)
    return tuple(cases)


def select(cases: tuple[CaseModel, ...], only: tuple[str, ...]) -> tuple[CaseModel, ...]:
    """The cases named by ``--case`` (all of them when none is named), in the plan's order."""
    known = {c.id for c in cases}
    for name in only:
        if name not in known:
            raise CertifyError(f"--case: no case {name!r} in the plan (cases: {', '.join(sorted(known))})")
    return tuple(c for c in cases if not only or c.id in only)


# -- what a case saw, and the checks --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Arrival:
    """One frame the acquirer received, decoded (``msg`` None: undecodable)."""

    at: float
    msg: Message | None
    data: bytes
    #: The acquirer refused it (a reversal answered 05 by the magic behaviour ``reversal-refused-once``).
    refused: bool = False


@dataclass
class Seen:
    """Everything a check reads: the case's sales, the terminal's frames in order, the ledger."""

    profile: str
    sales: tuple[int, ...]
    arrivals: list[Arrival]
    state: Callable[[Message], str | None]
    restarted_at: float | None = None
    #: The ledger's approved sales of the terminal: (amount, count).
    approved: tuple[int, int] = (0, 0)

    @property
    def messages(self) -> list[Message]:
        return [a.msg for a in self.arrivals if a.msg is not None]

    def original(self, index: int) -> Message | None:
        """The ``index``-th sale's original: the first 0200/0100 of its amount (after the earlier sales')."""
        start = 0
        msgs = self.messages
        for i, amount in enumerate(self.sales[:index + 1]):
            found = next((k for k in range(start, len(msgs)) if msgs[k].mti in ORIGINALS
                          and msgs[k].original is None and msgs[k].amount == amount), None)
            if found is None:
                return None
            if i == index:
                return msgs[found]
            start = found + 1
        return None

    def reversals_of(self, orig: Message) -> list[Message]:
        """Reversals that name ``orig``: field 90 (iso) or the same key, a copy of it (cup)."""
        return [a.msg for a in self.reversal_arrivals(orig) if a.msg is not None]

    def reversal_arrivals(self, orig: Message) -> list[Arrival]:
        """The arrivals of ``reversals_of``, each with whether the acquirer refused it."""
        key = orig.key()
        return [a for a in self.arrivals if a.msg is not None and a.msg.mti in REVERSALS
                and (a.msg.original.key(a.msg.tid) if a.msg.original is not None else a.msg.key()) == key]


def _money(minor: int | None) -> str:
    return format_amount(minor or 0)


def _said(m: Message) -> str:
    extra = f" F90={m.original.mti}/{m.original.stan}" if m.original is not None else ""
    rc = f" F39={m.response_code}" if m.response_code else ""
    return f"{m.mti} STAN {m.stan}{extra}{rc}"


def _first_sale(seen: Seen) -> Message | Verdict:
    orig = seen.original(0)
    if orig is None:
        return Verdict(FAIL, f"no 0200/0100 of {_money(seen.sales[0])} arrived")
    return orig


def check_untouched(seen: Seen) -> Verdict:
    """No reversal and no second copy of the sale: the answer (declined, doubled) settled it."""
    orig = _first_sale(seen)
    if isinstance(orig, Verdict):
        return orig
    revs = seen.reversals_of(orig)
    copies = [m for m in seen.messages if m.mti in ORIGINALS and m.key() == orig.key()]
    state = seen.state(orig)
    head = f"{_said(orig)} {_money(orig.amount)}: ledger {state}"
    if revs:
        return Verdict(FAIL, f"{head}, yet reversed: " + ", ".join(_said(r) for r in revs))
    if len(copies) > 1:
        return Verdict(FAIL, f"{head}, yet sent {len(copies)} times")
    return Verdict(PASS, f"{head}; no reversal, sent once")


def check_reversed(seen: Seen) -> Verdict:
    """The sale whose answer never came (or came too late, or with a wrong MAC) is reversed, and the ledger shows it."""
    orig = _first_sale(seen)
    if isinstance(orig, Verdict):
        return orig
    revs, state = seen.reversals_of(orig), seen.state(orig)
    if not revs:
        return Verdict(FAIL, f"{_said(orig)} {_money(orig.amount)}: no reversal arrived; ledger {state}")
    if state not in REVERSED:
        return Verdict(FAIL, f"{len(revs)} reversal(s) ({_said(revs[-1])}) but ledger {state}")
    return Verdict(PASS, f"{_said(orig)} reversed by {_said(revs[0])}; ledger {state}")


def check_names_original(seen: Seen) -> Verdict:
    """iso: every reversal names the original in field 90 (its MTI, STAN, field 7) with its amount;
    cup: a copy of the original (same STAN and field 7) with reason 98 in field 39 on the first try."""
    orig = _first_sale(seen)
    if isinstance(orig, Verdict):
        return orig
    revs = [m for m in seen.messages if m.mti in REVERSALS]
    if not revs:
        return Verdict(FAIL, f"{_said(orig)}: no reversal arrived")
    for rev in revs:
        problem = _naming_problem(seen.profile, orig, rev, rev is revs[0])
        if problem is not None:
            return Verdict(FAIL, f"{_said(rev)} for {_said(orig)}: {problem}")
    return Verdict(PASS, f"{len(revs)} reversal(s) of {_said(orig)}, each naming it: {_said(revs[0])}")


def _naming_problem(profile: str, orig: Message, rev: Message, first: bool) -> str | None:
    if rev.amount != orig.amount:
        return f"amount {_money(rev.amount)} is not the original's {_money(orig.amount)}"
    scheme = get_profile(profile)
    if scheme.reversal_copies_original:
        if rev.stan != orig.stan or rev.transmission != orig.transmission:
            return f"a {profile.upper()} reversal keeps the original's STAN (field 11)"
        if first and rev.response_code != scheme.reason_no_answer:
            return f"field 39 is {rev.response_code!r}, a reversal for no answer says {scheme.reason_no_answer}"
        return None
    o = rev.original
    if o is None:
        return "no field 90 (original data elements)"
    if (o.mti, o.stan, o.transmission) != (orig.mti, orig.stan, orig.transmission):
        return f"field 90 names {o.mti}/{o.stan}/{o.transmission}, not {orig.mti}/{orig.stan}/{orig.transmission}"
    return None


def check_repeats(seen: Seen) -> Verdict:
    """A refused reversal is repeated until one is acknowledged, and not after (iso: as 0401).

    cup: at most 3 tries in all, the first included, then the terminal stops: a 4th fails; a
    terminal whose 3 tries were all refused and that stops there passes (the debit is the
    acquirer's to settle by hand). Acknowledged means not refused by the acquirer (``Arrival.refused``).
    """
    orig = _first_sale(seen)
    if isinstance(orig, Verdict):
        return orig
    revs, state = seen.reversal_arrivals(orig), seen.state(orig)
    tries = ", ".join(_said(a.msg) + (" refused" if a.refused else "") for a in revs if a.msg is not None)
    if not revs:
        return Verdict(FAIL, f"{_said(orig)} {_money(orig.amount)}: no reversal arrived; ledger {state}")
    scheme = get_profile(seen.profile)
    most = scheme.reversal_attempts if scheme.escalates_after_tries else None
    if not scheme.reversal_copies_original and any(a.msg is not None and a.msg.mti != M.REVERSAL_REPEAT
                                                   for a in revs[1:]):
        return Verdict(FAIL, f"a repeated reversal is sent as 0401 (reversals: {tries})")
    if most is not None and len(revs) > most:
        return Verdict(FAIL, f"{len(revs)} tries: a {seen.profile.upper()} terminal stops after {most} "
                             f"(reversals: {tries})")
    acked = next((i for i, a in enumerate(revs) if not a.refused), None)
    if acked is None:
        if most is not None and len(revs) == most:
            return Verdict(PASS, f"reversals {tries}: each refused, stopped after {most}; ledger {state}")
        return Verdict(FAIL, f"the reversal was refused and not repeated until acknowledged (reversals: {tries}); "
                             f"ledger {state}")
    if acked < len(revs) - 1:
        return Verdict(FAIL, f"sent again after try {acked + 1} was acknowledged (reversals: {tries})")
    if state not in REVERSED:
        return Verdict(FAIL, f"reversals {tries} but ledger {state}")
    return Verdict(PASS, f"reversals {tries}; ledger {state}")


def check_reversal_first(seen: Seen) -> Verdict:
    """The reversal still owed for the first sale goes out before the next sale's original."""
    orig, nxt = seen.original(0), seen.original(1)
    if orig is None or nxt is None:
        return Verdict(FAIL, f"the sales of {', '.join(_money(s) for s in seen.sales)} did not all arrive")
    msgs = seen.messages
    revs = seen.reversals_of(orig)
    if not revs:
        return Verdict(FAIL, f"{_said(orig)} was never reversed; next: {_said(nxt)}")
    first = min(msgs.index(r) for r in revs)
    if first > msgs.index(nxt):
        return Verdict(FAIL, f"{_said(nxt)} went out before the owed reversal {_said(revs[0])}")
    return Verdict(PASS, f"{_said(revs[0])} before the next sale {_said(nxt)}")


def check_restart_reversal_first(seen: Seen) -> Verdict:
    """After a power loss mid-sale, the first financial message the terminal sends is the reversal it owes.

    Network management (08xx: the sign-on a terminal makes when it starts) may come before it:
    it moves no money and is how a restarted terminal tells the host which life it is in; so may a
    status query (0600) naming that sale: it moves no money either, and asks what to reverse.
    """
    orig = _first_sale(seen)
    if isinstance(orig, Verdict):
        return orig
    after = [a.msg for a in seen.arrivals if a.msg is not None and seen.restarted_at is not None
             and a.at >= seen.restarted_at and not a.msg.mti.startswith("08") and not _asks_about(a.msg, orig)]
    state = seen.state(orig)
    if not after:
        return Verdict(FAIL, f"{_said(orig)}: nothing arrived after the restart; ledger {state}")
    if after[0] not in seen.reversals_of(orig):
        return Verdict(FAIL, f"after the restart {_said(after[0])} came first, not a reversal of {_said(orig)}; "
                             f"ledger {state}")
    if state not in REVERSED:
        return Verdict(FAIL, f"after the restart {_said(after[0])} came first, but ledger {state}")
    return Verdict(PASS, f"killed after {_said(orig)}; first after the restart: {_said(after[0])}; ledger {state}")


def _asks_about(msg: Message, orig: Message) -> bool:
    """A status query naming ``orig`` in field 90."""
    return msg.mti == M.STATUS_QUERY and msg.original is not None and msg.original.key(msg.tid) == orig.key()


def check_settlement_totals(seen: Seen) -> Verdict:
    """The batch totals the terminal settles with (0500, field 48) are the approved sales the ledger holds."""
    from possim.protocol.cup import BatchTotals

    settlements = [m for m in seen.messages if m.mti == M.SETTLEMENT and m.batch_totals]
    amount, count = seen.approved
    booked = f"ledger: {count} approved, {_money(amount)}"
    if not settlements:
        return Verdict(FAIL, f"no 0500 arrived; {booked}")
    totals = BatchTotals.from_field48(settlements[0].batch_totals or "")
    said = f"0500 STAN {settlements[0].stan}: {totals.debit_count} sales, {_money(totals.debit_amount)}"
    if (totals.debit_amount, totals.debit_count) != (amount, count):
        return Verdict(FAIL, f"{said}; {booked}")
    return Verdict(PASS, f"{said}; {booked}")


def check_advice_forwarded(seen: Seen) -> Verdict:
    """A completion advice whose answer was lost is stored and sent again until answered: the hold is captured."""
    auth = next((m for m in seen.messages if m.mti == M.AUTH and m.amount == seen.sales[0]), None)
    if auth is None:
        return Verdict(FAIL, f"no 0100 of {_money(seen.sales[0])} arrived")
    advices = [m for m in seen.messages if m.mti in (M.ADVICE, M.ADVICE_REPEAT) and m.original is not None
               and m.original.key(m.tid) == auth.key()]
    state = seen.state(auth)
    tries = ", ".join(_said(a) for a in advices) or "none"
    if len(advices) < 2:
        return Verdict(FAIL, f"{_said(auth)}: the advice's answer was lost and it was not sent again "
                             f"(advices: {tries}); ledger {state}")
    if state != "captured":
        return Verdict(FAIL, f"advices {tries} but ledger {state}")
    return Verdict(PASS, f"{_said(auth)} completed by {tries}; ledger {state}")


CHECKS: Mapping[str, Callable[[Seen], Verdict]] = {
    "untouched": check_untouched, "reversed": check_reversed, "names-original": check_names_original,
    "repeats": check_repeats, "reversal-first": check_reversal_first,
    "restart-reversal-first": check_restart_reversal_first, "settlement-totals": check_settlement_totals,
    "advice-forwarded": check_advice_forwarded}


# -- the acquirer: a real one, recording -------------------------------------------------------------

@dataclass
class Acquirer:
    """The running acquirer: its address, ledger, and every frame it received, in order."""

    url: str
    ledger: Ledger
    arrivals: list[Arrival] = field(default_factory=list)
    #: The running case's status queries are answered IN_PROGRESS (``CaseModel.queries``).
    undecided: bool = False

    @property
    def address(self) -> str:
        return self.url.removeprefix("tcp://")

    def record(self, _now: float, data: bytes) -> None:
        try:
            msg: Message | None = codec.decode(data)
        except ProtocolError:
            msg = None
        self.arrivals.append(Arrival(time.monotonic(), msg, data))

    def noted(self, behaviour: str, _tid: str, _stan: str) -> None:
        """The host told of a behaviour it acted on: a refusal is of the frame just recorded
        (``MagicHost`` records a frame, then answers it, in one call)."""
        if behaviour == "reversal-refused-once" and self.arrivals:
            self.arrivals[-1] = replace(self.arrivals[-1], refused=True)

    def state(self, orig: Message) -> str | None:
        found = self.ledger.find(orig.key())
        return None if found is None else found.state


@contextlib.asynccontextmanager
async def acquirer(profile: str, workdir: Path, keys: Mapping[str, MacKey] | None,
                   late_after: float) -> AsyncIterator[Acquirer]:
    """A magic acquirer serving on a free loopback port until the block ends."""
    from possim.running.realtime import serve_acquirer

    url = f"tcp://127.0.0.1:{free_port()}"
    config = HostConfig(profile=profile)
    ledger = Ledger(str(workdir / "ledger.db"), default_balance=config.default_balance)
    acq = Acquirer(url, ledger)
    host = MagicHost(config, ledger, random.Random(), keys, late_after=late_after, record=acq.record,
                     on_behaviour=acq.noted, undecided=lambda: acq.undecided)
    ready, stop = asyncio.Event(), asyncio.Event()

    def log(event: str, **_fields: object) -> None:
        if event == "acquirer_ready":
            ready.set()

    try:
        endpoint = Endpoint(url, 1, client_id="possim-certify", dialect=get_profile(profile).dialect)
        wire = transports.open_url(url, endpoint)
    except TransportError as exc:
        ledger.close()
        raise CertifyError(str(exc)) from None
    task = asyncio.create_task(serve_acquirer(wire, host, log, stop))
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not ready.is_set():
            raise CertifyError(f"the acquirer could not listen on {url}")
        yield acq
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        ledger.close()


# -- terminals under test -------------------------------------------------------------------------

@dataclass(slots=True)
class Slot:
    """What one case gives the terminal: its terminal id, journal file and the acquirer's address
    (an interactive terminal has its own id: the one its first sale arrives with replaces ``tid``)."""

    tid: str
    journal: Path
    workdir: Path
    acq: Acquirer
    restarted_at: float | None = None
    exits: list[str] = field(default_factory=list)  # how terminal runs failed: the evidence when nothing arrived


class Terminal(Protocol):
    """Rings up a case's sales on the terminal under test; returns a problem, or None once it has finished."""

    @property
    def can_restart(self) -> bool: ...

    @property
    def can_settle(self) -> bool: ...

    @property
    def can_authorize(self) -> bool: ...

    async def ring_up(self, case: CaseModel, slot: Slot) -> str | None: ...


async def _start(argv: list[str], stderr: int = asyncio.subprocess.DEVNULL) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    except OSError as exc:
        raise CertifyError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None


async def _power_loss(argv: list[str], again: list[str], case: CaseModel, slot: Slot, limit: float) -> str | None:
    """Start the terminal, kill it (SIGKILL: no goodbye) once the case's first sale has arrived, start it again."""
    proc = await _start(argv)
    amount, deadline = parse_amount(case.sales[0]), time.monotonic() + limit
    try:
        while _arrived([a for a in slot.acq.arrivals if a.msg is not None and a.msg.tid == slot.tid], amount) is None:
            if proc.returncode is not None or time.monotonic() > deadline:
                return f"the sale of {case.sales[0]} did not arrive before the terminal ended"
            await asyncio.sleep(0.02)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    slot.restarted_at = time.monotonic()
    return await _run(again, limit, slot)


async def _run(argv: list[str], limit: float, slot: Slot) -> str | None:
    """Run one command to its end (bounded); a problem string if it cannot start or does not end.

    A failed run (exit status not 0) is noted on the slot with the last line it wrote on stderr:
    a terminal may well fail a sale it timed out, but when nothing arrived that line says why."""
    proc = await _start(argv, asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"the terminal did not finish within {limit:g} s"
    if proc.returncode:
        last = next((line.strip() for line in reversed(err.decode(errors="replace").splitlines()) if line.strip()),
                    "")
        slot.exits.append(f"the terminal exited with status {proc.returncode}" + (f": {last}" if last else ""))
    return None


@dataclass
class Builtin:
    """possim's own terminal (``possim terminal``) under ``policy``, one process per case."""

    policy: str
    profile: str
    timeout: float
    keys_path: Path | None
    case_timeout: float
    can_restart: bool = True
    can_settle: bool = True
    can_authorize: bool = True

    def scenario(self, case: CaseModel) -> str:
        sales = "".join(f'[[transactions]]\nat = {i * 0.1:.1f}\namount = "{a}"\n' for i, a in enumerate(case.sales))
        if case.completion is not None:
            sales = sales.replace("[[transactions]]\n", f'[[transactions]]\nkind = "auth"\ncompletion_amount = '
                                                          f'"{case.completion}"\n', 1)
        t = self.timeout
        return (f"title = {json.dumps('certify ' + case.id)}\ndescription = {json.dumps(case.rule)}\n"
                f'policy = "{self.policy}"\n'
                f'[terminal]\nprofile = "{self.profile}"\nresponse_timeout = {t}\nreversal_timeout = {t}\n'
                f"query_timeout = {t}\nadvice_timeout = {t}\nbackoff_initial = 0.2\nbackoff_max = 1.0\n"
                f"query_interval = 0.2\nadvice_attempts = 8\ncompletion_advice = true\n{sales}")

    async def ring_up(self, case: CaseModel, slot: Slot) -> str | None:
        path = slot.workdir / f"{case.id}.toml"
        path.write_text(self.scenario(case), encoding="utf-8")
        argv = [sys.executable, "-m", "possim", "terminal", str(path), "--transport",
                transports.for_url(slot.acq.url).name, "--connect", slot.acq.url, "--tid", slot.tid,
                "--journal", str(slot.journal), "--no-log"]
        if self.keys_path is not None:
            argv += ["--keys", str(self.keys_path)]
        if case.restart:  # the same terminal and journal again: it resumes what was in flight
            return await _power_loss(argv, argv, case, slot, self.case_timeout)
        problem = await _run(argv, self.case_timeout, slot)
        if problem is None and case.settle:  # end of day on the same journal
            problem = await _run([*argv[:3], "settle", *argv[4:]], self.case_timeout, slot)
        return problem


PLACEHOLDERS = ("address", "host", "port", "amount", "tid", "profile", "journal", "keys")


def check_command(template: str, option: str, *, rings_up: bool = False) -> None:
    """A command template names only known placeholders; one that ``rings_up`` a sale also names
    {amount} and where the acquirer listens ({address} or {port}: its port is new every run)."""
    import string

    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise CertifyError(f"{option}: {exc}") from None
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        raise CertifyError(f"{option}: unknown placeholder {{{sorted(unknown)[0]}}} "
                           f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
    if not shlex.split(template):
        raise CertifyError(f"{option}: empty command")
    if rings_up and "amount" not in names:
        raise CertifyError(f"{option}: no {{amount}}: the terminal must be told the sale to ring up")
    if rings_up and not names & {"address", "port"}:
        raise CertifyError(f"{option}: no {{address}} or {{port}}: the acquirer listens on a new port every run")


@dataclass
class Command:
    """Someone else's terminal, run once per sale: ``template`` with the placeholders filled in (no shell)."""

    template: str
    profile: str
    keys_path: Path | None
    case_timeout: float
    restart_template: str | None = None
    can_settle: bool = False
    can_authorize: bool = False

    @property
    def can_restart(self) -> bool:
        return self.restart_template is not None

    def argv(self, template: str, amount: str, slot: Slot) -> list[str]:
        host, _, port = slot.acq.address.rpartition(":")
        values = {"address": slot.acq.address, "host": host, "port": port, "amount": amount, "tid": slot.tid,
                  "profile": self.profile, "journal": str(slot.journal), "keys": str(self.keys_path or "")}
        return [part.format(**values) for part in shlex.split(template)]

    async def ring_up(self, case: CaseModel, slot: Slot) -> str | None:
        if case.restart and self.restart_template is not None:
            first = case.sales[0]
            return await _power_loss(self.argv(self.template, first, slot),
                                     self.argv(self.restart_template, first, slot), case, slot, self.case_timeout)
        for amount in case.sales:
            problem = await _run(self.argv(self.template, amount, slot), self.case_timeout, slot)
            if problem is not None:
                return problem
        return None


@dataclass
class Interactive:
    """A person rings up each sale; the case waits (bounded) for its original to arrive."""

    say: Callable[[str], None]
    case_timeout: float
    can_restart: bool = False
    can_settle: bool = False
    can_authorize: bool = False

    async def ring_up(self, case: CaseModel, slot: Slot) -> str | None:
        for amount in case.sales:
            minor = parse_amount(amount)
            start = len(slot.acq.arrivals)
            self.say(f"ring up {amount} on terminal {slot.tid} now (host {slot.acq.address})")
            deadline = time.monotonic() + self.case_timeout
            while (sale := _arrived(slot.acq.arrivals[start:], minor)) is None:
                if time.monotonic() > deadline:
                    return f"no sale of {amount} arrived within {self.case_timeout:g} s"
                await asyncio.sleep(0.1)
            slot.tid = sale.tid
        return None


def _arrived(arrivals: list[Arrival], amount: int) -> Message | None:
    return next((a.msg for a in arrivals if a.msg is not None and a.msg.mti in ORIGINALS and a.msg.amount == amount),
                None)


# -- running a plan -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Result:
    case: CaseModel
    index: int
    verdict: Verdict
    wire: tuple[Wire, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.case.id, "rule": self.case.rule, "reason": self.case.reason, "sales": list(self.case.sales),
                "check": self.case.check, "verdict": self.verdict.status, "evidence": self.verdict.evidence,
                "messages": [{"at": round(w.at, 4), "mti": w.mti, "fields": w.fields, "hex": w.data}
                             for w in self.wire]}


async def _quiet(acq: Acquirer, seconds: float, limit: float) -> None:
    """Wait until nothing has arrived for ``seconds`` (a reversal may still be on its way), at most ``limit``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        last = acq.arrivals[-1].at if acq.arrivals else 0.0
        if time.monotonic() - last >= seconds:
            return
        await asyncio.sleep(0.05)


async def run_case(case: CaseModel, index: int, tid: str, terminal: Terminal, acq: Acquirer, workdir: Path,
                   profile: str, have_keys: bool) -> Result:
    """Ring up the case's sales, then grade what the acquirer received from ``tid`` and its ledger."""
    if case.needs_keys and not have_keys:
        return Result(case, index, Verdict(NOT_RUN, NO_KEYS), ())
    if case.restart and not terminal.can_restart:
        return Result(case, index, Verdict(NOT_RUN, NO_RESTART), ())
    if case.settle and not terminal.can_settle:
        return Result(case, index, Verdict(NOT_RUN, NO_SETTLE), ())
    if case.completion is not None and not terminal.can_authorize:
        return Result(case, index, Verdict(NOT_RUN, NO_AUTH), ())
    start, began = len(acq.arrivals), time.monotonic()
    slot = Slot(tid, workdir / f"journal-{index:02d}.db", workdir, acq)
    acq.undecided = case.queries == "in-progress"
    try:
        problem = await terminal.ring_up(case, slot)
        await _quiet(acq, QUIET, 10.0)
    finally:
        acq.undecided = False
    arrivals = [a for a in acq.arrivals[start:] if a.msg is None or a.msg.tid == slot.tid]
    wire = tuple(Wire("received", a.at - began, None, a.msg.mti if a.msg else codec.peek_mti(a.data),
                      message_fields(a.msg) if a.msg else {}, a.data.hex(), None if a.msg else "undecodable")
                 for a in arrivals)
    problem = problem or (slot.exits[0] if slot.exits else None)
    if problem is not None and not arrivals:
        return Result(case, index, Verdict(FAIL, problem), wire)
    seen = Seen(profile, tuple(parse_amount(s) for s in case.sales), arrivals, acq.state, slot.restarted_at,
                acq.ledger.batch_totals(slot.tid, closed_too=True))
    return Result(case, index, CHECKS[case.check](seen), wire)


def tids(count: int) -> list[str]:
    """One terminal id per case, so each case's frames are its own."""
    return [f"CERT{i + 1:04d}" for i in range(count)]

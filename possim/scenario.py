"""Scenario files: TOML validated by pydantic into the configs of terminal, host and network.

A scenario is data. A bad file raises ``ScenarioError`` with one line naming the file,
the key and what is wrong; the CLI turns it into exit code 2. Defaults are not written
here: each model reads them from the core dataclass it builds (``TerminalConfig``,
``HostConfig``, ``Latency``, ``LinkFaults``, ``Rule``...), so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from possim.acquirer_sim.config import BehaviourRule, CrashRule, HostConfig, Window
from possim.fleets.alerts import Thresholds
from possim.i18n import N_
from possim.money.fees import Category, FeeSchedule, Instrument, Said, parse_rate
from possim.money.money import format_amount, parse_amount
from possim.pos_sim.config import TerminalConfig
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.pos_sim.records import Kind
from possim.pos_sim.terminal import PaymentRequest
from possim.protocol.faults import (
    Action,
    Direction,
    FaultPlan,
    ForgedMac,
    Forgery,
    ForgeryKind,
    LinkFaults,
    Partition,
    Rule,
)
from possim.protocol.latency import Distribution, Latency
from possim.protocol.mti import KNOWN
from possim.protocol.profiles import DEFAULT as DEFAULT_PROFILE
from possim.protocol.profiles import get_profile
from possim.protocol.wallet import KINDS as WALLET_KINDS
from possim.protocol.wallet import Provider

QR = "qr_wallet"


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``str()`` is the one-line message for the user."""


class _Model(BaseModel):
    # inf and nan are never a duration, a rate or a probability: refused wherever a float is read
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def default(cls: type[Any], name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``: the core dataclass is the one place it is written."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def _amount(text: str) -> str:
    parse_amount(text)
    return text


def _positive_amount(text: str) -> str:
    """Said before the format: "-5.00" is refused for its sign, not for its decimals."""
    try:
        value: Decimal | None = Decimal(text)
    except InvalidOperation:
        value = None
    if value is not None and value.is_finite() and value <= 0:
        raise ValueError(f"{text!r}: negative and zero amounts are not allowed (an amount is greater than zero)")
    parse_amount(text)
    return text


def _not_empty(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Checked after the items, so a bad item is not reported a second time as a missing one."""
    if not items:
        raise ValueError("at least one [[transactions]] is needed")
    return items


def _rate(text: str) -> str:
    parse_rate(text)
    return text


def _policy(name: str) -> str:
    return _check_policy(name, ValueError)


def _profile(name: str) -> str:
    """A profile name of the registry (``protocol.profiles``), asked when the file is read."""
    get_profile(name)
    return name


class _Duration:
    """Marks a field as a duration in seconds: ``scale_durations`` multiplies exactly these."""

    def __repr__(self) -> str:
        return "duration"


DURATION = _Duration()
#: The longest duration a scenario may name (a year). Scenarios describe seconds to days;
#: the bound refuses values no run could reach (1e300) before they overflow a computation.
MAX_SECONDS = 366 * 24 * 3600.0
#: The most retries of one kind: far beyond any acquirer's rules, and a run stays finite.
MAX_ATTEMPTS = 1000

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS), DURATION]
Timeout = Annotated[float, Field(gt=0, le=MAX_SECONDS), DURATION]
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)]
Probability = Annotated[float, Field(ge=0, le=1)]
#: Money as a decimal string ("25.00"), checked but kept as text (exact, no float).
Amount = Annotated[str, AfterValidator(_amount)]
PositiveAmount = Annotated[str, AfterValidator(_positive_amount)]
#: A fee rate as a percentage string ("0.6%").
Rate = Annotated[str, AfterValidator(_rate)]
PolicyName = Annotated[str, AfterValidator(_policy)]
ProfileName = Annotated[str, AfterValidator(_profile)]


class LatencyModel(_Model):
    dist: Distribution = default(Latency, "dist")
    value: Seconds = default(Latency, "value")
    low: Seconds = default(Latency, "low")
    high: Seconds = default(Latency, "high")
    #: seconds for "normal" (scaled with the rest), the dimensionless shape for "lognormal"
    sigma: Annotated[float, Field(ge=0, le=MAX_SECONDS)] = default(Latency, "sigma")
    jitter: Seconds = default(Latency, "jitter")

    @model_validator(mode="after")
    def _consistent(self) -> LatencyModel:
        if self.dist == "uniform" and self.high < self.low:
            raise ValueError("uniform latency needs low <= high")
        if self.dist == "lognormal" and self.value <= 0:
            raise ValueError("lognormal latency needs value (the median) > 0")
        return self

    @classmethod
    def of(cls, latency: Latency) -> LatencyModel:
        return cls(**{f.name: getattr(latency, f.name) for f in dataclasses.fields(latency)})

    def build(self) -> Latency:
        return Latency(self.dist, self.value, self.low, self.high, self.sigma, self.jitter)


class LinkModel(_Model):
    loss: Probability = default(LinkFaults, "loss")
    #: a scenario's link is a real one: 50 ms unless it says otherwise (the core's default is none)
    latency: LatencyModel = LatencyModel(value=0.05)
    duplicate: Probability = default(LinkFaults, "duplicate")
    reorder: Probability = default(LinkFaults, "reorder")
    reorder_window: Seconds = default(LinkFaults, "reorder_window")

    def build(self) -> LinkFaults:
        return LinkFaults(self.loss, self.latency.build(), self.duplicate, self.reorder, self.reorder_window)


class NetworkModel(_Model):
    to_host: LinkModel = LinkModel()
    to_terminal: LinkModel = LinkModel()


class FaultModel(_Model):
    action: Action
    direction: Direction
    mti: str
    nth: Annotated[int, Field(ge=1)] = default(Rule, "nth")
    delay: Seconds = default(Rule, "delay")

    @field_validator("mti")
    @classmethod
    def _known_mti(cls, v: str) -> str:
        if v not in KNOWN and v not in WALLET_KINDS:
            raise ValueError(f"unknown MTI {v!r} (known: {', '.join(sorted(KNOWN | WALLET_KINDS))})")
        return v


class PartitionModel(_Model):
    start: Seconds
    end: Seconds
    direction: Direction | Literal["both"] = default(Partition, "direction")

    @model_validator(mode="after")
    def _ordered(self) -> PartitionModel:
        if self.end <= self.start:
            raise ValueError("partition end must be after start")
        return self


class ForgeryModel(_Model):
    """An attacker's forged message at ``at`` (see ``protocol.faults.Forgery``)."""

    at: Seconds
    kind: ForgeryKind
    target: Annotated[int, Field(ge=1)] = default(Forgery, "target")
    mac: ForgedMac = default(Forgery, "mac")
    amount: PositiveAmount | None = None
    count: Annotated[int, Field(ge=1, le=10_000)] = default(Forgery, "count")

    def build(self) -> Forgery:
        amount = parse_amount(self.amount) if self.amount is not None else None
        return Forgery(self.at, self.kind, self.target, self.mac, amount, self.count)


class PowerLossModel(_Model):
    """The terminal loses power at ``at`` and boots again ``down_for`` seconds later."""

    at: Seconds
    down_for: Timeout = 30.0


def _terminal(name: str) -> Any:
    return default(TerminalConfig, name)


class TerminalModel(_Model):
    #: A profile (``protocol.profiles``): ``iso`` (possim's generic terminal) or ``cup`` (China
    #: UnionPay rules, CNY, UnionPay cards). Currency and reversal tries default to the profile's.
    profile: ProfileName = _terminal("profile")
    tid: Annotated[str, Field(pattern=r"^[ -~]{8}$")] = _terminal("tid")
    mid: Annotated[str, Field(pattern=r"^[ -~]{15}$")] = _terminal("mid")
    currency: Annotated[str, Field(pattern=r"^\d{3}$")] = get_profile(DEFAULT_PROFILE).currency
    stan_start: Annotated[int, Field(ge=1, le=999999)] = _terminal("stan_start")
    response_timeout: Timeout = _terminal("response_timeout")
    reversal_timeout: Timeout = _terminal("reversal_timeout")
    reversal_attempts: Attempts = get_profile(DEFAULT_PROFILE).reversal_attempts
    backoff_initial: Seconds = _terminal("backoff_initial")
    backoff_factor: Annotated[float, Field(ge=1)] = _terminal("backoff_factor")
    backoff_max: Seconds = _terminal("backoff_max")
    query_timeout: Timeout = _terminal("query_timeout")
    query_attempts: Attempts = _terminal("query_attempts")
    query_interval: Seconds = _terminal("query_interval")
    advice_timeout: Timeout = _terminal("advice_timeout")
    advice_attempts: Attempts = _terminal("advice_attempts")
    completion_advice: bool = _terminal("completion_advice")
    #: Host addresses, primary first; with two or more the terminal fails over (``protocol.lines``).
    hosts: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = ()
    failover_after: Annotated[int, Field(ge=1, le=100)] = _terminal("failover_after")

    @model_validator(mode="after")
    def _hosts_differ(self) -> TerminalModel:
        if len(set(self.hosts)) != len(self.hosts):
            raise ValueError("hosts: each address once")
        return self

    @model_validator(mode="after")
    def _backoff_fits(self) -> TerminalModel:
        """The terminal computes ``backoff_initial * backoff_factor ** attempt``: refuse what overflows a float."""
        try:
            TerminalConfig(**self.model_dump()).backoff(max(self.reversal_attempts, self.advice_attempts))
        except OverflowError:
            raise ValueError("backoff_factor is too large for the number of attempts: backoff_factor ** attempts "
                             "overflows") from None
        return self


class SettlementModel(_Model):
    """End of the day: at ``at`` the terminal settles (0500 batch totals, 0320 uploads if out of balance)."""

    at: Seconds


class CrashModel(_Model):
    mti: Literal["0100", "0200"]
    nth: Annotated[int, Field(ge=1)] = default(CrashRule, "nth")
    down_for: Seconds = default(CrashRule, "down_for")


class WindowModel(_Model):
    start: Seconds
    end: Seconds


def _host(name: str) -> Any:
    return default(HostConfig, name)


def _behaviour(name: str) -> str:
    from possim.acquirer_sim.magic import NAMES  # the table's module imports the host: read it when needed

    if name not in NAMES:
        raise ValueError(f"unknown behaviour {name!r} (choose from {', '.join(NAMES)})")
    return name


class BehaviourModel(_Model):
    """``[[host.behaviours]]``: a behaviour for every sale matching all the keys given."""

    behaviour: Annotated[str, AfterValidator(_behaviour)]
    amount: PositiveAmount | None = None
    tid: Annotated[str, Field(pattern=r"^[ -~]{8}$")] | None = None
    pan: Annotated[str, Field(pattern=r"^\d{12,19}$")] | None = None

    @model_validator(mode="after")
    def _keyed(self) -> BehaviourModel:
        if self.amount is None and self.tid is None and self.pan is None:
            raise ValueError("a behaviour needs amount, tid or pan to say which sales it is for")
        return self

    def build(self) -> BehaviourRule:
        return BehaviourRule(self.behaviour, parse_amount(self.amount) if self.amount else None, self.tid, self.pan)


class HostModel(_Model):
    processing: LatencyModel = LatencyModel.of(_host("processing"))
    quick: LatencyModel = LatencyModel.of(_host("quick"))
    decline_pans: tuple[str, ...] = tuple(_host("decline_pans"))
    decline_over: Amount | None = _host("decline_over")
    issuer_unavailable: tuple[WindowModel, ...] = ()
    crash_after_commit: tuple[CrashModel, ...] = ()
    accounts: dict[str, Amount] = {}
    default_balance: Amount = format_amount(_host("default_balance"))
    #: Answer the 1st, 2nd... reversal received with these codes, crediting nothing.
    reversal_answers: tuple[Annotated[str, Field(pattern=r"^[0-9A-Z]{2}$")], ...] = ()
    #: Card number -> the issuer's decline for it: 05, 13 (invalid amount), 14 (invalid card),
    #: 51 (insufficient funds), 55 (wrong PIN).
    decline_codes: dict[Annotated[str, Field(pattern=r"^\d{12,19}$")], Literal["05", "13", "14", "51", "55"]] = {}
    #: CUP profile: windows in which the issuer does not answer; the host answers the terminal
    #: ``issuer_timeout_code`` (98 or 68) and reverses towards the issuer itself.
    issuer_timeouts: tuple[WindowModel, ...] = ()
    issuer_timeout_code: Literal["98", "68"] = _host("issuer_timeout_code")
    #: Host behaviours by amount, terminal or card (acquirer_sim.magic); honoured by ``possim acquirer``.
    behaviours: tuple[BehaviourModel, ...] = ()
    #: Per-card limits: a sale past the card's total is answered 61, past its number of sales 65.
    card_amount_limit: PositiveAmount | None = None
    card_count_limit: Annotated[int, Field(ge=1, le=100_000)] | None = None


class TransactionModel(_Model):
    at: Seconds = 0.0
    kind: Kind = "purchase"
    amount: PositiveAmount
    completion_amount: PositiveAmount | None = None
    pan: Annotated[str, Field(pattern=r"^\d{12,19}$")] = "4000000000000002"
    count: Annotated[int, Field(ge=1, le=100_000)] = 1
    every: Seconds = 60.0
    customer_retries: bool = False
    retry_after: Seconds = 20.0
    card_type: Instrument = default(PaymentRequest, "instrument")
    #: QR wallet payments (card_type = "qr_wallet"): whose gateway, and how the customer behaves
    #: once the code is scanned (docs/wallet.md).
    provider: Provider | None = None  # default: alipay
    confirm_after: Seconds | None = None  # default: 0, no password needed
    gives_up: bool | None = None  # default: false
    wallet_balance: Amount | None = None  # default: the host's default_balance
    #: After a failed screen (with customer_retries) the customer pays again by this
    #: instrument: a rescan ("qr_wallet") or a card; by default the same as before.
    retry_with: Instrument | None = None
    #: The wallet gateway answers this payment's requests of kind ``wallet_error_on`` (its first
    #: ``wallet_error_times``) with a system error: WeChat Pay's SYSTEMERROR or BANKERROR, Alipay's
    #: ACQ.SYSTEM_ERROR for either; ``wallet_error_done``: after doing the work (docs/wallet.md).
    wallet_error: Literal["SYSTEMERROR", "BANKERROR"] | None = None
    wallet_error_on: Literal["pay", "query", "cancel", "refund"] = "pay"
    wallet_error_times: Attempts = 1
    wallet_error_done: bool = True

    @model_validator(mode="after")
    def _wallet_error_fits(self) -> TransactionModel:
        if self.wallet_error is not None and QR not in (self.card_type, self.retry_with):
            raise ValueError("wallet_error applies to a wallet payment (card_type or retry_with = \"qr_wallet\")")
        if self.wallet_error == "BANKERROR" and (self.provider or "alipay") != "wechat":
            raise ValueError("wallet_error = \"BANKERROR\" is WeChat Pay's: set provider = \"wechat\"")
        return self


class WalletTimingModel(_Model):
    """One provider's timings (docs/wallet.md): the QR terminal's, and the gateway's auto-close."""

    answer_timeout: Timeout = 10.0
    query_interval: Seconds = 5.0
    pay_limit: Seconds = 30.0
    cancel_min: Seconds = 0.0
    cancel_interval: Seconds = 2.0
    cancel_attempts: Attempts = 10
    query_attempts: Attempts = 60
    auto_close: Timeout = 180.0


def _provider_timing(provider: str) -> WalletTimingModel:
    from possim.acquirer_sim.wallet import AUTO_CLOSE
    from possim.pos_sim.wallet_policies import PROFILES

    t = PROFILES[provider]
    return WalletTimingModel(**{f.name: getattr(t, f.name) for f in dataclasses.fields(t)},
                             auto_close=AUTO_CLOSE[provider])


class WalletModel(_Model):
    """``[wallet.alipay]`` / ``[wallet.wechat]``: override the documented timings (all scale with time)."""

    alipay: WalletTimingModel = _provider_timing("alipay")
    wechat: WalletTimingModel = _provider_timing("wechat")


class MerchantModel(_Model):
    """The merchant's fee category and any rate overrides ("0.6%")."""

    category: Category = default(FeeSchedule, "category")
    fees: dict[Literal["standard", "discounted", "welfare", "debit", "qr_wallet"], Rate] = {}
    debit_cap: Amount = str(default(FeeSchedule, "debit_cap"))


#: The most terminals one scenario may hold (all groups together) and the most host shards.
MAX_TERMINALS = 100_000
MAX_HOSTS = 64


def _tid_pattern(pattern: str) -> str:
    """A terminal id pattern must yield 8 printable characters without MQTT wildcards for a number ``n``."""
    try:
        sample = pattern.format(n=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"terminal id pattern {pattern!r} must use only {{n}}, e.g. 'SHOP{{n:04d}}': {exc}") from None
    if "{n" not in pattern:
        raise ValueError(f"terminal id pattern {pattern!r} needs {{n}}, e.g. 'SHOP{{n:04d}}'")
    _tid_ok(sample, pattern)
    return pattern


def _tid_ok(tid: str, pattern: str) -> None:
    if len(tid) != 8 or not tid.isprintable() or any(c in tid for c in "+#/"):
        raise ValueError(f"terminal id pattern {pattern!r} gives {tid!r}: a terminal id is 8 printable "
                         "characters without + # /")


class TerminalGroupModel(_Model):
    """``[[terminals]]``: ``count`` terminals alike, each with its own id, STAN, journal and schedule.

    Terminal ``n`` (``first`` .. ``first + count - 1``) is named ``tid.format(n=n)``. A group
    without its own ``[[terminals.transactions]]`` runs the scenario's ``[[transactions]]``;
    ``spread`` staggers the terminals: terminal number ``i`` of the group (from 0) starts its
    schedule ``i * spread / count`` seconds later, so a chain's tills do not all pay at once.
    ``network`` replaces the scenario's ``[network]`` for this group; partitions and targeted
    faults of the scenario apply to every terminal (each counts its own nth message).
    """

    name: str = ""
    count: Annotated[int, Field(ge=1, le=MAX_TERMINALS)] = 1
    tid: Annotated[str, AfterValidator(_tid_pattern)] = "T{n:07d}"
    first: Annotated[int, Field(ge=0, le=10**8)] = 1
    mid: Annotated[str, Field(pattern=r"^[ -~]{15}$")] | None = None
    category: Category | None = None
    policy: PolicyName | None = None
    network: NetworkModel | None = None
    spread: Seconds = 0.0
    transactions: tuple[TransactionModel, ...] = ()

    def tids(self) -> list[str]:
        return [self.tid.format(n=n) for n in range(self.first, self.first + self.count)]


def _fleet(groups: tuple[TerminalGroupModel, ...]) -> tuple[TerminalGroupModel, ...]:
    """Every terminal id of the fleet is 8 characters and unique across groups; the fleet has a bounded size."""
    if sum(g.count for g in groups) > MAX_TERMINALS:
        raise ValueError(f"at most {MAX_TERMINALS} terminals in all groups together")
    names = [g.name for g in groups if g.name]
    if len(names) != len(set(names)):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"two groups are named {twice[0]!r}: each group needs its own name (or none)")
    seen: set[str] = set()
    for g in groups:
        for tid in g.tids():
            _tid_ok(tid, g.tid)
            if tid in seen:
                raise ValueError(f"terminal id {tid!r} is in two groups (or twice in one)")
            seen.add(tid)
    return groups


class LineOutageModel(_Model):
    """``[[line_outages]]``: the host line ``host`` (one of ``[terminal] hosts``) is cut from start to end."""

    host: str
    start: Seconds
    end: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> LineOutageModel:
        if self.end <= self.start:
            raise ValueError("line outage end must be after start")
        return self


class MonitoringModel(_Model):
    """``[monitoring]``: a fleet's alert thresholds per terminal (``possim.fleets.alerts``)."""

    timeouts: Annotated[int, Field(ge=1, le=1_000_000)] = default(Thresholds, "timeouts")
    orphaned_debits: Annotated[int, Field(ge=1, le=1_000_000)] = default(Thresholds, "orphaned_debits")


class ScenarioModel(_Model):
    title: str
    description: str
    #: The run's business date and time: t = 0 of the run is this moment on the terminal's and the
    #: host's clocks (field 7, RRNs, slips, the statement's days). TOML: ``start = 2026-12-07T14:00:00``.
    start: datetime = _terminal("epoch")
    seed: int = 1
    policy: PolicyName = _terminal("policy")
    terminal: TerminalModel = TerminalModel()
    host: HostModel = HostModel()
    network: NetworkModel = NetworkModel()
    faults: tuple[FaultModel, ...] = ()
    partitions: tuple[PartitionModel, ...] = ()
    merchant: MerchantModel = MerchantModel()
    power_losses: tuple[PowerLossModel, ...] = ()
    #: Every message carries a MAC under keys derived from the run's seed; false shows a run without.
    mac: bool = True
    forgeries: tuple[ForgeryModel, ...] = ()
    #: End-of-day settlement; none: the run ends without one (as before settlement existed).
    settlement: SettlementModel | None = None
    wallet: WalletModel | None = None
    transactions: Annotated[tuple[TransactionModel, ...], AfterValidator(_not_empty)]
    #: A fleet: groups of terminals sharing the host(s); none means the one ``[terminal]``.
    terminals: Annotated[tuple[TerminalGroupModel, ...], AfterValidator(_fleet)] = ()
    #: Host shards: terminal ids are spread over this many hosts, each with its own ledger.
    hosts: Annotated[int, Field(ge=1, le=MAX_HOSTS)] = 1
    #: Host lines cut for a while (``[terminal] hosts``): what is sent over one then is lost.
    line_outages: tuple[LineOutageModel, ...] = ()
    #: Alert thresholds of a fleet's report (terminals whose timeouts or orphaned debits reach them).
    monitoring: MonitoringModel = MonitoringModel()
    expect: dict[str, Any] = {}

    @model_validator(mode="after")
    def _outages_name_lines(self) -> ScenarioModel:
        for outage in self.line_outages:
            if outage.host not in self.terminal.hosts:
                raise ValueError(f"line_outages: host {outage.host!r} is not one of [terminal] hosts")
        return self

    @model_validator(mode="after")
    def _fleet_fits(self) -> ScenarioModel:
        if self.terminals and self.power_losses:
            raise ValueError("[[power_losses]] apply to the single [terminal]; a fleet ([[terminals]]) has none")
        return self

    @field_validator("expect")
    @classmethod
    def _expect(cls, v: dict[str, Any]) -> dict[str, Any]:
        from possim.judging.expect import validate_expect

        validate_expect(v)
        return v


class Scenario:
    """A validated scenario, with builders for each component's configuration."""

    def __init__(self, model: ScenarioModel, path: Path | None = None) -> None:
        #: As the file says; ``model`` is it with its profile's defaults filled in.
        self.base = model
        self.model = _profiled(model, model.terminal.profile)
        self.path = path

    @property
    def profile(self) -> str:
        return self.model.terminal.profile

    def with_profile(self, profile: str | None) -> Scenario:
        """The same scenario under ``profile`` (the command line's ``--profile``): values the file
        names stay, the others take the profile's defaults (currency, reversal tries, test card)."""
        if profile is None or profile == self.profile:
            return self
        try:
            get_profile(profile)
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        terminal = self.base.terminal.model_copy(update={"profile": profile})
        twin = Scenario(self.base.model_copy(update={"terminal": terminal}), self.path)
        twin.base = self.base
        return twin

    def in_market(self, lang: str) -> Scenario:
        """The same scenario set in the world of ``lang``'s audience (docs/glossary.md, "Market").

        A Chinese class pays in yuan with UnionPay cards: where the file pins no currency, the
        terminal works in CNY (156), and the generic test cards (``4000 0000 0000 xxxx``, the default
        ``4000000000000002`` among them) become UnionPay test cards (``6212 3456 7890 xxxx``, the
        default the cup profile's ``6212345678901232``) everywhere the file names them: sales,
        accounts, declines, behaviours. Money amounts, timings and verdicts do not change.
        English keeps the scenario as written.
        """
        market = MARKETS.get(lang)
        if market is None:
            return self
        base = _in_market(self.base, market)
        if base == self.base:
            return self
        twin = Scenario(base, self.path)
        return twin.with_profile(self.profile)  # a --profile given before keeps its word

    @property
    def is_fleet(self) -> bool:
        """Whether the scenario names terminal groups (``[[terminals]]``) rather than the one ``[terminal]``."""
        return bool(self.model.terminals)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.model.title

    def raw(self) -> dict[str, Any]:
        """The scenario as plain data (JSON- and TOML-ready), with every default filled in."""
        return self.model.model_dump(mode="json", exclude_none=True)

    def scaled(self, factor: float) -> Scenario:
        """The same scenario with every duration times ``factor``; ``ScenarioError`` if one leaves its range."""
        if factor == 1.0:
            return self
        model = self.model
        if model.wallet is None and any(QR in (t.card_type, t.retry_with) for t in model.transactions):
            model = model.model_copy(update={"wallet": WalletModel()})  # the wallet's timings scale too
        return from_dict(_scaled(model, factor), self.path)

    def wallet_timings(self) -> WalletModel:
        return self.model.wallet or WalletModel()

    def terminal_config(self, policy: str) -> TerminalConfig:
        return TerminalConfig(policy=policy, epoch=self.model.start, **self.model.terminal.model_dump())

    def host_config(self) -> HostConfig:
        h = self.model.host
        return HostConfig(
            processing=h.processing.build(), quick=h.quick.build(),
            decline_pans=frozenset(h.decline_pans),
            decline_over=parse_amount(h.decline_over) if h.decline_over else None,
            issuer_unavailable=tuple(Window(w.start, w.end) for w in h.issuer_unavailable),
            crash_after_commit=tuple(CrashRule(c.mti, c.nth, c.down_for) for c in h.crash_after_commit),
            accounts={pan: parse_amount(b) for pan, b in h.accounts.items()},
            default_balance=parse_amount(h.default_balance),
            reversal_answers=h.reversal_answers,
            profile=self.profile,
            decline_codes=dict(h.decline_codes),
            issuer_timeouts=tuple(Window(w.start, w.end) for w in h.issuer_timeouts),
            issuer_timeout_code=h.issuer_timeout_code,
            behaviours=tuple(b.build() for b in h.behaviours),
            card_amount_limit=parse_amount(h.card_amount_limit) if h.card_amount_limit else None,
            card_count_limit=h.card_count_limit,
            epoch=self.model.start,
        )

    def thresholds(self) -> Thresholds:
        return Thresholds(self.model.monitoring.timeouts, self.model.monitoring.orphaned_debits)

    def fee_schedule(self, category: Category | None = None) -> FeeSchedule:
        """The merchant's fees; ``category`` replaces the merchant's (a fleet group's own category)."""
        m = self.model.merchant
        rates = {k: parse_rate(v) for k, v in m.fees.items()}
        return FeeSchedule(category=category or m.category, debit_cap=Decimal(m.debit_cap), **rates)

    def fault_plan(self, network: NetworkModel | None = None) -> FaultPlan:
        """The network's faults; ``network`` replaces the scenario's ``[network]`` (a fleet group's own)."""
        m = self.model
        net = network or m.network
        return FaultPlan(
            to_host=net.to_host.build(), to_terminal=net.to_terminal.build(),
            rules=tuple(Rule(f.action, f.direction, f.mti, f.nth, f.delay) for f in m.faults),
            partitions=tuple(Partition(p.start, p.end, p.direction) for p in m.partitions),
            forgeries=tuple(f.build() for f in m.forgeries),
        )


def _profiled(model: ScenarioModel, profile: str) -> ScenarioModel:
    """``model`` with ``profile``'s defaults where the file names no value of its own."""
    scheme, terminal = get_profile(profile), model.terminal
    defaults = {k: v for k, v in scheme.defaults().items()
                if k not in terminal.model_fields_set and getattr(terminal, k) != v}
    card = scheme.card
    transactions = tuple(t if "pan" in t.model_fields_set or t.pan == card else t.model_copy(update={"pan": card})
                         for t in model.transactions)
    if not defaults and transactions == model.transactions:  # the model's defaults are the profile's
        return model
    return model.model_copy(update={"terminal": terminal.model_copy(update=defaults),
                                    "transactions": transactions})


#: A language's market: its currency (field 49) and the prefix of its test cards (docs/glossary.md).
MARKETS: dict[str, dict[str, str]] = {"zh": {"currency": "156", "prefix": "621234" "567890",
                                             "card": get_profile("cup").card}}
#: Prefixes, not card numbers: written in parts so the check of every shipped card number reads whole cards only.
_GENERIC_PREFIX = "4" + "0" * 11


def _card(pan: str, market: dict[str, str]) -> str:
    """A generic test card in ``market``'s range: the default card to the market's, others by their last 4 digits
    (both prefixes have the same Luhn weight, so the check digit stays right)."""
    if pan == get_profile(DEFAULT_PROFILE).card:
        return market["card"]
    if len(pan) == 16 and pan.startswith(_GENERIC_PREFIX):
        return market["prefix"] + pan[len(_GENERIC_PREFIX):]
    return pan


def _sales_in_market(sales: tuple[TransactionModel, ...], market: dict[str, str]) -> tuple[TransactionModel, ...]:
    return tuple(t.model_copy(update={"pan": _card(t.pan, market)}) if _card(t.pan, market) != t.pan else t
                 for t in sales)


def _in_market(model: ScenarioModel, market: dict[str, str]) -> ScenarioModel:
    """``model`` with the market's currency (unless pinned) and its generic test cards in the market's range."""
    terminal = model.terminal
    if "currency" not in terminal.model_fields_set and "profile" not in terminal.model_fields_set:
        terminal = terminal.model_copy(update={"currency": market["currency"]})
    h = model.host
    host = h.model_copy(update={
        "decline_pans": tuple(_card(p, market) for p in h.decline_pans),
        "accounts": {_card(p, market): b for p, b in h.accounts.items()},
        "decline_codes": {_card(p, market): c for p, c in h.decline_codes.items()},
        "behaviours": tuple(b.model_copy(update={"pan": _card(b.pan, market)}) if b.pan else b for b in h.behaviours),
    })
    groups = tuple(g.model_copy(update={"transactions": _sales_in_market(g.transactions, market)})
                   for g in model.terminals)
    return model.model_copy(update={"terminal": terminal, "host": host, "terminals": groups,
                                    "transactions": _sales_in_market(model.transactions, market)})


def _scaled(model: BaseModel, f: float) -> dict[str, Any]:
    """The model's fields as data, every field marked ``DURATION`` multiplied by ``f``, recursively."""
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if _is_duration(info.metadata, info.annotation):
            if value is not None:
                value = value * f
        elif isinstance(value, BaseModel):
            value = _scaled(value, f)
        elif isinstance(value, tuple):
            value = [_scaled(v, f) if isinstance(v, BaseModel) else v for v in value]
        out[name] = value
    if isinstance(model, LatencyModel) and model.dist == "normal":
        out["sigma"] = model.sigma * f
    return out


def _is_duration(metadata: list[Any], annotation: Any) -> bool:
    """A duration field, also an optional one (``Seconds | None``), whose marker sits inside the union."""
    return DURATION in metadata or any(DURATION in getattr(arg, "__metadata__", ()) for arg in get_args(annotation))


def scale_durations(raw: dict[str, Any], f: float) -> dict[str, Any]:
    """Every duration of a scenario (timeouts, latencies, retries, partitions, schedule) times ``f``.

    Real transports run in real time; ``--time-scale`` makes a 30-second scenario take a
    fraction of that while keeping every ratio, so verdicts do not depend on it. Which fields
    are durations is said once, by their type (``Seconds``, ``Timeout``), not listed here.
    """
    return _scaled(from_dict(raw).model, f)


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file, or a shipped one by name ("response-lost"); every problem
    becomes one ``ScenarioError`` line."""
    from possim import shipped

    given, path = path, shipped.resolve(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(shipped.missing(given)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(Said(N_("{path}: cannot read: {error}"), path=str(path), error=exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(Said(N_("{path}: not valid TOML: {error}"), path=str(path), error=exc)) from None
    return from_dict(raw, path)


def from_dict(raw: dict[str, Any], path: Path | None = None) -> Scenario:
    try:
        return Scenario(ScenarioModel.model_validate(raw), path)
    except ValidationError as exc:
        raise ScenarioError(f"{path or 'scenario'}: {'; '.join(problems(exc))}") from None


def problems(exc: ValidationError) -> list[str]:
    """Every problem of a scenario, each as ``key.path: what is wrong``; unknown keys first.

    An unknown key is usually a typo, and the same typo also makes the intended key
    "required": the unknown key, with the name it was probably meant to be, explains both.
    """
    unknown, other = [], []
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            unknown.append(f"{where}: unknown key{_suggestion(loc)}")
        else:
            msg = "required" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
            other.append(msg if msg.startswith(f"{where}.") else f"{where}: {msg}")  # "expect.x: ..." says where
    return unknown + other


def _suggestion(loc: tuple[int | str, ...]) -> str:
    """" (did you mean 'amount'?)" for a key close to one its table knows, else the keys it knows."""
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the table at ``loc`` in a scenario (list indexes skipped), or None if it is not one."""
    model: type[BaseModel] = ScenarioModel
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or inside ``X | None``, ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def check_policy(policy: str) -> str:
    return _check_policy(policy, ScenarioError)


def _check_policy(policy: str, error: type[Exception]) -> str:
    if policy not in POLICY_REGISTRY:
        raise error(f"unknown policy {policy!r} (choose from {', '.join(POLICY_REGISTRY.names())})")
    return policy

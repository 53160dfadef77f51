"""Scenario files: TOML validated by pydantic into the configs of terminal, host and network.

A scenario is data. A bad file raises ``ScenarioError`` with one line naming the file,
the key and what is wrong; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from acquirer_sim.config import CrashRule, HostConfig, Window
from pos_sim.config import POLICIES, TerminalConfig
from possim.fees import FeeSchedule, parse_rate
from possim.money import parse_amount
from protocol import mti as M
from protocol.faults import FaultPlan, LinkFaults, Partition, Rule
from protocol.latency import Latency


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``str()`` is the one-line message for the user."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _amount(text: str) -> str:
    parse_amount(text)
    return text


def _positive_amount(text: str) -> str:
    if parse_amount(text) <= 0:
        raise ValueError("amount must be greater than zero")
    return text


def _not_empty(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Checked after the items, so a bad item is not reported a second time as a missing one."""
    if not items:
        raise ValueError("at least one [[transactions]] is needed")
    return items


def _rate(text: str) -> str:
    parse_rate(text)
    return text


Seconds = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
#: Money as a decimal string ("25.00"), checked but kept as text (exact, no float).
Amount = Annotated[str, AfterValidator(_amount)]
PositiveAmount = Annotated[str, AfterValidator(_positive_amount)]
#: A fee rate as a percentage string ("0.6%").
Rate = Annotated[str, AfterValidator(_rate)]


class LatencyModel(_Model):
    dist: Literal["constant", "uniform", "normal", "lognormal"] = "constant"
    value: Seconds = 0.0
    low: Seconds = 0.0
    high: Seconds = 0.0
    sigma: Seconds = 0.0
    jitter: Seconds = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> LatencyModel:
        if self.dist == "uniform" and self.high < self.low:
            raise ValueError("uniform latency needs low <= high")
        if self.dist == "lognormal" and self.value <= 0:
            raise ValueError("lognormal latency needs value (the median) > 0")
        return self

    def build(self) -> Latency:
        return Latency(self.dist, self.value, self.low, self.high, self.sigma, self.jitter)


class LinkModel(_Model):
    loss: Probability = 0.0
    latency: LatencyModel = LatencyModel(value=0.05)
    duplicate: Probability = 0.0
    reorder: Probability = 0.0
    reorder_window: Seconds = 1.0

    def build(self) -> LinkFaults:
        return LinkFaults(self.loss, self.latency.build(), self.duplicate, self.reorder, self.reorder_window)


class NetworkModel(_Model):
    to_host: LinkModel = LinkModel()
    to_terminal: LinkModel = LinkModel()


class FaultModel(_Model):
    action: Literal["drop", "delay", "duplicate"]
    direction: Literal["to_host", "to_terminal"]
    mti: str
    nth: Annotated[int, Field(ge=1)] = 1
    delay: Seconds = 0.0

    @field_validator("mti")
    @classmethod
    def _known_mti(cls, v: str) -> str:
        if v not in M.KNOWN:
            raise ValueError(f"unknown MTI {v!r} (known: {', '.join(sorted(M.KNOWN))})")
        return v


class PartitionModel(_Model):
    start: Seconds
    end: Seconds
    direction: Literal["both", "to_host", "to_terminal"] = "both"

    @model_validator(mode="after")
    def _ordered(self) -> PartitionModel:
        if self.end <= self.start:
            raise ValueError("partition end must be after start")
        return self


class PowerLossModel(_Model):
    """The terminal loses power at ``at`` and boots again ``down_for`` seconds later."""

    at: Seconds
    down_for: Annotated[float, Field(gt=0)] = 30.0


class TerminalModel(_Model):
    tid: Annotated[str, Field(pattern=r"^[ -~]{8}$")] = "POS00001"
    mid: Annotated[str, Field(pattern=r"^[ -~]{15}$")] = "MERCHANT0000001"
    currency: Annotated[str, Field(pattern=r"^\d{3}$")] = "978"
    stan_start: Annotated[int, Field(ge=1, le=999999)] = 1
    response_timeout: Annotated[float, Field(gt=0)] = 30.0
    reversal_timeout: Annotated[float, Field(gt=0)] = 30.0
    reversal_attempts: Annotated[int, Field(ge=1)] = 6
    backoff_initial: Seconds = 5.0
    backoff_factor: Annotated[float, Field(ge=1)] = 2.0
    backoff_max: Seconds = 60.0
    query_timeout: Annotated[float, Field(gt=0)] = 10.0
    query_attempts: Annotated[int, Field(ge=1)] = 3
    query_interval: Seconds = 5.0
    advice_timeout: Annotated[float, Field(gt=0)] = 30.0
    advice_attempts: Annotated[int, Field(ge=1)] = 8


class CrashModel(_Model):
    mti: Literal["0100", "0200"]
    nth: Annotated[int, Field(ge=1)] = 1
    down_for: Seconds = 60.0


class WindowModel(_Model):
    start: Seconds
    end: Seconds


class HostModel(_Model):
    processing: LatencyModel = LatencyModel(value=0.2)
    quick: LatencyModel = LatencyModel(value=0.05)
    decline_pans: tuple[str, ...] = ()
    decline_over: Amount | None = None
    issuer_unavailable: tuple[WindowModel, ...] = ()
    crash_after_commit: tuple[CrashModel, ...] = ()
    accounts: dict[str, Amount] = {}
    default_balance: Amount = "1000000.00"
    #: Answer the 1st, 2nd... reversal received with these codes, crediting nothing.
    reversal_answers: tuple[Annotated[str, Field(pattern=r"^[0-9A-Z]{2}$")], ...] = ()


class TransactionModel(_Model):
    at: Seconds = 0.0
    kind: Literal["purchase", "auth"] = "purchase"
    amount: PositiveAmount
    completion_amount: PositiveAmount | None = None
    pan: Annotated[str, Field(pattern=r"^\d{12,19}$")] = "4000000000000002"
    count: Annotated[int, Field(ge=1, le=100_000)] = 1
    every: Seconds = 60.0
    customer_retries: bool = False
    retry_after: Seconds = 20.0
    card_type: Literal["credit", "debit", "qr_wallet", "unionpay_qr"] = "credit"


class MerchantModel(_Model):
    """The merchant's fee category and any rate overrides ("0.6%")."""

    category: Literal["standard", "supermarket", "fuel", "wholesale", "public_school", "hospital",
                      "charity"] = "standard"
    fees: dict[Literal["standard", "discounted", "welfare", "debit", "qr_wallet"], Rate] = {}
    debit_cap: Amount = "25.00"


class ScenarioModel(_Model):
    title: str
    description: str
    seed: int = 1
    policy: Literal["none", "reversal", "query", "query-then-reversal"] = "none"
    terminal: TerminalModel = TerminalModel()
    host: HostModel = HostModel()
    network: NetworkModel = NetworkModel()
    faults: tuple[FaultModel, ...] = ()
    partitions: tuple[PartitionModel, ...] = ()
    merchant: MerchantModel = MerchantModel()
    power_losses: tuple[PowerLossModel, ...] = ()
    transactions: Annotated[tuple[TransactionModel, ...], AfterValidator(_not_empty)]
    expect: dict[str, Any] = {}

    @field_validator("expect")
    @classmethod
    def _expect(cls, v: dict[str, Any]) -> dict[str, Any]:
        from possim.expect import validate_expect

        validate_expect(v)
        return v


class Scenario:
    """A validated scenario, with builders for each component's configuration."""

    def __init__(self, model: ScenarioModel, path: Path | None = None) -> None:
        self.model = model
        self.path = path

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.model.title

    def raw(self) -> dict[str, Any]:
        """The scenario as plain data (JSON- and TOML-ready), with every default filled in."""
        return self.model.model_dump(mode="json", exclude_none=True)

    def scaled(self, factor: float) -> Scenario:
        if factor == 1.0:
            return self
        scaled = from_dict(scale_durations(self.model.model_dump(), factor), self.path)
        return scaled

    def terminal_config(self, policy: str) -> TerminalConfig:
        return TerminalConfig(policy=policy, **self.model.terminal.model_dump())  # type: ignore[arg-type]

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
        )

    def fee_schedule(self) -> FeeSchedule:
        m = self.model.merchant
        rates = {k: parse_rate(v) for k, v in m.fees.items()}
        return FeeSchedule(category=m.category, debit_cap=Decimal(m.debit_cap), **rates)  # type: ignore[arg-type]

    def fault_plan(self) -> FaultPlan:
        m = self.model
        return FaultPlan(
            to_host=m.network.to_host.build(), to_terminal=m.network.to_terminal.build(),
            rules=tuple(Rule(f.action, f.direction, f.mti, f.nth, f.delay) for f in m.faults),
            partitions=tuple(Partition(p.start, p.end, p.direction) for p in m.partitions),
        )


_TERMINAL_SECONDS = ("response_timeout", "reversal_timeout", "backoff_initial", "backoff_max", "query_timeout",
                     "query_interval", "advice_timeout")
_LATENCY_SECONDS = ("value", "low", "high", "jitter")


def _scale_latency(lat: dict[str, Any], f: float) -> dict[str, Any]:
    out = {k: (v * f if k in _LATENCY_SECONDS else v) for k, v in lat.items()}
    if lat.get("dist") == "normal":
        out["sigma"] = lat.get("sigma", 0.0) * f
    return out


def scale_durations(raw: dict[str, Any], f: float) -> dict[str, Any]:
    """Every duration of a scenario (timeouts, latencies, retries, partitions, schedule) times ``f``.

    Real transports run in real time; ``--time-scale`` makes a 30-second scenario take a
    fraction of that while keeping every ratio, so verdicts do not depend on it.
    """
    d = dict(raw)
    d["terminal"] = {k: (v * f if k in _TERMINAL_SECONDS else v) for k, v in raw.get("terminal", {}).items()}
    host = dict(raw.get("host", {}))
    for key in ("processing", "quick"):
        if key in host:
            host[key] = _scale_latency(host[key], f)
    host["issuer_unavailable"] = [{"start": w["start"] * f, "end": w["end"] * f} for w in host.get("issuer_unavailable", [])]
    host["crash_after_commit"] = [{**c, "down_for": c.get("down_for", 60.0) * f} for c in host.get("crash_after_commit", [])]
    d["host"] = host
    d["network"] = {side: {**link, "latency": _scale_latency(link.get("latency", {}), f),
                           "reorder_window": link.get("reorder_window", 1.0) * f}
                    for side, link in raw.get("network", {}).items()}
    d["faults"] = [{**r, "delay": r.get("delay", 0.0) * f} for r in raw.get("faults", [])]
    d["partitions"] = [{**p, "start": p["start"] * f, "end": p["end"] * f} for p in raw.get("partitions", [])]
    d["power_losses"] = [{"at": p["at"] * f, "down_for": p.get("down_for", 30.0) * f}
                         for p in raw.get("power_losses", [])]
    d["transactions"] = [{**t, **{k: t[k] * f for k in ("at", "every", "retry_after") if k in t}}
                         for t in raw["transactions"]]
    return d


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every problem becomes one ``ScenarioError`` line."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(raw, path)


def from_dict(raw: dict[str, Any], path: Path | None = None) -> Scenario:
    try:
        return Scenario(ScenarioModel.model_validate(raw), path)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise ScenarioError(f"{path or 'scenario'}: {where}: {msg}{more}") from None


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ScenarioError(f"unknown policy {policy!r} (choose from {', '.join(POLICIES)})")
    return policy

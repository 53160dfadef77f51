"""Options that several commands share, declared once with their type, choices and help.

Each is a small factory returning a click decorator, so a command can word the help for its
own use (``--ledger`` is an output of ``run`` and an input of ``check``) while the name,
the type and the choices stay in one place. Enumerated options are ``click.Choice``: policy
names are asked of ``pos_sim.policies.REGISTRY`` when a command line is parsed, so a new policy
appears here by itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from possim import i18n
from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from possim.protocol import transports
from possim.protocol.profiles import REGISTRY as PROFILES

F = TypeVar("F", bound=Callable[..., Any])

QOS_LEVELS: tuple[str, ...] = ("0", "1")
#: --time-scale: real transports run a scenario faster (< 1) or slower (> 1), within reason.
MAX_TIME_SCALE = 100.0


class FiniteFloatRange(click.FloatRange):
    """A ``FloatRange`` that also refuses nan, which compares false with every bound and so slips through."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


class LiveChoice(click.Choice[str]):
    """A ``click.Choice`` whose names are asked of a registry each time they are needed, not copied
    when the command is declared: an entry registered later (a plugin, a test) is a valid choice."""

    def __init__(self, names: Callable[[], tuple[str, ...]]) -> None:
        self._names = names
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return self._names()

    @choices.setter
    def choices(self, _value: object) -> None:
        """``click.Choice.__init__`` assigns the names; they are never stored."""


def _qos_level(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    return int(value)


def seed(text: str = "RNG seed (default: the scenario's).", default: int | None = None) -> Callable[[F], F]:
    return click.option("--seed", type=int, default=default, show_default=default is not None, help=text)


def policy(text: str = "Recovery policy (default: the scenario's).", default: str | None = None) -> Callable[[F], F]:
    return click.option("--policy", type=LiveChoice(POLICY_REGISTRY.names), default=default,
                        show_default=default is not None, help=text)


def profile(text: str = "Terminal profile: iso (generic ISO 8583) or cup (China UnionPay rules: same-STAN "
                         "reversal with a reason, 3 tries then escalation, CNY, UnionPay cards, settlement); "
                         "default: the scenario's.") -> Callable[[F], F]:
    return click.option("--profile", type=LiveChoice(PROFILES.names), default=None, help=text)


def as_json(text: str = "Print the result as one JSON object.") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=text)


def broker(text: str, required: bool = False) -> Callable[[F], F]:
    return click.option("--broker", "broker_url", required=required, metavar="mqtt://HOST:PORT", help=text)


def qos() -> Callable[[F], F]:
    return click.option("--qos", type=click.Choice(QOS_LEVELS), default="1", show_default=True,
                        callback=_qos_level, help="MQTT quality of service for every message.")


def time_scale(text: str = "Multiply every duration of the scenario (real transports run in real time).",
               ) -> Callable[[F], F]:
    return click.option("--time-scale", type=FiniteFloatRange(0, MAX_TIME_SCALE, min_open=True), default=1.0,
                        show_default=True, help=text)


def transport(text: str = "memory (virtual time), mqtt (real broker) or tcp (loopback socket, ISO 8583 framing).",
              ) -> Callable[[F], F]:
    return click.option("--transport", type=LiveChoice(transports.names), default=transports.default().name,
                        show_default=True, help=text)


def ledger(text: str, required: bool = False) -> Callable[[F], F]:
    return click.option("--ledger", "ledger_path", required=required, type=click.Path(dir_okay=False), help=text)


def journal(text: str, required: bool = False) -> Callable[[F], F]:
    return click.option("--journal", "journal_path", required=required, type=click.Path(dir_okay=False), help=text)


def trace(text: str = "Write the JSON-lines trace here.") -> Callable[[F], F]:
    return click.option("--trace", "trace_path", type=click.Path(dir_okay=False), help=text)


def _language(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    try:
        return i18n.resolve(value)
    except i18n.LanguageError as exc:
        raise click.BadParameter(str(exc)) from None


def lang() -> Callable[[F], F]:
    """``--lang zh|en`` for every command that prints for people; ``POSSIM_LANG`` is the default, else English."""
    return click.option("--lang", type=click.Choice(i18n.LANGS), default=None, callback=_language,
                        help="Language of what is printed for people: zh or en (default: $POSSIM_LANG, else en).")

"""Merchant discount fees: what the acquirer keeps from each settled transaction.

The rates follow the merchant FAQ's table:

| case | rate |
|---|---|
| public welfare merchants (public schools, hospitals, charities), every instrument | 0% |
| debit cards | 0.5%, capped at 25.00 per transaction, and never more than the merchant's credit-card fee |
| QR wallet payments | 0.38% |
| UnionPay QR and QuickPass | the merchant's credit-card rate (0.6% at a standard merchant) |
| credit cards, standard merchants | 0.6% |
| credit cards, discounted merchants (supermarkets, fuel, wholesale) | 0.38% |

Rules apply in that order. Where the FAQ's table is silent the rule is chosen so that a
debit card never costs the merchant more than a credit card at the same merchant:

- debit at a discounted merchant: the lower of the debit fee (0.5%, capped) and the credit
  fee (0.38%). A 1,000.00 debit sale at a supermarket costs 3.80, not 5.00; from 6,578.95 on
  the cap is lower (10,000.00 costs 25.00, against 38.00 by credit card).
- public welfare: 0% on every instrument, wallet QR payments included. The FAQ's 0% is the
  merchant's rate, not a card's: a hospital pays nothing on a wallet QR payment (where the
  wallet rate would be 0.38%), on UnionPay QR, QuickPass, debit or credit.

Arithmetic is Decimal; each fee is rounded once, per transaction, to the cent, half up
(0.005 -> 0.01), and the cap and the credit-card ceiling apply after rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from possim.i18n import N_

Category = Literal["standard", "supermarket", "fuel", "wholesale", "public_school", "hospital", "charity"]
#: How the customer pays; each has its own fee rule.
Instrument = Literal["credit", "debit", "qr_wallet", "unionpay_qr", "quickpass"]
DISCOUNTED = frozenset({"supermarket", "fuel", "wholesale"})
WELFARE = frozenset({"public_school", "hospital", "charity"})
CENT = Decimal("0.01")


class Said(str):
    """An English text (what data, CSV and JSON carry) that still knows its message and values, so a
    view can say it in the reader's language: ``said.say(tr)``. Values that are themselves ``Said``
    or marked words (``words``) are translated too."""

    template: str
    values: dict[str, Any]
    words: frozenset[str]

    def __new__(cls, template: str, words: frozenset[str] = frozenset(), **values: Any) -> Said:
        self = super().__new__(cls, template.format(**values))
        self.template, self.values, self.words = template, values, words
        return self

    def say(self, tr: Callable[..., str]) -> str:
        values = {k: v.say(tr) if isinstance(v, Said) else tr(v) if k in self.words else v
                  for k, v in self.values.items()}
        return tr(self.template, **values)


def say(text: str, tr: Callable[..., str]) -> str:
    """``text`` in ``tr``'s language when it is a :class:`Said`, else as it is (e.g. read from a file)."""
    return text.say(tr) if isinstance(text, Said) else text


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Rates as fractions (0.006 = 0.6%); a merchant's scenario may override any of them."""

    category: Category = "standard"
    standard: Decimal = Decimal("0.006")
    discounted: Decimal = Decimal("0.0038")
    welfare: Decimal = Decimal("0")
    debit: Decimal = Decimal("0.005")
    debit_cap: Decimal = Decimal("25.00")
    qr_wallet: Decimal = Decimal("0.0038")

    @property
    def credit_rate(self) -> Decimal:
        return self.discounted if self.category in DISCOUNTED else self.standard

    def fee(self, amount: Decimal, instrument: str) -> tuple[Decimal, str]:
        """The fee on one settled amount, and the rule that set it (for the report)."""
        if self.category in WELFARE:
            return _round(amount * self.welfare), Said(N_("public welfare {rate} (every instrument)"),
                                                       rate=_pct(self.welfare))
        if instrument == "debit":
            return self._debit(amount)
        if instrument == "qr_wallet":
            return _round(amount * self.qr_wallet), Said(N_("QR wallet {rate}"), rate=_pct(self.qr_wallet))
        return self._credit(amount, instrument)

    def _credit(self, amount: Decimal, instrument: str) -> tuple[Decimal, str]:
        kind = {"unionpay_qr": N_("UnionPay QR at the credit rate"), "quickpass": N_("QuickPass at the credit rate")}
        where = N_("discounted merchant") if self.category in DISCOUNTED else N_("standard merchant")
        return _round(amount * self.credit_rate), Said(N_("{kind}, {where} {rate}"), frozenset({"kind", "where"}),
                                                       kind=kind.get(instrument, N_("credit")), where=where,
                                                       rate=_pct(self.credit_rate))

    def _debit(self, amount: Decimal) -> tuple[Decimal, str]:
        """0.5% capped, but never above the credit-card fee at the same merchant."""
        fee, rule = _round(amount * self.debit), Said(N_("debit {rate}"), rate=_pct(self.debit))
        if fee > self.debit_cap:
            fee, rule = self.debit_cap, Said(N_("debit {rate} capped at {cap}"), rate=_pct(self.debit),
                                             cap=self.debit_cap)
        credit = _round(amount * self.credit_rate)
        if credit < fee:
            return credit, Said(N_("debit at the credit rate {rate} (never above a credit card)"),
                                rate=_pct(self.credit_rate))
        return fee, rule


def parse_rate(text: str) -> Decimal:
    """'0.6%' -> Decimal('0.006')."""
    text = text.strip()
    if not text.endswith("%"):
        raise ValueError(f"a rate is a percentage like '0.6%', not {text!r}")
    value = Decimal(text[:-1]) / 100
    if not 0 <= value <= 1:
        raise ValueError(f"rate {text!r} out of range")
    return value


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _pct(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"

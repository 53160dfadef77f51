"""Merchant discount fees: what the acquirer keeps from each settled transaction.

Defaults (rates per transaction amount):

| case | rate |
|---|---|
| public welfare merchants (public schools, hospitals, charities), any card | 0% |
| debit cards | 0.5%, capped at 25.00 per transaction |
| QR wallet payments | 0.38% |
| UnionPay QR | the merchant's credit-card rate (0.6% at a standard merchant) |
| credit cards, standard merchants | 0.6% |
| credit cards, discounted merchants (supermarkets, fuel, wholesale) | 0.38% |

Rules apply in that order (a hospital pays 0% on debit cards too). Arithmetic is Decimal;
each fee is rounded once, per transaction, to the cent, half up (0.005 -> 0.01), and a
cap applies after rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Category = Literal["standard", "supermarket", "fuel", "wholesale", "public_school", "hospital", "charity"]
#: How the customer pays; each has its own fee rule.
Instrument = Literal["credit", "debit", "qr_wallet", "unionpay_qr"]
DISCOUNTED = frozenset({"supermarket", "fuel", "wholesale"})
WELFARE = frozenset({"public_school", "hospital", "charity"})
CENT = Decimal("0.01")


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
            return _round(amount * self.welfare), f"public welfare {_pct(self.welfare)}"
        if instrument == "debit":
            fee = _round(amount * self.debit)
            if fee > self.debit_cap:
                return self.debit_cap, f"debit {_pct(self.debit)} capped at {self.debit_cap}"
            return fee, f"debit {_pct(self.debit)}"
        if instrument == "qr_wallet":
            return _round(amount * self.qr_wallet), f"QR wallet {_pct(self.qr_wallet)}"
        kind = "UnionPay QR at the credit rate" if instrument == "unionpay_qr" else "credit"
        where = "discounted merchant" if self.category in DISCOUNTED else "standard merchant"
        return _round(amount * self.credit_rate), f"{kind}, {where} {_pct(self.credit_rate)}"


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

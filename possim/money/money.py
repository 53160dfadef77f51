"""Amounts: decimal strings at the edges ("25.00"), integer minor units inside."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: ISO 8583 field 4 holds 12 digits of minor units: 9999999999.99 is the largest amount a
#: message can carry, so it is the largest amount or balance a scenario may name.
MAX_MINOR = 10**12 - 1
_LIMIT = Decimal(MAX_MINOR) / 100


def parse_amount(text: str | int | float) -> int:
    """'25.00' -> 2500. Rejects negatives, more than two decimals, non-numbers and amounts beyond field 4."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    if value < 0:
        raise ValueError(f"{text!r} is negative: an amount is never below zero")
    if value > _LIMIT:
        raise ValueError(f"amount {text!r} is beyond {_LIMIT} (ISO 8583 field 4: 12 digits of minor units)")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount with at most two decimals: {text!r}")
    return int(value * 100)


def format_amount(minor: int) -> str:
    """2500 -> '25.00' (decimal string, exact)."""
    return str((Decimal(minor) / 100).quantize(Decimal("0.01")))


#: ISO 4217 numeric code (terminal field 49) -> alphabetic code, for Babel.
ALPHA = {"156": "CNY", "978": "EUR", "840": "USD", "826": "GBP", "392": "JPY", "344": "HKD"}
#: A view's language -> the Babel locale its money is written in (symbol, grouping, sign).
LOCALES = {"en": "en", "zh": "zh_CN"}


def format_money(amount: int | str | Decimal, currency: str, lang: str = "en") -> str:
    """2558250 -> '¥25,582.50' in Chinese (CNY), '€25,582.50' in English (EUR): Babel's currency format.

    The locale decides symbol, grouping and sign as the reader expects them (English writes
    CNY as ``CN¥`` to tell it from the yen, Chinese writes ``¥``). Amounts always show two
    decimals: possim keeps every amount in hundredths (field 4), whatever the currency's exponent.
    ``currency`` is the numeric code of field 49 ("156") or an alphabetic one ("CNY").
    """
    from babel.numbers import format_currency

    value = (Decimal(amount) / 100 if isinstance(amount, int) else Decimal(amount)).quantize(Decimal("0.01"))
    code = ALPHA.get(currency, currency)
    return format_currency(value, code, locale=LOCALES.get(lang, "en"), currency_digits=False)

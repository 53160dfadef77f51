"""Amounts: decimal strings at the edges ("25.00"), integer minor units inside."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def parse_amount(text: str | int | float) -> int:
    """'25.00' -> 2500. Rejects negatives, more than two decimals and non-numbers."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount with at most two decimals: {text!r}")
    return int(value * 100)


def format_amount(minor: int) -> str:
    """2500 -> '25.00' (decimal string, exact)."""
    return str((Decimal(minor) / 100).quantize(Decimal("0.01")))

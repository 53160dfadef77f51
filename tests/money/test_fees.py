"""Merchant discount fees against hand-computed cases."""

from __future__ import annotations

from decimal import Decimal

import pytest

from possim.money.fees import FeeSchedule, parse_rate

TEN_K = Decimal("10000.00")


@pytest.mark.parametrize("category, instrument, fee", [
    ("standard", "debit", "25.00"),          # 0.5% = 50.00, capped at 25.00
    ("standard", "credit", "60.00"),         # 0.6%
    ("supermarket", "credit", "38.00"),      # 0.38%
    ("hospital", "credit", "0.00"),          # public welfare
    ("hospital", "debit", "0.00"),
    ("fuel", "qr_wallet", "38.00"),
    ("standard", "unionpay_qr", "60.00"),    # credit-card rate
    ("wholesale", "unionpay_qr", "38.00"),
    ("charity", "qr_wallet", "0.00"),
])
def test_ten_thousand(category: str, instrument: str, fee: str) -> None:
    assert FeeSchedule(category=category).fee(TEN_K, instrument)[0] == Decimal(fee)  # type: ignore[arg-type]


def test_debit_below_the_cap_is_half_a_percent() -> None:
    assert FeeSchedule().fee(Decimal("1000.00"), "debit") == (Decimal("5.00"), "debit 0.5%")


def test_rounding_is_half_up_per_transaction() -> None:
    # 0.6% of 0.75 = 0.0045 -> 0.00; of 1.25 = 0.0075 -> 0.01; 0.38% of 19.99 = 0.075962 -> 0.08
    s = FeeSchedule()
    assert s.fee(Decimal("0.75"), "credit")[0] == Decimal("0.00")
    assert s.fee(Decimal("1.25"), "credit")[0] == Decimal("0.01")
    assert FeeSchedule(category="supermarket").fee(Decimal("19.99"), "credit")[0] == Decimal("0.08")


def test_rates_parse_from_percent_strings() -> None:
    assert parse_rate("0.6%") == Decimal("0.006")
    with pytest.raises(ValueError):
        parse_rate("0.6")


@pytest.mark.parametrize("category, instrument, fee", [
    ("standard", "debit", "25.00"),
    ("standard", "credit", "60.00"),
    ("supermarket", "credit", "38.00"),
    ("hospital", "credit", "0.00"),
    ("standard", "qr_wallet", "38.00"),
    ("standard", "unionpay_qr", "60.00"),
    ("standard", "quickpass", "60.00"),      # QuickPass at the credit-card rate
    ("supermarket", "debit", "25.00"),       # the cap is below the 0.38% credit fee (38.00)
])
def test_issue_fee_table_for_ten_thousand(category: str, instrument: str, fee: str) -> None:
    assert FeeSchedule(category=category).fee(TEN_K, instrument)[0] == Decimal(fee)  # type: ignore[arg-type]


def test_debit_at_a_supermarket_costs_no_more_than_a_credit_card() -> None:
    fee, rule = FeeSchedule(category="supermarket").fee(Decimal("1000.00"), "debit")
    assert fee == Decimal("3.80")
    assert "never above a credit card" in rule


@pytest.mark.parametrize("category", ["standard", "supermarket", "fuel", "wholesale", "hospital"])
@pytest.mark.parametrize("amount", ["0.01", "1.25", "19.99", "999.99", "1000.00", "5000.00", "6578.94",
                                    "6578.95", "10000.00", "99999.99"])
def test_debit_never_costs_more_than_credit(category: str, amount: str) -> None:
    s = FeeSchedule(category=category)  # type: ignore[arg-type]
    assert s.fee(Decimal(amount), "debit")[0] <= s.fee(Decimal(amount), "credit")[0]


@pytest.mark.parametrize("instrument", ["credit", "debit", "qr_wallet", "unionpay_qr", "quickpass"])
def test_welfare_zeroes_every_instrument_and_says_so(instrument: str) -> None:
    fee, rule = FeeSchedule(category="hospital").fee(TEN_K, instrument)
    assert fee == Decimal("0.00")
    assert rule == "public welfare 0% (every instrument)"

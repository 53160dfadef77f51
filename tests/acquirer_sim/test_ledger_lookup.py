"""The host's one lookup query answers as find, closure and available do, and an account moves in one upsert."""

from __future__ import annotations

from possim.acquirer_sim.ledger import Ledger

KEY = ("T1", "000001", "1125100000")
PAN = "4111111111111111"


def test_nothing_known_of_a_new_key_and_a_new_card() -> None:
    ledger = Ledger(default_balance=5000)
    assert ledger.lookup(KEY, PAN) == (None, None, None)
    assert ledger.balances() == {}  # a lookup opens no account (available() does)
    ledger.close()


def test_a_booked_original_and_the_money_left_are_found() -> None:
    ledger = Ledger(default_balance=5000)
    ledger.record(1.0, KEY, "0200", PAN, 1200, "123", "A00001", "00", "debited", "debit", b"answer")
    found, closure, available = ledger.lookup(KEY, PAN)
    assert found == ledger.find(KEY) and found is not None and found.response == b"answer"
    assert closure is None and available == 3800 == ledger.available(PAN)
    assert ledger.balances() == {PAN: (3800, 0)}  # a new card opened at the default balance, then debited
    ledger.close()


def test_a_closed_key_gives_its_reason_with_or_without_an_original() -> None:
    ledger = Ledger(default_balance=5000)
    ledger.close_key(1.0, KEY, "reversal_before_original")
    assert ledger.lookup(KEY, PAN) == (None, "reversal_before_original", None)
    ledger.record(2.0, KEY, "0200", PAN, 1200, None, None, "12", "refused", None, b"refused")
    found, closure, _ = ledger.lookup(KEY, PAN)
    assert found is not None and found.state == "refused" and closure == "reversal_before_original"
    ledger.close()


def test_holds_and_releases_move_the_held_column_of_an_existing_account() -> None:
    ledger = Ledger(default_balance=5000)
    ledger.open_account(PAN, 9000)
    ledger.record(1.0, KEY, "0100", PAN, 700, "123", "A00001", "00", "held", "hold", b"answer")
    assert ledger.balances() == {PAN: (9000, 700)} and ledger.lookup(KEY, PAN)[2] == 8300
    orig = ledger.find(KEY)
    assert orig is not None
    ledger.transition(2.0, orig, "captured", [("release", 700), ("capture", 500)])
    assert ledger.balances() == {PAN: (8500, 0)}
    ledger.close()

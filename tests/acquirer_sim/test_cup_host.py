"""The CUP host: the debit waits for the issuer, IN_PROGRESS meanwhile, 94 for copies, issuer
timeouts answered 98/68 with no money moved, declines by card."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from possim.acquirer_sim.config import Window
from possim.acquirer_sim.host import AcquirerHost, AwaitIssuer
from possim.protocol import codec
from tests.acquirer_sim.test_host import control, entries, purchase_bytes
from tests.helpers import new_host, replies


def cup_host(**config: object) -> AcquirerHost:
    return new_host(profile="cup", **config)


def _wait(actions: Sequence[object]) -> AwaitIssuer:
    return next(a for a in actions if isinstance(a, AwaitIssuer))


def test_debit_is_committed_when_the_issuer_answers() -> None:
    host = cup_host()
    actions = host.receive(0.0, purchase_bytes())
    assert not replies(actions) and entries(host) == []
    answer = replies(host.issuer_answered(0.2, _wait(actions).key))[0]
    assert codec.decode(answer.data).response_code == "00"
    assert entries(host) == [("debit", 2500)]


def test_status_query_during_processing_answers_in_progress() -> None:
    host = cup_host()
    key = _wait(host.receive(0.0, purchase_bytes())).key
    status = codec.decode(replies(host.receive(0.1, control("0600")))[0].data)
    assert status.status == "IN_PROGRESS"
    host.issuer_answered(45.0, key)
    assert codec.decode(replies(host.receive(46.0, control("0600", "000003")))[0].data).status == "APPROVED"


def test_duplicate_original_is_answered_94_without_a_second_debit() -> None:
    host = cup_host()
    key = _wait(host.receive(0.0, purchase_bytes())).key
    copy = codec.decode(replies(host.receive(0.1, purchase_bytes()))[0].data)
    assert copy.response_code == "94"
    host.issuer_answered(0.2, key)
    assert entries(host) == [("debit", 2500)]


def test_issuer_timeout_is_answered_98_and_nothing_is_debited() -> None:
    host = cup_host(issuer_timeouts=(Window(0.0, 100.0),))
    key = _wait(host.receive(0.0, purchase_bytes())).key
    answer = codec.decode(replies(host.issuer_answered(0.2, key))[0].data)
    assert answer.response_code == "98"
    assert entries(host) == []


def test_issuer_timeout_code_68() -> None:
    host = cup_host(issuer_timeouts=(Window(0.0, 100.0),), issuer_timeout_code="68")
    key = _wait(host.receive(0.0, purchase_bytes())).key
    assert codec.decode(replies(host.issuer_answered(0.2, key))[0].data).response_code == "68"


def test_reversal_during_processing_cancels_the_sale() -> None:
    host = cup_host()
    key = _wait(host.receive(0.0, purchase_bytes())).key
    reversal = codec.decode(purchase_bytes())
    ack = replies(host.receive(30.0, codec.encode(replace(reversal, mti="0400", response_code="98"))))[0]
    assert codec.decode(ack.data).response_code == "00"
    assert not replies(host.issuer_answered(45.0, key))
    assert entries(host) == []


def test_declines_by_card() -> None:
    for code in ("05", "13", "14", "51", "55"):
        host = cup_host(decline_codes={"4000000000000002": code})
        key = _wait(host.receive(0.0, purchase_bytes())).key
        assert codec.decode(replies(host.issuer_answered(0.2, key))[0].data).response_code == code
        assert entries(host) == []


def test_iso_host_still_debits_on_arrival() -> None:
    host = new_host()
    assert replies(host.receive(0.0, purchase_bytes()))
    assert entries(host) == [("debit", 2500)]

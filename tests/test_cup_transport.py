"""Under ``profile = "cup"`` the bytes are CUP bytes end to end: in memory, through the fault
layer, and over TCP framed with the TPDU and header; ISO runs keep their ASCII bytes."""

from __future__ import annotations

import random

from possim.rig import Rig
from possim.scenario import load
from possim.virtual_clock import VirtualClock
from protocol import codec, cup
from protocol.faults import FaultDecider, FaultPlan, Rule
from protocol.messages import Message
from protocol.transports import Origin
from protocol.wallet import peek_kind
from tests.conftest import SCENARIOS

SALE = Message(mti="0200", pan="6212345678901232", processing_code="000000", amount=12345,
               transmission="0612103015", stan="000042", local_time="103015", local_date="0612",
               tid="TERM0001", mid="898310048990001", currency="156")


def _recorded_run(name: str, profile: str) -> tuple[list[bytes], list[bytes]]:
    """Run a scenario in memory and keep every request and every answer as it travelled."""
    clock = VirtualClock()
    rig = Rig(load(SCENARIOS / f"{name}.toml").with_profile(profile), "reversal", 1, clock)
    requests: list[bytes] = []
    answers: list[bytes] = []
    host_receive, terminal_receive = rig.host_receive, rig.terminal_driver.receive

    def to_host(data: bytes, origin: Origin | None = None) -> None:
        requests.append(data)
        host_receive(data, origin)

    def to_terminal(data: bytes) -> None:
        answers.append(data)
        terminal_receive(data)

    rig.host_receive = to_host  # type: ignore[method-assign]
    rig.terminal_driver.receive = to_terminal  # type: ignore[method-assign]
    rig.memory()
    rig.schedule_payments()
    clock.run(horizon=600.0)
    return requests, answers


def test_cup_run_in_memory_carries_cup_bytes_both_ways() -> None:
    requests, answers = _recorded_run("reversal-lost", "cup")
    assert requests and answers
    for data in requests + answers:
        assert 0x01 <= data[0] <= 0x08, data[:4]  # a BCD MTI, never an ASCII digit
        assert codec.decode(data) == cup.decode(data)
    mtis = {cup.peek_mti(d) for d in requests}
    assert {"0200", "0400"} <= mtis


def test_iso_run_in_memory_keeps_ascii_bytes() -> None:
    requests, answers = _recorded_run("reversal-lost", "iso")
    assert requests and answers
    assert all(d[:4].isdigit() for d in requests + answers)


def test_decode_and_peek_tell_the_dialect_from_the_bytes() -> None:
    iso, bcd = codec.encode(SALE), codec.encode(SALE, dialect="cup")
    assert bcd == cup.encode(SALE) and bcd[:2] == b"\x02\x00"
    assert codec.dialect_of(iso) == "iso" and codec.dialect_of(bcd) == "cup"
    assert codec.decode(iso) == codec.decode(bcd) == SALE
    assert codec.peek_mti(bcd) == peek_kind(bcd) == "0200"
    assert codec.wire_fields(bcd) == {"tid": "TERM0001", "stan": "000042", "mti": "0200"}


def test_targeted_fault_rules_hit_cup_frames() -> None:
    """A rule naming an MTI matches a CUP frame: the fault layer reads its BCD MTI."""
    decider = FaultDecider(FaultPlan(rules=(Rule("drop", "to_host", "0200"),)), random.Random(1))
    sale = codec.encode(SALE, dialect="cup")
    assert decider.decide("to_host", peek_kind(sale), 0.0).delays == ()
    assert decider.decide("to_host", peek_kind(sale), 0.0).delays != ()  # only the 1st 0200

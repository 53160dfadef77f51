"""The acquirer host over a real SQLite ledger: idempotency, tombstones, crashes, queries."""

from __future__ import annotations

from dataclasses import replace

from possim.acquirer_sim.config import CrashRule, Window
from possim.acquirer_sim.host import Crashed
from possim.protocol import codec
from possim.protocol.messages import Message, OriginalData
from tests.helpers import new_host, replies

ORIG = OriginalData("0200", "000001", "1125100000")


def purchase_bytes(amount: int = 2500, pan: str = "4000000000000002") -> bytes:
    return codec.encode(Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001",
                                mid="MERCHANT0000001", pan=pan, processing_code="000000", amount=amount,
                                currency="978"))


def control(mti: str, stan: str = "000002") -> bytes:
    code = "970000" if mti == "0600" else "000000"
    return codec.encode(Message(mti=mti, stan=stan, transmission="1125100030", tid="POS00001",
                                pan="4000000000000002", amount=2500, original=ORIG, processing_code=code,
                                currency="978"))


def entries(host: object) -> list[tuple[str, int]]:
    return host.ledger.conn.execute("SELECT kind, amount FROM entries ORDER BY id").fetchall()  # type: ignore[attr-defined]


def test_duplicate_original_gets_the_same_bytes_and_one_debit() -> None:
    host = new_host()
    first = replies(host.receive(0.0, purchase_bytes()))[0]
    second = replies(host.receive(0.5, purchase_bytes()))[0]
    assert first.data == second.data
    assert entries(host) == [("debit", 2500)]


def test_reversal_before_original_refuses_the_late_original() -> None:
    host = new_host()
    ack = codec.decode(replies(host.receive(0.0, control("0400")))[0].data)
    assert ack.mti == "0410" and ack.response_code == "25"
    late = codec.decode(replies(host.receive(60.0, purchase_bytes()))[0].data)
    assert late.response_code == "12"
    assert entries(host) == []


def test_repeated_reversal_credits_once() -> None:
    host = new_host()
    host.receive(0.0, purchase_bytes())
    for t in (30.0, 65.0, 100.0):
        assert codec.decode(replies(host.receive(t, control("0401" if t > 30 else "0400")))[0].data).approved
    assert entries(host) == [("debit", 2500), ("credit", 2500)]


def test_crash_after_commit_keeps_the_debit_and_answers_after_restart() -> None:
    host = new_host(crash_after_commit=(CrashRule("0200", 1, 90.0),))
    actions = host.receive(0.0, purchase_bytes())
    assert any(isinstance(a, Crashed) and a.until == 90.0 for a in actions)
    assert not replies(actions)
    assert not replies(host.receive(30.0, control("0600")))  # down: lost
    answer = codec.decode(replies(host.receive(95.0, control("0600", "000003")))[0].data)
    assert answer.status == "APPROVED" and answer.rrn
    assert entries(host) == [("debit", 2500)]


def test_status_query_not_found_closes_the_key() -> None:
    host = new_host()
    assert codec.decode(replies(host.receive(0.0, control("0600")))[0].data).status == "NOT_FOUND"
    assert codec.decode(replies(host.receive(5.0, purchase_bytes()))[0].data).response_code == "12"
    assert entries(host) == []


def test_declines_insufficient_funds_and_issuer_unavailable() -> None:
    host = new_host(accounts={"4000000000000010": 1000}, issuer_unavailable=(Window(100.0, 200.0),))
    poor = codec.decode(replies(host.receive(0.0, purchase_bytes(pan="4000000000000010")))[0].data)
    assert poor.response_code == "51"
    host2 = new_host(issuer_unavailable=(Window(0.0, 10.0),))
    assert codec.decode(replies(host2.receive(1.0, purchase_bytes()))[0].data).response_code == "91"
    assert entries(host) == [] and entries(host2) == []


def test_completion_advice_captures_once_and_releases_the_hold() -> None:
    host = new_host()
    auth = codec.encode(Message(mti="0100", stan="000001", transmission="1125100000", tid="POS00001",
                                pan="4000000000000002", amount=10000, processing_code="000000",
                                currency="978"))
    host.receive(0.0, auth)
    advice = Message(mti="0220", stan="000002", transmission="1125100001", tid="POS00001",
                     pan="4000000000000002", amount=8250, original=OriginalData("0100", "000001", "1125100000"),
                     processing_code="000000", currency="978")
    assert codec.decode(replies(host.receive(1.0, codec.encode(advice)))[0].data).approved
    repeat = replace(advice, mti="0221", transmission="1125100031")  # the repeat: same original, new F7
    assert codec.decode(replies(host.receive(2.0, codec.encode(repeat)))[0].data).approved
    assert entries(host) == [("hold", 10000), ("release", 10000), ("capture", 8250)]
    assert host.ledger.balances()["4000000000000002"] == (100_000_000 - 8250, 0)


def test_malformed_frame_is_dropped_with_a_notice() -> None:
    host = new_host()
    assert [a.event for a in host.receive(0.0, b"\x00\x01junk")] == ["malformed_frame"]  # type: ignore[union-attr]


def test_rrn_day_and_hour_read_as_the_date_arithmetic_near_every_hour_edge() -> None:
    """The RRN's Julian day and hour (kept for an hour by the host) are those of ``epoch + now``
    for times on, just before and just after hour edges, across a year end, in any order."""
    import random
    from datetime import datetime, timedelta

    epoch = datetime(2026, 12, 31, 21, 59, 59, 999_700)  # edges at a fraction of a second: 0.0003 s, 3600.0003 s
    host = new_host(epoch=epoch)
    rng = random.Random(7)
    edges = [0.0003 + 3600 * k for k in range(5)]
    nows = [e + d for e in edges for d in (-1e-3, -1e-6, -4e-7, 0.0, 4e-7, 1e-6, 1e-3)]
    nows += [rng.uniform(0, 5 * 3600) for _ in range(200)]
    for now in sorted(nows) + nows:
        t = epoch + timedelta(seconds=now)
        rrn, _ = host._ids(now)
        assert rrn[:5] == f"{t.timetuple().tm_yday:03d}{t.hour:02d}", now
    hours = {rrn[:5] for rrn, _ in (host._ids(n) for n in nows)}
    assert hours == {"36521", "36522", "36523", "00100", "00101", "00102"}

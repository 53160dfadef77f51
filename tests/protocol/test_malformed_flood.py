"""10,000 malformed payloads through a real TCP socket to a running acquirer (with MAC keys).

Random bytes, truncated frames, bad bitmaps, wrong lengths, missing fields and bad values.
The acquirer must not crash, must not change its ledger, must answer every request it can
identify (a frame that parses, with the right MAC) with 30, or 63 for a MAC problem, and must
still approve a valid purchase afterwards. Completion is known from answers and the host's
own counters, never from sleeping.
"""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import replace
from typing import Any

import pytest

from possim.acquirer_sim.config import HostConfig
from possim.acquirer_sim.host import AcquirerHost
from possim.acquirer_sim.ledger import Ledger
from possim.processes import keys
from possim.protocol import codec
from possim.protocol.framing import Deframer
from possim.protocol.latency import ZERO
from possim.protocol.messages import Message
from possim.protocol.transports import Endpoint, open_wire
from possim.running.realtime import serve_acquirer
from tests.waiting import wait_until

TID = "POS00001"
RING = keys.derive(11, [TID])
KEY = RING.mac_key(TID)
N = 10_000
GOOD = Message(mti="0200", stan="000001", transmission="1125100000", tid=TID, mid="MERCHANT0000001",
               pan="4000000000000002", processing_code="000000", amount=2500, currency="978",
               local_time="100000", local_date="1125")
BAD_VALUES: list[dict[str, Any]] = [
    {"pan": None}, {"amount": None}, {"amount": 0}, {"transmission": "9999999999"}, {"transmission": "1332250000"},
    {"pan": "4000000000000003"}, {"currency": "999"}, {"processing_code": "123456"}, {"processing_code": None},
    {"currency": None}, {"local_time": "250000"}, {"local_date": "1340"}, {"processing_code": "970000"},
]


def _frame(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _payload(rng: random.Random, i: int) -> tuple[bytes, str | None]:
    """One malformed payload (already framed) and the answer it must get: '30', '63' or None (unidentifiable)."""
    stan = f"{i % 999_999 + 1:06d}"
    kind = i % 6
    if kind == 0:  # bad value, correctly MACed: identifiable, answered 30
        bad = replace(GOOD, stan=stan, **rng.choice(BAD_VALUES))
        return _frame(codec.encode(bad, KEY)), "30"
    if kind == 1:  # bad value without a MAC: 63
        bad = replace(GOOD, stan=stan, **rng.choice(BAD_VALUES))
        return _frame(codec.encode(bad)), "63"
    if kind == 2:  # random bytes
        return _frame(rng.randbytes(rng.randint(1, 300))), None
    good = codec.encode(replace(GOOD, stan=stan), KEY)
    if kind == 3:  # truncated frame (its length header says what it is)
        return _frame(good[:rng.randint(1, len(good) - 1)]), None
    # kind 4: bad bitmap (a bitmap character changed); kind 5: a wrong field length or mangled body byte
    pos = rng.randint(4, 19) if kind == 4 else rng.randint(20, len(good) - 1)
    options = b"ZGF0" if kind == 4 else bytes(range(256))
    new = rng.choice([bytes([b]) for b in options if b != good[pos]])
    return _frame(good[:pos] + new + good[pos + 1:]), "?"


@pytest.mark.asyncio
async def test_ten_thousand_malformed_payloads_change_nothing_and_identifiable_ones_get_30() -> None:  # noqa: PLR0915
    ledger = Ledger(default_balance=HostConfig().default_balance)
    host = AcquirerHost(HostConfig(processing=ZERO, quick=ZERO), ledger, random.Random(0), RING.mac_keys())
    before = ledger.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0], ledger.balances()
    wire = open_wire("tcp", Endpoint("tcp://127.0.0.1:0"))
    stop = asyncio.Event()
    logs: list[tuple[str, dict[str, Any]]] = []

    def log(event: str, **fields: Any) -> None:
        logs.append((event, fields))

    server = asyncio.create_task(serve_acquirer(wire, host, log, stop, 3600))
    await wait_until(lambda: any(e == "acquirer_ready" for e, _ in logs), lambda: str(logs))
    port = int(wire.describe()["port"])  # type: ignore[call-overload]
    rng = random.Random(2026)
    expected: dict[str, str] = {}  # STAN -> the answer it must get
    answers: dict[str, int] = {}
    by_stan: dict[str, str] = {}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    deframer = Deframer()
    try:
        for i in range(N):
            data, want = _payload(rng, i)
            if want in ("30", "63"):
                expected[f"{i % 999_999 + 1:06d}"] = want
            writer.write(data)
            if i % 500 == 0:
                await writer.drain()
        await writer.drain()
        # every identifiable request is answered; the mangled ones may or may not be (the codec decides)
        while not all(stan in by_stan for stan in expected):
            chunk = await asyncio.wait_for(reader.read(65536), 60)
            assert chunk, f"connection closed after answers {answers}"
            for frame in deframer.feed(chunk):
                answer = codec.decode(frame)
                rc = answer.response_code or "?"
                answers[rc] = answers.get(rc, 0) + 1
                by_stan[answer.stan] = rc
        assert {stan: by_stan[stan] for stan in expected} == expected
        assert set(answers) <= {"30", "63"}, answers  # nothing approved, declined or failed
        after = ledger.conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0], ledger.balances()
        assert after == before
        assert ledger.conn.execute("SELECT COUNT(*) FROM originals").fetchone()[0] == 0
        # the acquirer still serves: a valid purchase on a fresh connection is approved
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(_frame(codec.encode(replace(GOOD, stan="999998"), KEY)))
        d2 = Deframer()
        frames: list[bytes] = []
        while not frames:
            chunk = await asyncio.wait_for(r2.read(65536), 60)
            assert chunk
            frames = d2.feed(chunk)
        assert codec.decode(frames[0], KEY).response_code == "00"
        w2.close()
        failed = [f for e, f in logs if e == "request_failed"]
        assert failed == []
        wanted = list(expected.values())
        print(f"\nmalformed flood: {N} payloads, identifiable {len(expected)} (30: {wanted.count('30')}, "
              f"63: {wanted.count('63')}), answers {answers}, ledger rows unchanged, valid purchase after: 00")
    finally:
        writer.close()
        stop.set()
        await server
        ledger.close()

"""A third-party load tool against a running ``possim acquirer --transport tcp``: every request answered.

iso8583sim (pinned in constraints.txt) sends by default ASCII ISO 8583 with its bitmap as 8 raw
bytes (its ``ascii-binary`` format) behind a 2-byte length, and 0100s without field 7. possim
reads that layout as the ``iso-binary`` dialect and answers in it, 30 (format error) for the
missing field 7, so the tool's client can read and match every answer by its STAN. Nothing is
booked for those; a valid sale in the same layout is approved and debited.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from pathlib import Path

import pytest
from iso8583sim.core.samples import sample_message
from iso8583sim.net import ISO8583Client
from iso8583sim.wire import WireFormat, encode_message

from possim.processes import keys
from possim.protocol import codec, dialects
from possim.protocol.messages import Message, OriginalData
from possim.protocol.validation import identify
from tests.procs import RUN_TIMEOUT, event_of, is_event, running

COUNT = 200
ISO8583SIM = Path(sys.executable).parent / "iso8583sim"
SALE = Message(mti="0200", stan="000001", transmission="1125100000", tid="POS00001", mid="MERCHANT0000001",
               pan="4000000000000002", processing_code="000000", amount=2500, currency="978",
               local_time="100000", local_date="1125")


# -- the iso-binary dialect ----------------------------------------------------------------------


def test_iso8583sim_request_is_read_as_iso_binary_and_named_for_a_30() -> None:
    data = encode_message(sample_message(stan="000042"), WireFormat.ascii_binary())
    assert codec.dialect_of(data) == "iso-binary"
    with pytest.raises(codec.ProtocolError, match="missing field"):
        codec.decode(data)
    msg = identify(data, "1207120000")
    assert msg is not None
    assert (msg.mti, msg.stan, msg.tid, msg.pan, msg.amount) == ("0100", "000042", "TERM0001", "4111111111111111", 1000)


def test_iso_binary_differs_from_iso_only_in_its_bitmaps() -> None:
    iso, binary = codec.encode(SALE), dialects.encode(SALE, dialect="iso-binary")
    assert codec.dialect_of(iso) == "iso" and codec.dialect_of(binary) == "iso-binary"
    assert binary[:4] == iso[:4] and binary[4:12] == bytes.fromhex(iso[4:20].decode()) and binary[12:] == iso[20:]
    assert codec.hex_bitmaps(binary) == iso and codec.decode(binary) == SALE


def test_iso_binary_secondary_bitmap_and_mac_over_the_bytes_that_travel() -> None:
    key = keys.derive(11, [SALE.tid]).mac_key(SALE.tid)
    reversal = Message(mti="0400", stan="000002", transmission="1125100005", tid=SALE.tid, pan=SALE.pan,
                       processing_code="000000", amount=2500, currency="978",
                       original=OriginalData(mti=SALE.mti, stan=SALE.stan, transmission=SALE.transmission))
    data = dialects.encode(reversal, key, "iso-binary")
    assert data[4] & 0x80 and len(codec.hex_bitmaps(data)) == len(data) + 16  # two 8-byte bitmaps
    assert key.verify(data[:-16], bytes.fromhex(data[-16:].decode()))
    assert codec.decode(data, key) == reversal
    with pytest.raises(codec.MacMismatchError):
        codec.decode(data[:-1] + (b"0" if data[-1:] != b"0" else b"1"), key)


# -- the tool, as it is run, against the acquirer process -----------------------------------------


async def _iso8583sim_load(port: int, count: int) -> tuple[int, str]:
    """``iso8583sim load`` with its wire defaults (ascii-binary, 2-byte length header): exit code and output.

    50 in flight and 30 s for each answer: generous on a busy machine, and a run where no answer
    comes still ends (4 rounds of 30 s) with the tool's own report before ``RUN_TIMEOUT``.
    """
    proc = await asyncio.create_subprocess_exec(
        str(ISO8583SIM), "load", "--host", "127.0.0.1", "--port", str(port), "--count", str(count),
        "--concurrency", "50", "--timeout", "30", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _row(output: str, label: str) -> str:
    found = re.search(rf"{label}\s*\S\s*(.+?)\s*\S\s*$", output, re.MULTILINE)
    assert found, f"no {label!r} row in:\n{output}"
    return found.group(1)


@pytest.mark.asyncio
async def test_iso8583sim_load_gets_an_answer_to_every_request(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    async with running("acquirer", "--transport", "tcp", "--listen", "tcp://127.0.0.1:0",
                       "--ledger", str(ledger), "--insecure") as acquirer:
        ready = event_of(await acquirer.wait_for_line(is_event("acquirer_ready"), "the acquirer listening"))
        assert ready is not None
        port = int(str(ready["port"]))
        code, output = await _iso8583sim_load(port, COUNT)
        # the tool exits 1 on any timeout or error: every request it sent was answered
        assert code == 0, output
        assert (_row(output, "Requests"), _row(output, "Responses")) == (str(COUNT), str(COUNT)), output
        assert _row(output, "Response codes") == f"30: {COUNT}", output
        # a valid sale in the same layout is served, not only refused
        sale = sample_message(message_type="financial", stan="900001")
        sale.fields[7] = "1207120000"
        async with ISO8583Client("127.0.0.1", port, timeout=60.0) as client:
            approved = await client.send(sale)
        assert (approved.mti, approved.fields[11], approved.fields[39]) == ("0210", "900001", "00")
        assert await acquirer.stop() == 0
    answered = [event_of(line) for line in acquirer.lines if is_event("format_error_answered")(line)]
    assert sorted(str(e["stan"]) for e in answered if e) == [f"{i:06d}" for i in range(1, COUNT + 1)]
    assert all(e and (e["tid"], e["mti"], e["rc"]) == ("TERM0001", "0100", "30") and "missing field(s) 7"
               in str(e["reason"]) for e in answered)
    conn = sqlite3.connect(ledger)
    try:  # the 200 refused requests moved 0.00; the one sale its 10.00
        assert conn.execute("SELECT stan, kind, amount FROM entries").fetchall() == [("900001", "debit", 1000)]
        assert conn.execute("SELECT stan FROM originals").fetchall() == [("900001",)]
    finally:
        conn.close()

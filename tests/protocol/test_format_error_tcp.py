"""A running ``possim acquirer --transport tcp`` answers 30 to requests it cannot decode but that
name their sender (a load tool's 0200 and 0100 without field 7), drops garbage with a logged
event, and keeps serving on the same connection. Every wait is on an answer or a log line."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from pathlib import Path

import iso8583
import pytest

from possim.processes.broker import free_port
from possim.protocol import codec
from possim.protocol.framing import Deframer
from possim.protocol.mti import response_to
from tests.procs import is_event, running

TOOL = "LOADTOOL"
FIELDS = {"2": "4000000000000002", "3": "000000", "4": "000000002500", "41": TOOL, "42": "MERCHANT0000001",
          "49": "978"}


def _frame(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _without_field_7(mti: str, stan: str) -> bytes:
    """Real ISO 8583 bytes as a third-party load tool sends them: no transmission date and time."""
    return bytes(iso8583.encode({"t": mti, "11": stan, **FIELDS}, codec.SPEC)[0])


async def _answer(reader: asyncio.StreamReader, deframer: Deframer) -> bytes:
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), 60)
        assert chunk, "the acquirer closed the connection"
        frames = deframer.feed(chunk)
        if frames:
            assert len(frames) == 1, "more answers than requests"
            return frames[0]


@pytest.mark.asyncio
async def test_requests_without_field_7_get_30_and_garbage_gets_nothing(tmp_path: Path) -> None:
    ledger, port = tmp_path / "ledger.db", free_port()
    async with running("acquirer", "--transport", "tcp", "--listen", f"tcp://127.0.0.1:{port}",
                       "--ledger", str(ledger)) as acquirer:
        await acquirer.ready("acquirer_ready")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        deframer = Deframer()
        try:
            for mti, stan in (("0200", "000041"), ("0100", "000042")):
                writer.write(_frame(_without_field_7(mti, stan)))
                answer = codec.decode(await _answer(reader, deframer))
                assert (answer.mti, answer.stan, answer.tid, answer.response_code) == (
                    response_to(mti), stan, TOOL, "30")
            writer.write(_frame(b"\x07\xffnot ISO 8583 at all"))
            await acquirer.wait_for_line(is_event("malformed_frame"), "the garbage logged")
            # still serving, on the same connection: the next answer is the valid sale's, so the garbage got none
            sale = {"t": "0200", "7": "1125100000", "11": "000043", **FIELDS}
            writer.write(_frame(bytes(iso8583.encode(sale, codec.SPEC)[0])))
            answer = codec.decode(await _answer(reader, deframer))
            assert (answer.stan, answer.response_code) == ("000043", "00")
        finally:
            writer.close()
            await writer.wait_closed()
        assert await acquirer.stop() == 0
    answered = [line for line in acquirer.lines if is_event("format_error_answered", tid=TOOL)(line)]
    assert len(answered) == 2 and all("missing field(s) 7" in line for line in answered)
    conn = sqlite3.connect(ledger)
    try:  # nothing booked for the two refused requests
        assert conn.execute("SELECT stan, kind, amount FROM entries").fetchall() == [("000043", "debit", 2500)]
        assert conn.execute("SELECT stan FROM originals").fetchall() == [("000043",)]
    finally:
        conn.close()

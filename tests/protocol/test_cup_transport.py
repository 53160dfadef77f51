"""Under ``profile = "cup"`` the bytes are CUP bytes end to end: in memory, through the fault
layer, and over TCP framed with the TPDU and header; ISO runs keep their ASCII bytes."""

from __future__ import annotations

import asyncio
import random

import pytest

from possim.protocol import codec, cup
from possim.protocol import events as ev
from possim.protocol.faults import FaultDecider, FaultPlan, Rule
from possim.protocol.framing import Tpdu
from possim.protocol.messages import Message
from possim.protocol.transports import Endpoint, Origin, open_wire
from possim.protocol.wallet import peek_kind
from possim.running.realtime import run_tcp
from possim.running.rig import Rig, RunResult
from possim.running.virtual_clock import VirtualClock
from possim.scenario import load
from possim.simulation import simulate
from tests.conftest import SCENARIOS
from tests.protocol.test_cup_wire import independent

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


# -- TCP: the bytes on the socket are CUP frames ---------------------------------------------

CUP_HEADER = bytes.fromhex("603100310000")


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    """One whole frame off a raw socket: the 2-byte length and what it counts."""
    head = await reader.readexactly(2)
    return head + await reader.readexactly(int.from_bytes(head, "big"))


@pytest.mark.asyncio
async def test_cup_terminal_writes_length_tpdu_header_and_reads_the_swapped_answer() -> None:
    """A raw TCP peer stands in for the host: it reads what a cup terminal link writes, byte for byte."""
    got: asyncio.Queue[bytes] = asyncio.Queue()
    answers: asyncio.Queue[bytes] = asyncio.Queue()
    served = asyncio.Event()

    async def host(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await got.put(await _read_frame(reader))
        body = cup.encode(SALE.response("00", rrn="000000000001", auth_code="A12345"))
        writer.write(len(body + b"x" * 11).to_bytes(2, "big") + bytes.fromhex("6000000003") + CUP_HEADER + body)
        await writer.drain()
        await reader.read()  # until the terminal closes
        writer.close()
        await writer.wait_closed()
        served.set()

    server = await asyncio.start_server(host, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wire = open_wire("tcp", Endpoint(f"tcp://127.0.0.1:{port}", dialect="cup"))
    link = await wire.open_terminal("TERM0001", answers.put_nowait, lambda *a, **k: None)
    try:
        link.send(codec.encode(SALE, dialect="cup"))
        data = await asyncio.wait_for(got.get(), 10)
        answer = await asyncio.wait_for(answers.get(), 10)
    finally:
        await link.close()
        await asyncio.wait_for(served.wait(), 10)
        server.close()
        await server.wait_closed()
    assert int.from_bytes(data[:2], "big") == len(data) - 2
    assert Tpdu.from_bytes(data[2:7]) == Tpdu(destination=0x0003, source=0x0000)
    assert data[7:13] == CUP_HEADER
    assert data[13:15] == b"\x02\x00" and cup.decode(data[13:]) == SALE
    assert cup.decode(answer).response_code == "00"  # TPDU and header stripped before the codec


@pytest.mark.asyncio
async def test_cup_host_answers_with_the_request_tpdu_swapped() -> None:
    """A raw TCP peer stands in for the terminal, with TPDU addresses of its own."""
    requests: asyncio.Queue[tuple[bytes, Origin]] = asyncio.Queue()
    wire = open_wire("tcp", Endpoint("tcp://127.0.0.1:0", dialect="cup"))
    host = await wire.open_host(lambda data, origin: requests.put_nowait((data, origin)), lambda *a, **k: None)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(str(wire.describe()["port"])))
    header = bytes.fromhex("603110310000")  # a test terminal's header
    try:
        body = cup.encode(SALE)
        writer.write((11 + len(body)).to_bytes(2, "big") + bytes.fromhex("6000070005") + header + body)
        data, origin = await asyncio.wait_for(requests.get(), 10)
        assert data == body
        host.send(cup.encode(SALE.response("00")), {"tid": SALE.tid, "origin": origin})
        answer = await asyncio.wait_for(_read_frame(reader), 10)
    finally:
        writer.close()
        await writer.wait_closed()
        await host.close()
    assert Tpdu.from_bytes(answer[2:7]) == Tpdu(destination=0x0005, source=0x0007)
    assert answer[7:13] == header
    assert cup.decode(answer[13:]).mti == "0210"


def _cup_frames(result: RunResult) -> list[bytes]:
    return [bytes.fromhex(s.event.data) for s in result.trace.records
            if isinstance(s.event, ev.MsgReceived) and isinstance(s.event.data, str)]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["reversal-lost", "response-lost", "reversal-escalated"])
async def test_cup_scenarios_over_tcp_judge_as_in_memory(name: str) -> None:
    scenario = load(SCENARIOS / f"{name}.toml").with_profile("cup")
    result = await run_tcp(scenario, "reversal", 1, 0.05)
    assert result.quiescent
    frames = _cup_frames(result)
    assert frames and all(codec.dialect_of(f) == "cup" for f in frames)
    mem = simulate(scenario, "reversal").verdict.summary()
    keys = ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds",
            "reversed", "transactions", "escalated")
    tcp = result.verdict.summary()
    assert {k: tcp.get(k) for k in keys} == {k: mem.get(k) for k in keys}


@pytest.mark.asyncio
async def test_cup_host_drops_a_connection_without_a_tpdu() -> None:
    """Both ends must name the same dialect: an ISO frame on a CUP host is one clear log line."""
    dropped: asyncio.Queue[str] = asyncio.Queue()

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.TcpConnectionDropped):
            dropped.put_nowait(event.reason)

    wire = open_wire("tcp", Endpoint("tcp://127.0.0.1:0", dialect="cup"))
    host = await wire.open_host(lambda data, origin: None, emit)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(str(wire.describe()["port"])))
    try:
        body = codec.encode(SALE)
        writer.write(len(body).to_bytes(2, "big") + body)
        reason = await asyncio.wait_for(dropped.get(), 10)
        assert await reader.read() == b""  # the host closed the connection
    finally:
        writer.close()
        await writer.wait_closed()
        await host.close()
    assert "not a CUP TPDU" in reason


@pytest.mark.asyncio
async def test_settlement_over_tcp_decodes_in_the_independent_decoder_as_cup_frames() -> None:
    """Every frame of a CUP settlement run that crossed the socket, both ways, reads in py8583 with
    CUP's field types: field 60 on each, no field 7, no secondary bitmap; the upload is packed."""
    scenario = load(SCENARIOS / "settlement-recovers-advice.toml")
    assert scenario.profile == "cup"
    result = await run_tcp(scenario, "reversal", 1, 0.02)
    assert result.quiescent
    frames = _cup_frames(result)
    mtis = [cup.peek_mti(f) for f in frames]
    assert {"0100", "0110", "0500", "0510", "0320", "0330"} <= set(mtis), mtis
    for frame in frames:
        other = independent(frame)
        assert other.Field(60) == 1, cup.peek_mti(frame)
        assert other.Field(7) != 1 and other.Field(1) != 1, cup.peek_mti(frame)
    uploads = [cup.decode(f) for f in frames if cup.peek_mti(f) == "0320"]
    assert [u.network_code for u in uploads] == [None, cup.BATCH_END_UNBALANCED], "the sale, then the batch end"
    assert result.verdict.summary()["recovered_by_settlement"] == 1

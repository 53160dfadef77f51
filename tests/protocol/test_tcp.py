"""TCP with ISO 8583 length framing: frames survive any chunking; verdicts match the in-memory run."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from possim.protocol.errors import ProtocolError
from possim.protocol.framing import Deframer, frame
from possim.running.realtime import run_tcp
from possim.running.replay import replay
from possim.scenario import load
from possim.simulation import simulate
from tests.conftest import SCENARIOS

COUNTS = ("orphaned_debits", "double_debits", "phantom_approvals", "pending_reversals", "open_holds")


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=20), st.data())
def test_frames_survive_any_chunking(messages: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    deframer, got, last = Deframer(), [], 0
    for cut in [*cuts, len(stream)]:
        got += deframer.feed(stream[last:cut])
        last = cut
    assert got == messages and deframer.pending == 0


def test_frame_has_a_two_byte_big_endian_length() -> None:
    assert frame(b"0800abc") == b"\x00\x070800abc"
    with pytest.raises(ProtocolError):
        frame(b"")
    with pytest.raises(ProtocolError):
        Deframer().feed(b"\x00\x00")


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["none", "reversal"])
@pytest.mark.parametrize("name", ["response-lost", "reversal-lost", "duplicate-request", "slow-host"])
async def test_same_verdict_as_in_memory(name: str, policy: str) -> None:
    path = SCENARIOS / f"{name}.toml"
    result = await run_tcp(load(path), policy, 1, 0.05)
    assert result.quiescent
    mem = simulate(load(path), policy).verdict.summary()
    assert tuple(result.verdict.summary()[k] for k in COUNTS) == tuple(mem[k] for k in COUNTS)


@pytest.mark.asyncio
async def test_tcp_trace_replays_to_the_same_verdict(tmp_path: Path) -> None:
    result = await run_tcp(load(SCENARIOS / "reversal-lost.toml"), "reversal", 1, 0.05)
    trace = tmp_path / "tcp.jsonl"
    result.trace.write(trace)
    verdict, recorded = replay(trace)
    assert recorded is not None
    assert all(verdict.summary()[k] == recorded[k] for k in (*COUNTS, "reversed", "transactions"))

"""In-memory figures: purchases per second against the pyiso8583 codec ceiling, a flaky day, 100,000 sales."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import iso8583
from common import ROOT, Row, interleaved, purchases, timed

from possim.protocol import codec
from possim.protocol import events as ev
from possim.scenario import load
from possim.simulation import simulate


def exchanged_frames() -> tuple[bytes, bytes]:
    """The 0200 and 0210 bytes one purchase of the benchmark scenario really exchanges."""
    result = simulate(purchases(1), "reversal")
    got = {}
    for stamped in result.trace.records:
        e = stamped.event
        if isinstance(e, ev.MsgReceived) and e.data and e.mti in ("0200", "0210"):
            got.setdefault(e.mti, bytes.fromhex(e.data))
    return got["0200"], got["0210"]


def codec_ceiling(frames: tuple[bytes, bytes], n: int) -> None:
    """pyiso8583 alone, per purchase: encode and decode the 0200 and the 0210 (fresh each time)."""
    docs = []
    for data in frames:
        doc = iso8583.decode(bytearray(data), codec.SPEC)[0]
        docs.append({k: v for k, v in doc.items() if k not in ("p", "1")})
    spec = codec.SPEC
    for _ in range(n):
        for doc in docs:
            raw, _ = iso8583.encode(dict(doc), spec)
            iso8583.decode(bytes(raw), spec)


def possim_codec(frames: tuple[bytes, bytes], n: int) -> None:
    """possim's codec per purchase: Message -> bytes -> Message for the same 0200 and 0210."""
    messages = [codec.decode(data) for data in frames]
    last = codec._last  # the one-frame memory, emptied so that every decode parses
    for _ in range(n):
        for msg in messages:
            data = codec.encode(msg)
            last.clear()
            codec.decode(data)


def run(rows: list[Row], quick: bool) -> float:
    """Returns the codec ceiling in purchases per second (the 100,000-sale baseline uses it)."""
    count = 1000 if quick else 3000
    frames = exchanged_frames()
    scenario = purchases(count)
    simulate(scenario, "reversal")  # warm imports
    n = 2000 if quick else 5000
    t = interleaved({"ceiling": lambda: codec_ceiling(frames, n), "codec": lambda: possim_codec(frames, n),
                     "memory": lambda: simulate(scenario, "reversal")}, 3 if quick else 5)
    ceiling, fast, memory = n / t["ceiling"], n / t["codec"], count / t["memory"]
    rows.append(Row("possim codec alone, per purchase (0200 + 0210 encoded and decoded)", fast, "purchases/s",
                    ceiling, "pyiso8583 alone, same frames", note="informative: protocol/codec.py one pass"))
    rows.append(Row(f"in memory, {count:,} purchases of one terminal, policy reversal", memory, "purchases/s",
                    ceiling, "pyiso8583 codec ceiling per purchase, same frames", ">= 0.7 x ceiling (aim 1.0)",
                    memory / ceiling >= 0.7))
    flaky = load(ROOT / "scenarios" / "flaky-network.toml")
    simulate(flaky, "reversal")
    cold = sorted(timed(lambda: simulate(flaky, "reversal")) for _ in range(3))[1] * 1000
    rows.append(Row("flaky-network, 200 sales, policy reversal (cold: nothing cached between runs)", cold, "ms",
                    note="informative; no goal in the issue"))
    return ceiling


def _bigrun(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bigrun.py"), *args], capture_output=True,
                          text=True, timeout=280, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bigrun {' '.join(args)} failed: {done.stderr[-300:]}")
    got: dict[str, Any] = json.loads(done.stdout)
    return got


def hundred_thousand(rows: list[Row], ceiling: float, quick: bool) -> None:
    """10,000 terminals x 10 purchases as a ``[[terminals]]`` fleet, and 100,000 purchases of one terminal."""
    terminals, count = (2_000, 20_000) if quick else (10_000, 100_000)
    got = _bigrun("fleet", str(terminals), "10")
    title = f"{terminals:,} terminals x 10 purchases in memory ([[terminals]] fleet, simulate_fleet, no trace)"
    note = (f"peak RSS {got['max_rss_mib']:,.0f} MiB ({got['max_rss_mib'] * 1024 / got['purchases']:.1f} KiB per "
            f"purchase), {got['purchases_per_s']:,.0f} purchases/s")
    rows.append(Row(f"{title}, time", got["seconds"], "s", got["purchases"] / ceiling,
                    "pyiso8583 codec alone for as many purchases", "< 20 s", got["seconds"] < 20, note))
    rows.append(Row(f"{title}, peak memory", got["max_rss_mib"], "MiB", target="< 512 MiB",
                    met=got["max_rss_mib"] < 512, note="peak resident set of the run's process"))
    one = _bigrun("one", str(count))
    rows.append(Row(f"{count:,} purchases of ONE terminal in memory (simulate, full trace), time", one["seconds"], "s",
                    count / ceiling, "pyiso8583 codec alone for as many purchases",
                    note=(f"informative; peak RSS {one['max_rss_mib']:,.0f} MiB "
                          f"({one['max_rss_mib'] * 1024 / count:.1f} KiB per purchase), "
                          f"{one['trace_records']:,} trace records")))
